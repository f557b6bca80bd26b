"""Adaptation really helps under a real shift: every method with every objective beats the source model on
1,024 Fashion-MNIST test images with severity-5 Gaussian noise, for the committed BatchNorm CNN and the
committed LayerNorm ViT (where no BatchNorm statistics help: the gain comes from the updates alone)."""
import pytest

from entmin.adapt import make_adapter
from entmin.data.fashion_mnist import load_fashion_mnist
from entmin.models import load_source_model

LR = {"cnn": 1e-3, "vit": 1e-3}


def accuracy(adapter, x, y, bs=64):
    correct = 0
    for i in range(0, len(x), bs):
        correct += int((adapter(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum())
    return correct / len(x)


@pytest.fixture(scope="module")
def fisher_batches(fmnist_test):
    x, _ = load_fashion_mnist("train")
    return [x[i:i + 64] for i in range(0, 512, 64)]


@pytest.fixture(scope="module")
def source_acc(shifted_sample):
    x, y = shifted_sample
    return {m: accuracy(make_adapter("source", load_source_model(m)), x, y) for m in ("cnn", "vit")}


@pytest.mark.parametrize("model_name", ["cnn", "vit"])
@pytest.mark.parametrize("method", ["tent", "eta", "eata", "sar", "deyo"])
@pytest.mark.parametrize("objective", ["em", "dem", "adadem"])
def test_adaptation_beats_source(model_name, method, objective, shifted_sample, source_acc, fisher_batches):
    x, y = shifted_sample
    kw = {"optimizer": {"lr": LR[model_name]}, "seed": 1}
    if method == "eata":
        kw["fisher_loader"] = fisher_batches
    opts = {"tau": 1.2, "alpha": 0.8} if objective == "dem" else None
    adapter = make_adapter(method, load_source_model(model_name), objective, objective_options=opts, **kw)
    acc = accuracy(adapter, x, y)
    assert acc > source_acc[model_name] + 0.01, (method, objective, acc, source_acc[model_name])
