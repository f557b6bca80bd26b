"""Test streams as values: which images an adapter sees, in which order, in which batches, and where the
adapter is reset.

A :class:`Stream` is an immutable description (protocol, domains, batch size, image subset, seed and the
protocol's options). :meth:`Stream.segments` cuts it into :class:`Segment` s, the cells of the results store:
each has a stream ``position`` (the key: a domain may be visited several times), the ``domain`` and
``severity`` it is reported under, whether the adapter is reset before it, and its images in order as
``(domain, index)`` pairs. The runner evaluates an adapter on segments and knows nothing of protocols; a new
protocol is a new segment constructor here.

Determinism: the images used from a domain are a fixed subset (the same for every seed and method); the order
inside a segment is a permutation drawn from ``(seed, position)``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["PROTOCOL_BUILDERS", "SEARCH_FRACTION", "Segment", "Stream", "batch_bounds", "domain_subset",
           "segment_count", "stream_domains"]

SEARCH_FRACTION = 0.2
Domain = tuple[str, int]  # (corruption or "clean", severity)


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
    """Batch boundaries; a trailing batch of one sample is merged into the previous one (BatchNorm needs 2)."""
    bounds = [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
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
    """Protocol + domains + batch size + image subset + seed: everything that fixes what an adapter sees."""

    protocol: str
    domains: tuple[Domain, ...]
    batch_size: int = 64
    n_per_domain: int | None = None
    split: str = "all"
    seed: int = 1

    def segments(self, domain_sizes: Callable[[Domain], int]) -> list[Segment]:
        """The stream cut into cells; ``domain_sizes`` gives the number of images of a domain."""
        return PROTOCOL_BUILDERS[self.protocol](self, domain_sizes)

    def subset(self, domain: Domain, domain_sizes: Callable[[Domain], int]) -> torch.Tensor:
        return domain_subset(domain_sizes(domain), self.split, self.n_per_domain)

    def order(self, n: int, position: int) -> torch.Tensor:
        """The permutation of a segment's images: drawn from (seed, stream position)."""
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1009 + position))


def _per_domain(reset: bool) -> Callable[[Stream, Callable[[Domain], int]], list[Segment]]:
    """One segment per domain visit, in the order given (single-domain: reset before each; continual: never)."""

    def build(stream: Stream, sizes: Callable[[Domain], int]) -> list[Segment]:
        out = []
        for pos, dom in enumerate(stream.domains):
            subset = stream.subset(dom, sizes)
            out.append(Segment(pos, dom[0], dom[1], reset, ((dom, subset[stream.order(len(subset), pos)]),)))
        return out

    return build


PROTOCOL_BUILDERS: dict[str, Callable[[Stream, Callable[[Domain], int]], list[Segment]]] = {
    "single": _per_domain(reset=True),
    "continual": _per_domain(reset=False),
}


def segment_count(config: dict) -> int:
    """Number of cells of a stream from its stored configuration (what "finished" means for a seed)."""
    return len(config["corruptions"])


def stream_domains(corruptions: Sequence[str], severity: int) -> tuple[Domain, ...]:
    return tuple((c, severity) for c in corruptions)
