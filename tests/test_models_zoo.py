"""Model specs: built-in checkpoints, timm/torchvision architectures with local weights (a stand-in module
plays timm/torchvision here: CI installs neither), input normalisation, and the errors of bad specs."""
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from entmin.adapt import default_frozen_modules
from entmin.bench.config import RunConfig
from entmin.cli import app
from entmin.errors import UsageError
from entmin.models import load_checkpoint
from entmin.models.zoo import load_model, parse_model_spec


class TinyResNet(nn.Module):
    """Named like a torchvision ResNet (layer4, fc) so that SAR's default frozen layer is found by name."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer4 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.fc = nn.Linear(8, num_classes)
        self.pretrained_cfg = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.5)}

    def forward(self, x):
        x = self.layer4(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def fake_timm(monkeypatch):
    calls = []

    def create_model(name, pretrained=False, num_classes=1000):
        calls.append((name, pretrained, num_classes))
        if name != "tinyresnet":
            raise RuntimeError(f"Unknown model ({name})")
        return TinyResNet(num_classes)

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    return calls


@pytest.fixture
def weights_file(tmp_path):
    torch.manual_seed(3)
    ref = TinyResNet(10)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": ref.state_dict()}, path)  # nested, as many training scripts save it
    return ref, path


def test_parse_model_spec():
    assert parse_model_spec("cnn") == ("builtin", "cnn")
    assert parse_model_spec("timm:vit_base_patch16_224") == ("timm", "vit_base_patch16_224")
    assert parse_model_spec("torchvision:resnet50") == ("torchvision", "resnet50")
    for bad in ("resnet50", "timm:", "keras:resnet50", ""):
        with pytest.raises(ValueError, match="unknown model"):
            parse_model_spec(bad)
    with pytest.raises(ValueError, match="'model'"):
        RunConfig(model="resnet50")
    with pytest.raises(ValueError, match="needs weights"):
        RunConfig(model="timm:resnet50")


def test_builtin_hashes_do_not_depend_on_the_new_weights_field():
    d = RunConfig().to_dict()
    assert "weights" not in d
    assert RunConfig(model="timm:x", weights="w.pt").to_dict()["weights"] == "w.pt"
    assert RunConfig(model="timm:x", weights="a.pt").hash != RunConfig(model="timm:x", weights="b.pt").hash


def test_timm_model_gets_local_weights_and_input_normalisation(fake_timm, weights_file):
    ref, path = weights_file
    model = load_model("timm:tinyresnet", path, num_classes=10)
    assert fake_timm == [("tinyresnet", False, 10)]
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert set(model.state_dict()) == set(ref.state_dict()), "normalisation buffers must not enter the state dict"
    assert default_frozen_modules(model) == ["layer4"], "module names must stay the library's"
    x = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    ref.eval()
    torch.testing.assert_close(model(x), ref((x - mean) / std))


def test_external_model_errors(fake_timm, weights_file, tmp_path, monkeypatch):
    _, path = weights_file
    with pytest.raises(ValueError, match="needs weights"):
        load_model("timm:tinyresnet", None)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_model("timm:tinyresnet", tmp_path / "missing.pt", num_classes=10)
    with pytest.raises(ValueError, match="does not fit"):
        load_model("timm:tinyresnet", path, num_classes=1000)  # 10-class weights, 1000-class head
    with pytest.raises(ValueError, match="cannot build 'timm:nosuchnet'"):
        load_model("timm:nosuchnet", path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable PyTorch file"):
        load_model("timm:tinyresnet", tmp_path / "junk.pt", num_classes=10)
    monkeypatch.setitem(sys.modules, "torchvision", None)  # not installed
    with pytest.raises(ValueError, match="needs the torchvision package"):
        load_model("torchvision:resnet18", path)


def test_builtin_model_from_a_weights_file(tmp_path):
    model = load_model("cnn")
    path = tmp_path / "mine.pt"
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    torch.save(model.state_dict(), path)  # no metadata JSON beside it: arch from the spec
    again = load_model("cnn", path)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)
    with pytest.raises(ValueError, match="does not fit"):
        load_checkpoint(load_model("vit"), path)


def test_cli_runs_tent_on_cifar10c_format_with_a_timm_model(fake_timm, weights_file, tmp_path):
    _, path = weights_file
    rng = np.random.default_rng(0)
    data = tmp_path / "CIFAR-10-C"
    data.mkdir()
    np.save(data / "fog.npy", rng.integers(0, 256, (5 * 40, 8, 8, 3), dtype=np.uint8))
    np.save(data / "labels.npy", np.arange(5 * 40) % 10)
    store = tmp_path / "r.sqlite"
    out = CliRunner().invoke(app, ["run", "--method", "tent", "--model", "timm:tinyresnet", "--weights", str(path),
                                   "--dataset", "cifar10c", "--data-dir", str(data), "--corruptions", "fog",
                                   "--batch-size", "16", "--store", str(store), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    assert "| tent | em |" in out.output
    from entmin.bench.store import ResultStore

    cells = ResultStore(store).cells()
    assert len(cells) == 1 and cells[0]["n"] == 40 and cells[0]["domain"] == "fog"
    assert fake_timm[-1] == ("tinyresnet", False, 10)  # CIFAR-10-C: 10 classes
    bad = CliRunner().invoke(app, ["run", "--model", "timm:tinyresnet", "--dataset", "cifar10c", "--data-dir",
                                   str(data), "--store", str(store)])
    assert bad.exit_code == 2 and "needs weights" in bad.output


def test_saved_checkpoint_round_trip_and_tamper_check(tmp_path):
    from entmin.models import save_checkpoint

    model = load_model("vit")
    path = tmp_path / "new" / "mine.pt"  # the folder does not exist yet
    meta = save_checkpoint(model, path, {"arch": "vit", "num_classes": 10})
    assert sorted(p.name for p in path.parent.iterdir()) == ["mine.json", "mine.pt"]  # no temp file left
    with pytest.raises(UsageError, match=r"are a 'vit' model \(says mine.json\) but --model cnn"):
        load_model("cnn", path)  # the sibling metadata must not silently swap the architecture
    again = load_model("vit", path)
    assert type(again).__name__ == type(model).__name__ and meta["arch"] == "vit"
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)
    path.write_bytes(path.read_bytes()[:-8] + b"tampered")
    with pytest.raises(ValueError, match="corrupt or was replaced"):
        load_model("vit", path)


@pytest.mark.parametrize("name", ["cnn", "cnn_gn", "vit"])
def test_committed_source_models_score_what_their_metadata_says(name, fmnist_test):
    """Each committed checkpoint loads (checksum-verified) and reproduces its recorded clean accuracy."""
    from entmin.models.checkpoints import CHECKPOINT_DIR, checkpoint_metadata, load_source_model

    model = load_source_model(name)
    x, y = fmnist_test
    with torch.no_grad():
        acc = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
    meta = checkpoint_metadata(CHECKPOINT_DIR / f"fmnist_{name}.pt")
    assert acc / len(x) == pytest.approx(meta["clean_test_accuracy"], abs=1e-4)
    assert meta["arch"] == name
