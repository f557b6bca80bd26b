"""Accuracy estimators on constructed cases whose answer is known."""
import numpy as np
import pytest
import torch
from tiny_models import tiny_cnn

from entmin.estimate import (
    COT,
    AverageConfidence,
    AverageThresholdedConfidence,
    DifferenceOfConfidences,
    FlipsConfig,
    PolynomialMap,
    flip_statistics,
    imagenet_preset,
    measure_flips,
)
from entmin.estimate.phases import cluster_score


def calibrated(n=4000, c=10, seed=0):
    """Logits whose max-softmax equals the probability of being correct (a perfectly calibrated model)."""
    g = torch.Generator().manual_seed(seed)
    conf = 0.3 + 0.65 * torch.rand(n, generator=g)
    pred = torch.randint(0, c, (n,), generator=g)
    probs = ((1 - conf) / (c - 1)).unsqueeze(1).repeat(1, c)
    probs[torch.arange(n), pred] = conf
    correct = torch.rand(n, generator=g) < conf
    labels = torch.where(correct, pred, (pred + 1 + torch.randint(0, c - 1, (n,), generator=g)) % c)
    return probs.log(), labels


def test_ac_equals_accuracy_when_calibrated():
    logits, labels = calibrated()
    acc = float((logits.argmax(1) == labels).float().mean())
    assert abs(AverageConfidence().estimate(logits) - acc) < 0.02


def test_doc_and_atc_exact_on_id_data():
    logits, labels = calibrated()
    acc = float((logits.argmax(1) == labels).float().mean())
    assert abs(DifferenceOfConfidences().fit(logits, labels).estimate(logits) - acc) < 1e-6
    for score in ("mc", "ne"):
        assert abs(AverageThresholdedConfidence(score).fit(logits, labels).estimate(logits) - acc) < 0.002


def test_atc_tracks_a_confidence_shift():
    logits, labels = calibrated(seed=1)
    atc = AverageThresholdedConfidence("mc").fit(logits, labels)
    shifted, _ = calibrated(seed=2)
    # make the target less confident: the estimate must drop
    assert atc.estimate(shifted * 0.3) < atc.estimate(shifted) - 0.1


def test_cot_one_hot_predictions():
    c = 4
    labels = torch.arange(400) % c
    logits = torch.nn.functional.one_hot(labels, c).float() * 50
    cot = COT().fit(logits, labels)
    assert cot.estimate(logits) > 0.99
    wrong = torch.nn.functional.one_hot((labels + 1) % c, c).float() * 50
    assert cot.estimate(wrong) > 0.99  # COT sees only the marginal: permuted labels look perfect (known limit)
    collapsed = torch.zeros(400, c)
    collapsed[:, 0] = 50  # every prediction on one class: at most 1/4 can be matched
    assert abs(cot.estimate(collapsed) - 0.25) < 0.01


def test_flip_statistics_hand_made():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    final = torch.tensor([1, 0, 0, 1])  # flips on samples 0 (most confident) and 2
    wf, flips = flip_statistics(probs, final)
    # confidences 0.9, 0.6, 0.7, 0.55 -> ascending ranks 4, 2, 3, 1 -> percentiles 1.0, 0.5, 0.75, 0.25
    assert flips == 2 and wf == pytest.approx(1.0 + 0.75)
    with pytest.raises(ValueError):
        flip_statistics(probs, final[:3])


def test_polynomial_map_and_presets():
    m = PolynomialMap(1).fit(np.array([0, 100, 200]), np.array([0.9, 0.6, 0.3]))
    assert m(50) == pytest.approx(0.75)
    assert m(1000) == 0.0  # clipped
    with pytest.raises(ValueError, match="at least 3"):
        PolynomialMap(2).fit(np.array([1, 2]), np.array([0.5, 0.4]))
    with pytest.warns(RuntimeWarning, match="span"):
        PolynomialMap(1).fit(np.array([1, 2, 3]), np.array([0.5, 0.51, 0.5]))
    p = imagenet_preset()
    assert float(p(0)) == pytest.approx(0.756618580)
    assert float(p(100)) == pytest.approx((3.55553868e-4 * 1e4 - 32.1445023 + 75.6618580) / 100)


def test_measure_flips_and_bad_input():
    x = torch.rand(300, 1, 32, 32)
    cfg = FlipsConfig(probe_size=100, steps=5, batch_size=32, lr=0.5)
    r = measure_flips(tiny_cnn, x, cfg)
    assert 0 <= r["flips"] <= 100 and 0 <= r["weighted_flips"] <= r["flips"]
    assert measure_flips(tiny_cnn, x, cfg) == r  # deterministic
    with pytest.raises(ValueError, match="fewer than the probe set"):
        measure_flips(tiny_cnn, x[:50], cfg)
    with pytest.raises(ValueError, match="probe_size"):
        FlipsConfig(probe_size=5)


def test_cluster_score_prefers_tight_clusters():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 2
    centers = torch.tensor([[0.0, 0.0], [5.0, 5.0]])
    tight = centers[labels] + 0.1 * torch.randn(200, 2, generator=g)
    loose = centers[labels] + 3.0 * torch.randn(200, 2, generator=g)
    assert cluster_score(tight, labels) > 10 * cluster_score(loose, labels)


def test_two_phase_run_and_plots(tmp_path):
    from entmin.estimate import BASELINES
    from entmin.estimate.evaluate import FLIP_METHODS
    from entmin.estimate.phases import two_phase_run
    from entmin.viz.other import plot_phases, scatter_plot

    g = torch.Generator().manual_seed(0)
    clean = (torch.rand(200, 1, 32, 32, generator=g), torch.arange(200) % 10)
    shifted = (torch.rand(200, 1, 32, 32, generator=g), torch.arange(200) % 10)
    rows = two_phase_run(tiny_cnn, clean, shifted, steps=4, every=2, batch_size=32, eval_size=64, lr=0.1)
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert all(abs(r["accuracy"] * 64 - round(r["accuracy"] * 64)) < 1e-6 for r in rows)  # of 64 evaluated
    assert rows[0]["distance_to_source_means"] != rows[-1]["distance_to_source_means"]  # the embeddings moved
    plot_phases({"em": rows}, tmp_path / "p.png")
    ests = {f"s{i}": dict({m: 0.1 * i for m in list(BASELINES) + list(FLIP_METHODS)}, true=0.1 * i + 0.05)
            for i in range(5)}
    scatter_plot(ests, tmp_path / "s.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "s.png").stat().st_size > 1000
