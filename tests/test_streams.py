"""Test streams: every protocol shows each image of its domains exactly once per round, in the order it promises,
the same for the same seed; label shift follows delta; an interrupted stream resumes to the identical table."""
import itertools
from collections import Counter

import pytest
import torch

from entmin.bench.config import RunConfig
from entmin.bench.runner import run_experiment
from entmin.bench.store import ResultStore
from entmin.bench.streams import (
    GRADUAL_SEVERITIES,
    PROTOCOLS,
    Stream,
    dirichlet_order,
    imbalanced_order,
    segment_count,
)
from entmin.bench.tables import build_table, table_markdown

DOMAINS = (("fog", 5), ("snow", 5), ("contrast", 5))


class FakeData:
    def __init__(self, n=120, classes=10):
        self.n = n
        self.y = torch.arange(n) % classes

    def size(self, domain):
        return self.n

    def labels(self, domain):
        return self.y


def seen(segments):
    return Counter((d[0], int(i)) for s in segments for d, idx in s.items for i in idx)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_image_once_per_round_and_the_same_stream_for_the_same_seed(protocol):
    data = FakeData()
    stream = Stream(protocol, DOMAINS, n_per_domain=60, seed=3, rounds=2)
    segs = stream.segments(data)
    rounds = {"long": 2, "gradual": len(GRADUAL_SEVERITIES)}.get(protocol, 1)
    counts = seen(segs)
    assert set(counts.values()) == {rounds} and len(counts) == 3 * 60
    assert [s.position for s in segs] == list(range(len(segs)))
    cfg = {"corruptions": [d for d, _ in DOMAINS], "protocol": protocol, "rounds": 2}
    assert len(segs) == segment_count(cfg)
    again = Stream(protocol, DOMAINS, n_per_domain=60, seed=3, rounds=2).segments(data)
    assert all(torch.equal(a, b) for s, t in zip(segs, again) for (_, a), (_, b) in zip(s.items, t.items))
    other = Stream(protocol, DOMAINS, n_per_domain=60, seed=4, rounds=2).segments(data)
    assert any(not torch.equal(a, b) for s, t in zip(segs, other) for (_, a), (_, b) in zip(s.items, t.items))
    assert all(s.reset for s in segs) == (protocol == "single")


def test_gradual_visits_severities_1_to_5_to_1_per_corruption():
    segs = Stream("gradual", DOMAINS).segments(FakeData())
    assert [(s.domain, s.severity) for s in segs] == [(c, sev) for c, _ in DOMAINS for sev in (1, 2, 3, 4, 5, 4, 3,
                                                                                                 2, 1)]


def test_mixed_streams_draw_every_domain_in_proportion():
    segs = Stream("mixed", DOMAINS, n_per_domain=100).segments(FakeData(200))
    assert len(segs) == 3 and all(s.domain == "mixed" for s in segs)
    share = Counter(d[0] for s in segs for d, idx in s.items for _ in idx)
    assert share == {"fog": 100, "snow": 100, "contrast": 100}
    first = Counter(d[0] for d, idx in segs[0].items for _ in idx)  # shuffled: each domain in every segment
    assert all(20 <= first[d] <= 50 for d, _ in DOMAINS)


def _mean_run(labels):
    runs, cur = [], 1
    for a, b in itertools.pairwise(labels):
        if a == b:
            cur += 1
        else:
            runs.append(cur)
            cur = 1
    return sum(runs + [cur]) / len(runs + [cur])


def test_label_shift_order_follows_delta():
    """delta -> 0: long single-class runs; delta -> infinity: every class spread evenly over the slots, runs as
    short as a class's share of a slot (2,000 labels, 10 classes, 100 slots: 2; with more slots than a class has
    samples, about i.i.d.: C / (C - 1) = 1.11)."""
    import numpy as np

    y = torch.arange(2000) % 10
    runs = {}
    for delta in (0.01, 0.1, 1.0, 1000.0):
        order = dirichlet_order(y, delta, 100, np.random.default_rng(0))
        assert sorted(order.tolist()) == list(range(2000))
        runs[delta] = _mean_run(y[order].tolist())
    assert runs[0.01] > 25 and runs[0.01] > runs[0.1] > runs[1.0] > runs[1000.0]
    assert runs[1000.0] < 2.2
    iid = dirichlet_order(y, 1000.0, 1000, np.random.default_rng(0))
    assert _mean_run(y[iid].tolist()) < 1.4


def test_imbalanced_order_follows_the_ratio():
    """ratio 1: i.i.d. (mean run about C / (C - 1)); SAR's 500,000: sorted by class (C runs); ratio q: the
    phase's class takes about q / (q + C - 1) of its phase while the others have images left."""
    import numpy as np

    y = torch.arange(2000) % 10
    orders = {q: imbalanced_order(y, q, np.random.default_rng(1)) for q in (1.0, 9.0, 500000.0)}
    for order in orders.values():
        assert sorted(order.tolist()) == list(range(2000))
    assert _mean_run(y[orders[1.0]].tolist()) < 1.3
    sorted_labels = y[orders[500000.0]].tolist()
    assert _mean_run(sorted_labels) > 150 and len(set(sorted_labels[:200])) == 1
    first = y[orders[9.0]][:100].tolist()           # phase 1 of 10: its class has probability 9 / 18
    share = Counter(first).most_common(1)[0][1] / 100
    assert 0.38 < share < 0.62
    assert len(set(y[orders[9.0]][:200].tolist())) == 10


