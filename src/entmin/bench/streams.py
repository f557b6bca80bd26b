"""Test streams as values: which images an adapter sees, in which order, in which batches, and where the
adapter is reset.

A :class:`Stream` is an immutable description (protocol, domains, batch size, image subset, seed and the
protocol's options: delta of label shift, rounds of a long stream). :meth:`Stream.segments` cuts it into :class:`Segment` s, the cells of the results store:
each has a stream ``position`` (the key: a domain may be visited several times), the ``domain`` and
``severity`` it is reported under, whether the adapter is reset before it, and its images in order as
``(domain, index)`` pairs. The runner evaluates an adapter on segments and knows nothing of protocols; a new
protocol is a new segment constructor here.

Protocols (each a constructor in :data:`PROTOCOL_BUILDERS`):

* ``single``: one segment per domain, the adapter reset before each; ``continual``: the same, never reset;
* ``gradual``: each corruption at severities 1, 2, 3, 4, 5, 4, 3, 2, 1 in turn, never reset (mariodoebler's
  ``gradual``); a segment per (corruption, severity) visit;
* ``mixed``: the images of all domains shuffled into one stream (``mixed_domains``), cut into segments of
  ``n_per_domain`` images that carry per-domain counts;
* ``label-shift``: continual, and inside each domain the classes come in temporally correlated runs: the
  Dirichlet ordering of mariodoebler/RoTTA (each class spread over ``slots`` time slots with proportions from
  Dir(delta); small delta gives long single-class runs, large delta approaches i.i.d.);
* ``imbalanced``: continual, and inside each domain SAR's online imbalanced label shift: the classes take
  turns in a random class order, one phase of n/C images each, and at every step the phase's class is drawn
  with probability ``imbalance`` times that of any other class with images left (``imbalance`` = 1: i.i.d.;
  SAR's 500,000: practically sorted by class). SAR ships fixed index files rather than their generator; this
  is the construction its README describes (an imbalance ratio between the current and the other classes);
* ``long``: ``rounds`` passes over the continual sequence (CoTTA/RDumb-style long horizons).

Determinism: the images used from a domain are a fixed subset (the same for every seed and method); every
order is drawn from ``(seed, position)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

__all__ = [
    "GRADUAL_SEVERITIES",
    "PROTOCOLS",
    "PROTOCOL_BUILDERS",
    "SEARCH_FRACTION",
    "Segment",
    "Stream",
    "StreamData",
    "batch_bounds",
    "dirichlet_order",
    "domain_subset",
    "imbalanced_order",
    "segment_count",
    "stream_domains",
]

SEARCH_FRACTION = 0.2
Domain = tuple[str, int]  # (corruption or "clean", severity)
GRADUAL_SEVERITIES = (1, 2, 3, 4, 5, 4, 3, 2, 1)


class StreamData(Protocol):
    """What a stream needs to know of the data: the size of a domain and (for label shift) its labels."""

    def size(self, domain: Domain) -> int: ...

    def labels(self, domain: Domain) -> torch.Tensor: ...


def domain_subset(n: int, split: str = "all", n_per_domain: int | None = None) -> torch.Tensor:
    """Indices of the images of a domain used by a run: a fixed permutation (seed 0, the same for every seed
    and method), cut into the 20% "search" part and the 80% "holdout" part, then capped at n_per_domain."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_search = round(SEARCH_FRACTION * n)
    if split == "search":
        perm = perm[:n_search]
    elif split == "holdout":
        perm = perm[n_search:]
    return perm[: n_per_domain or len(perm)]


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch boundaries; a trailing batch of one sample is merged into the previous one (BatchNorm needs 2),
    unless the batch size is 1 (then every batch is one sample, as asked)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if batch_size > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


