"""The GPU path: the same objectives, adapters and benchmark runs on CUDA as on the CPU.

Skipped where no CUDA device exists (CI has none); run on a GPU machine with
``python -m pytest tests/test_cuda.py``. Each test runs the same computation on both devices and compares:
the GPU path must not be a different algorithm (device-dependent RNG, CPU-only indexing, dtype drift).
"""
import copy
import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS (see below)

import pytest
import torch
from test_adapt import METHODS, batches, build
from tiny_models import tiny_cnn, tiny_vit

from entmin.objectives import AdaDEM, dem, entropy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("name", ["em", "dem", "adadem", "adadem_mec", "adadem_norm", "adadem_v"])
def test_objective_values_and_gradients_match_cpu(name):
    g = torch.Generator().manual_seed(0)
    z = (torch.randn(256, 1000, generator=g) * 3).double()
    losses = {}
    for dev in ("cpu", "cuda"):
        zz = z.detach().to(dev, copy=True).requires_grad_(True)
        if name == "em":
            loss = entropy(zz)
        elif name == "dem":
            loss = dem(zz, tau=0.7, alpha=1.3)
        else:
            variant = name.split("_")[1] if "_" in name else "adadem"
            obj = AdaDEM(1000, variant=variant).to(dev).double()
            loss = obj(zz)
            for _ in range(3):  # several bank updates must agree too
                loss = obj(zz)
        loss.sum().backward()
        losses[dev] = (loss.detach().cpu(), zz.grad.cpu())
    torch.testing.assert_close(losses["cuda"][0], losses["cpu"][0], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(losses["cuda"][1], losses["cpu"][1], rtol=1e-9, atol=1e-10)


def _run(method, factory, objective, device):
    torch.manual_seed(0)
    model = factory().to(device)
    kw = {}
    if method == "eata":
        kw["fisher_loader"] = [x.to(device) for x in batches(2, 8, seed=9)]
    ad = build(method, model, objective, optimizer={"lr": 5e-3}, **kw)  # a rate that does not blow up
    outs = [ad(x.to(device)).detach().cpu() for x in batches(4, 32)]
    return ad, outs


@pytest.mark.parametrize("factory", [tiny_cnn, tiny_vit])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_adapters_follow_the_cpu_trajectory(factory, method, objective):
    _, cpu = _run(method, factory, objective, "cpu")
    ad, gpu = _run(method, factory, objective, CUDA)
    assert next(ad.model.parameters()).is_cuda
    if objective == "adadem":
        assert ad.objective.bank.is_cuda
    diffs = [float((a - b).abs().max()) for a, b in zip(cpu, gpu)]
    assert diffs[0] < 1e-4, diffs  # the first batch is the same function of the same weights
    assert max(diffs) < 2e-3, diffs  # float32 kernels differ in the last bits; trajectories stay together


@pytest.fixture
def deterministic():
    """CUDA kernels such as index_add_ and the backward of indexing accumulate with atomics, so on a GPU
    bit-exact repeats need PyTorch's deterministic mode (as for any PyTorch program)."""
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("method", METHODS)
def test_reset_is_bit_exact_on_cuda(method, deterministic):
    ad, first = _run(method, tiny_cnn, "adadem", CUDA)
    ad.reset()
    again = [ad(x.to(CUDA)).detach().cpu() for x in batches(4, 32)]
    diffs = [float((a - b).abs().max()) for a, b in zip(first, again)]
    assert diffs == [0.0] * 4, diffs


def test_export_import_state_round_trips_through_cpu(tmp_path):
    """A continual run resumed from a saved state (always written from CPU tensors) continues exactly."""
    ad, _ = _run("eata", tiny_cnn, "adadem", CUDA)
    saved = tmp_path / "state.pt"
    torch.save(ad.export_state(), saved)
    twin = copy.deepcopy(ad)
    x = batches(1, 32, seed=5)[0].to(CUDA)
    expected = ad(x)
    twin.import_state(torch.load(saved, weights_only=True))
    torch.testing.assert_close(twin(x), expected, rtol=0, atol=0)


def test_benchmark_run_on_cuda_matches_cpu(tmp_path, fmnist_test):
    from entmin.bench.config import RunConfig
    from entmin.bench.runner import run_experiment
    from entmin.bench.store import ResultStore

    cfg = RunConfig(method="tent", objective="adadem", model="cnn", protocol="continual",
                    corruptions=("gaussian_noise", "fog"), n_per_domain=512)
    acc = {}
    for dev in ("cpu", "cuda"):
        store = ResultStore(tmp_path / f"{dev}.sqlite")
        rows = run_experiment(cfg, [1], store, cache_dir=tmp_path / "cache", device=dev)
        acc[dev] = [r["accuracy"] for r in rows]
        store.close()
    assert len(acc["cuda"]) == 2
    for a, b in zip(acc["cpu"], acc["cuda"]):
        assert abs(a - b) <= 0.01  # at most ~5 of 512 predictions may differ by float32 rounding