def test_imbalanced_streams_run_from_the_config_and_refuse_a_ratio_below_one():
    from entmin.errors import UsageError

    assert RunConfig(protocol="imbalanced").to_dict()["protocol"] == "imbalanced"
    assert "imbalance" not in RunConfig(protocol="imbalanced").to_dict()          # default: old hashes kept
    assert RunConfig(protocol="imbalanced", imbalance=10.0).to_dict()["imbalance"] == 10.0
    with pytest.raises(UsageError, match="imbalance"):
        RunConfig(protocol="imbalanced", imbalance=0.5)


@pytest.mark.parametrize("protocol", ["gradual", "mixed", "label-shift", "imbalanced", "long"])
def test_an_interrupted_stream_resumes_to_the_identical_table(tmp_path, fmnist_test, protocol):
    cfg = RunConfig(method="eta", objective="adadem", protocol=protocol, corruptions=("contrast", "fog"),
                    n_per_domain=64, batch_size=32, lr=0.01, rounds=2)
    kw = {"cache_dir": tmp_path / "cache"}
    ref = run_experiment(cfg, [1], ResultStore(tmp_path / "ref.sqlite"), **kw)
    st = ResultStore(tmp_path / "cut.sqlite")

    class Cut(Exception):
        pass

    calls = {"n": 0}

    def stop(ev):
        calls["n"] += 1
        if calls["n"] == 1:  # killed right after the first cell (a mixed stream of 2 domains has 2)
            raise Cut

    with pytest.raises(Cut):
        run_experiment(cfg, [1], st, progress=stop, **kw)
    assert 0 < len(st.cells()) < len(ref)
    again = run_experiment(cfg, [1], st, **kw)
    key = [(r["position"], r["domain"], r["correct"], r["metrics"]["batch_acc"]) for r in ref]
    assert [(r["position"], r["domain"], r["correct"], r["metrics"]["batch_acc"]) for r in again] == key
    assert table_markdown(build_table(again)) == table_markdown(build_table(ref))


def test_a_collapsed_stream_is_flagged():
    cfg = RunConfig(corruptions=("fog",)).to_dict()
    row = {"config_hash": "h", "seed": 1, "domain": "fog", "position": 0, "n": 10, "correct": 1, "accuracy": 0.1,
           "metrics": {"pred_hist": [9, 1, 0, 0, 0, 0, 0, 0, 0, 0]}, "wall_seconds": 0.0, "config": cfg}
    md = table_markdown(build_table([row]))
    assert "⚠ collapse in 1" in md
    row["metrics"]["pred_hist"] = [5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
    assert "collapse" not in table_markdown(build_table([row]))


def test_per_class_recall_and_windowed_accuracy_from_the_cells(tmp_path, fmnist_test):
    """A label-shift stream's cells carry per-class counts and hits that add up to the cell's own numbers, and
    per_class_recall equals recall computed from the model's predictions directly."""
    from entmin.bench.tables import per_class_recall, windowed_accuracy

    cfg = RunConfig(method="source", protocol="label-shift", delta=0.1, corruptions=("contrast", "fog"),
                    n_per_domain=64, batch_size=32)
    cells = run_experiment(cfg, [1], ResultStore(tmp_path / "s.sqlite"), cache_dir=tmp_path / "cache")
    for c in cells:
        m = c["metrics"]
        assert sum(m["class_counts"]) == c["n"] and sum(m["class_correct"]) == c["correct"]
        assert all(0 <= h <= n for h, n in zip(m["class_correct"], m["class_counts"], strict=True))
    recall = per_class_recall(cells)
    counts = [sum(c["metrics"]["class_counts"][k] for c in cells) for k in range(10)]
    hits = [sum(c["metrics"]["class_correct"][k] for c in cells) for k in range(10)]
    assert recall == [h / n if n else None for h, n in zip(hits, counts, strict=True)]
    assert sum(h for h in hits) == sum(c["correct"] for c in cells)
    m = cells[0]["metrics"]
    sizes = [32] * len(m["batch_acc"])
    w = windowed_accuracy(m["batch_acc"], sizes, 2)
    assert len(w) == len(sizes) - 1 and w[0] == pytest.approx((m["batch_acc"][0] + m["batch_acc"][1]) / 2)
    old = [{**cells[0], "metrics": {k: v for k, v in m.items() if k != "class_counts"}}]
    with pytest.raises(ValueError, match="no per-class counts"):
        per_class_recall(old)


def test_batch_size_one_means_one_sample_per_batch():
    from entmin.bench.streams import batch_bounds

    assert batch_bounds(5, 1) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert batch_bounds(5, 2) == [(0, 2), (2, 5)]          # BatchNorm needs 2: a trailing single joins


@pytest.mark.parametrize("method", ["tent", "eta", "eata", "sar", "deyo"])
def test_the_group_norm_cnn_adapts_at_batch_size_one(method):
    """GroupNorm statistics are per sample: a sample's logits do not depend on its batch, and every host adapts
    its norm layers on single images (the BN CNN refuses batch 1, tested in test_refusals)."""
    from entmin.adapt import make_adapter
    from entmin.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn_gn").eval()
    with torch.no_grad():
        model.head.weight.mul_(20.0)   # confident enough for the entropy filters, not so that SAR resets
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x)[2:3], model(x[2:3]), atol=1e-5)
    extra = {"eata": {"fisher_loader": [torch.rand(8, 1, 32, 32)]},
             "deyo": {"plpd_threshold": -1.0}}.get(method, {})       # random images have no object for PLPD
    adapter = make_adapter(method, model, "adadem", num_classes=10, optimizer={"name": "sgd", "lr": 0.05}, **extra)
    before = {k: v.clone() for k, v in adapter.model.state_dict().items()}
    for i in range(len(x)):
        assert adapter(x[i:i + 1]).shape == (1, 10)
    changed = [k for k, v in adapter.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(".1." in k for k in changed)          # only the GroupNorm affine parameters moved