@dataclass(frozen=True)
class Segment:
    """One cell of a stream: ``items`` are (domain, image index) pairs in the order they are seen."""

    position: int
    domain: str
    severity: int
    reset: bool
    items: tuple[tuple[Domain, torch.Tensor], ...] = field(repr=False)

    def __len__(self) -> int:
        return sum(len(idx) for _, idx in self.items)

    def batches(self, batch_size: int) -> Iterator[list[tuple[Domain, torch.Tensor]]]:
        """Batches of the segment as lists of (domain, indices) runs (one run unless domains are mixed)."""
        flat_dom = [d for d, idx in self.items for _ in range(len(idx))]
        flat_idx = torch.cat([idx for _, idx in self.items]) if self.items else torch.empty(0, dtype=torch.long)
        for lo, hi in batch_bounds(len(flat_idx), batch_size):
            runs: list[tuple[Domain, torch.Tensor]] = []
            start = lo
            for i in range(lo + 1, hi + 1):
                if i == hi or flat_dom[i] != flat_dom[start]:
                    runs.append((flat_dom[start], flat_idx[start:i]))
                    start = i
            yield runs


@dataclass(frozen=True)
class Stream:
    """Protocol + domains + batch size + image subset + seed (+ the protocol's options): everything that fixes
    what an adapter sees."""

    protocol: str
    domains: tuple[Domain, ...]
    batch_size: int = 64
    n_per_domain: int | None = None
    split: str = "all"
    seed: int = 1
    delta: float = 0.1      # label-shift: Dirichlet concentration
    slots: int = 100        # label-shift: time slots per domain
    rounds: int = 10        # long: passes over the sequence
    imbalance: float = 500000.0   # imbalanced: ratio of the current class's probability to any other's

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOL_BUILDERS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {list(PROTOCOL_BUILDERS)}")
        if not (self.delta > 0 and self.slots >= 1 and self.rounds >= 1 and self.imbalance >= 1):
            raise ValueError("delta must be > 0, slots and rounds >= 1, imbalance >= 1")

    def segments(self, data: StreamData) -> list[Segment]:
        """The stream cut into cells."""
        return PROTOCOL_BUILDERS[self.protocol](self, data)

    def subset(self, domain: Domain, data: StreamData) -> torch.Tensor:
        return domain_subset(data.size(domain), self.split, self.n_per_domain)

    def order(self, n: int, position: int) -> torch.Tensor:
        """The permutation of a segment's images: drawn from (seed, stream position)."""
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1009 + position))


def _per_domain(reset: bool, domains: Callable[[Stream], list[Domain]] = lambda s: list(s.domains)
                ) -> Callable[[Stream, StreamData], list[Segment]]:
    """One segment per domain visit, in order (single-domain: reset before each; the others: never)."""

    def build(stream: Stream, data: StreamData) -> list[Segment]:
        out = []
        for pos, dom in enumerate(domains(stream)):
            subset = stream.subset(dom, data)
            out.append(Segment(pos, dom[0], dom[1], reset, ((dom, subset[stream.order(len(subset), pos)]),)))
        return out

    return build


def _gradual(stream: Stream) -> list[Domain]:
    return [(c, s) for c, _ in stream.domains for s in GRADUAL_SEVERITIES]


def _long(stream: Stream) -> list[Domain]:
    return list(stream.domains) * stream.rounds


