import os

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def loud_cnn():
    """Factory of the committed BN CNN with a 64x larger head: at GradScaler's initial scale 2^16 its fp16
    gradients overflow, so the fp16 tests see steps skipped and the scale backed off."""
    from entmin.models import load_source_model

    def make():
        m = load_source_model("cnn")
        with torch.no_grad():
            [*m.modules()][-1].weight.mul_(64.0)
        return m
    return make


@pytest.fixture(scope="session")
def fmnist_test():
    """The real Fashion-MNIST test split; in CI its absence is an error, elsewhere a skip."""
    from entmin.data.fashion_mnist import load_fashion_mnist

    try:
        return load_fashion_mnist("test")
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def shifted_sample(fmnist_test):
    """1,024 real test images with severity-5 Gaussian noise: a genuine covariate shift."""
    from entmin.data.corruptions import corrupt

    x, y = fmnist_test
    g = torch.Generator().manual_seed(123)
    idx = torch.randperm(len(x), generator=g)[:1024]
    return corrupt(x[idx], "gaussian_noise", 5, seed=7), y[idx]