def _mixed(stream: Stream, data: StreamData) -> list[Segment]:
    """All domains' images in one shuffled stream, cut into segments of one domain's size."""
    pairs = [(d, int(i)) for d in stream.domains for i in stream.subset(d, data)]
    order = stream.order(len(pairs), 0).tolist()
    pairs = [pairs[i] for i in order]
    size = max(1, len(pairs) // max(1, len(stream.domains)))
    out = []
    for pos, lo in enumerate(range(0, len(pairs), size)):
        chunk = pairs[lo:lo + size]
        runs, start = [], 0
        for i in range(1, len(chunk) + 1):  # consecutive images of one domain form one run
            if i == len(chunk) or chunk[i][0] != chunk[start][0]:
                runs.append((chunk[start][0], torch.tensor([j for _, j in chunk[start:i]], dtype=torch.long)))
                start = i
        out.append(Segment(pos, "mixed", 0, False, tuple(runs)))
    if len(out) > 1 and len(out[-1]) < size // 2:  # a short tail joins the previous segment
        last = out.pop()
        out[-1] = Segment(out[-1].position, "mixed", 0, False, out[-1].items + last.items)
    return out


def dirichlet_order(labels: torch.Tensor, delta: float, slots: int, rng: np.random.Generator) -> torch.Tensor:
    """Temporally correlated order of ``labels`` (positions into it): every class is spread over ``slots`` time
    slots with proportions from Dir(delta); inside a slot the classes' chunks follow each other in random order
    (mariodoebler's ``sort_by_dirichlet``, after RoTTA)."""
    y = labels.numpy()
    classes = np.unique(y)
    buckets: list[list[np.ndarray]] = [[] for _ in range(slots)]
    for c in classes:
        ids = np.flatnonzero(y == c)
        ids = ids[rng.permutation(len(ids))]
        p = rng.dirichlet([delta] * slots)
        cuts = (np.cumsum(p)[:-1] * len(ids)).astype(int)
        for s, part in enumerate(np.split(ids, cuts)):
            if len(part):
                buckets[s].append(part)
    out = [part for b in buckets for k in rng.permutation(len(b)) for part in [b[k]]]
    return torch.from_numpy(np.concatenate(out) if out else np.zeros(0, np.int64)).long()


def _label_shift(stream: Stream, data: StreamData) -> list[Segment]:
    out = []
    for pos, dom in enumerate(stream.domains):
        subset = stream.subset(dom, data)
        rng = np.random.default_rng([stream.seed, pos])
        order = dirichlet_order(data.labels(dom)[subset], stream.delta, stream.slots, rng)
        out.append(Segment(pos, dom[0], dom[1], False, ((dom, subset[order]),)))
    return out


def imbalanced_order(labels: torch.Tensor, ratio: float, rng: np.random.Generator) -> torch.Tensor:
    """SAR-style online imbalanced order of ``labels`` (positions into it): classes in a random order, one phase
    of ``len(labels) / C`` draws each; a draw takes the phase's class with weight ``ratio`` and every other
    class that has images left with weight 1, then that class's next image (classes' images shuffled)."""
    y = labels.numpy()
    classes = rng.permutation(np.unique(y))
    pools = {int(c): list(rng.permutation(np.flatnonzero(y == c))) for c in classes}
    phase = max(1, -(-len(y) // len(classes)))
    out = []
    for t in range(len(y)):
        current = int(classes[min(t // phase, len(classes) - 1)])
        left = [c for c in pools if pools[c]]
        w = np.array([ratio if c == current else 1.0 for c in left])
        c = left[int(rng.choice(len(left), p=w / w.sum()))]
        out.append(pools[c].pop())
    return torch.tensor(out, dtype=torch.long)


def _imbalanced(stream: Stream, data: StreamData) -> list[Segment]:
    out = []
    for pos, dom in enumerate(stream.domains):
        subset = stream.subset(dom, data)
        order = imbalanced_order(data.labels(dom)[subset], stream.imbalance, np.random.default_rng([stream.seed, pos]))
        out.append(Segment(pos, dom[0], dom[1], False, ((dom, subset[order]),)))
    return out


PROTOCOL_BUILDERS: dict[str, Callable[[Stream, StreamData], list[Segment]]] = {
    "single": _per_domain(reset=True),
    "continual": _per_domain(reset=False),
    "gradual": _per_domain(reset=False, domains=_gradual),
    "mixed": _mixed,
    "label-shift": _label_shift,
    "imbalanced": _imbalanced,
    "long": _per_domain(reset=False, domains=_long),
}
PROTOCOLS = tuple(PROTOCOL_BUILDERS)


def segment_count(config: dict) -> int:
    """Number of cells of a stream from its stored configuration (what "finished" means for a seed)."""
    n = len(config["corruptions"])
    protocol = config.get("protocol", "single")
    if protocol == "gradual":
        return n * len(GRADUAL_SEVERITIES)
    if protocol == "long":
        return n * int(config.get("rounds") or 10)
    return n  # single, continual, label-shift, imbalanced; mixed: one segment per domain's worth of images


def stream_domains(corruptions: Sequence[str], severity: int) -> tuple[Domain, ...]:
    return tuple((c, severity) for c in corruptions)
