"""Segmentation: scenes, their cache, metrics, per-pixel Tent on the U-Net, the TTA runner's records and
resume, and the refusals."""
import copy

import pytest
import torch
from typer.testing import CliRunner

from entmin.adapt import make_adapter
from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.errors import UsageError
from entmin.seg import BACKGROUND, NUM_SEG_CLASSES, SceneData, SegMetrics, make_scenes
from entmin.seg.scenes import INK
from entmin.seg.train import SegRecipe, load_seg_model, save_segmenter, train_segmenter
from entmin.seg.tta import SEG_RECORD, SegTTAConfig, run_seg_tta


@pytest.fixture(scope="module")
def garments(fmnist_test):
    x, y = fmnist_test
    return x[:200], y[:200]


def test_scenes_are_deterministic_and_every_label_names_its_pixel(garments):
    x, y = make_scenes(*garments, 40, seed=3)
    x2, y2 = make_scenes(*garments, 40, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(make_scenes(*garments, 40, seed=4)[1], y)
    assert x.shape == (40, 1, 64, 64) and y.shape == (40, 64, 64)
    assert bool((x[:, 0][y == BACKGROUND] == 0).all())          # background is empty canvas
    assert bool((x[:, 0][y != BACKGROUND] > INK).all())          # a garment label sits on garment ink
    present = set(y.unique().tolist())
    assert BACKGROUND in present and len(present) >= 6


def test_scene_cache_is_keyed_and_checked(tmp_path, fmnist_test):
    data = SceneData(cache_dir=tmp_path, n_train=30, n_test=20)
    x, y = data.split("clean", "test")
    fog, _ = data.split("fog", "test")
    assert x.shape == (20, 1, 64, 64) and not torch.equal(fog, x)
    assert SceneData(cache_dir=tmp_path, n_train=30, n_test=21).fingerprint != data.fingerprint
    assert SceneData(cache_dir=tmp_path, n_train=30, n_test=20, severity=3).fingerprint != data.fingerprint
    # a damaged file is rebuilt, never served
    path = next((tmp_path / "fmnist-scenes" / data.fingerprint).glob("test-clean.pt"))
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    x2, y2 = data.split("clean", "test")
    assert torch.equal(x2, x) and torch.equal(y2, y)
    assert torch.equal(data.split("inverted", "test")[0], 1 - x)
    with pytest.raises(UsageError, match="unknown target domain .fogg."):
        data.split("fogg", "test")


def test_metrics_match_a_looped_reference():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randint(0, 4, (3, 8, 8), generator=g), torch.randint(0, 4, (3, 8, 8), generator=g)
    target[0, 0, :4] = 255
    m = SegMetrics(4, ignore_index=255)
    m.update(pred[:2], target[:2])
    m.update(pred[2:], target[2:])
    valid = target != 255
    ious = []
    for c in range(4):
        p, t = (pred == c) & valid, (target == c) & valid
        ious.append(((p & t).sum() / (p | t).sum()).item())
    assert torch.allclose(m.iou(), torch.tensor(ious, dtype=torch.float64))
    assert m.miou() == pytest.approx(sum(ious) / 4)
    assert m.pixel_accuracy() == pytest.approx(((pred == target) & valid).sum().item() / valid.sum().item())


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory, fmnist_test):
    cache = tmp_path_factory.mktemp("scenes")
    data = SceneData(cache_dir=cache, n_train=64, n_test=24)
    model, info = train_segmenter(data, SegRecipe(steps=3, batch_size=8, width=4))
    path = tmp_path_factory.mktemp("w") / "seg.pt"
    save_segmenter(model, info, path)
    return path, data


@pytest.mark.parametrize("objective", ["em", "adadem"])
def test_per_pixel_tent_changes_only_bn_affine_and_resets_exactly(tiny_segmenter, objective):
    path, data = tiny_segmenter
    model, _ = load_seg_model(path)
    x, _ = data.split("contrast", "test")
    ad = make_adapter("tent", copy.deepcopy(model), objective, num_classes=NUM_SEG_CLASSES,
                      optimizer={"name": "adam", "lr": 1e-2})
    before = {k: v.clone() for k, v in ad.model.state_dict().items()}
    out = ad(x[:8])
    assert out.shape == (8, NUM_SEG_CLASSES, 64, 64)
    ad(x[8:16])
    after = ad.model.state_dict()
    changed = {k for k in before if before[k].shape == after[k].shape and not torch.equal(before[k], after[k])}
    assert changed and all(".1." in k or ".4." in k for k in changed)           # BatchNorm2d positions only
    assert all(k.endswith(("weight", "bias")) for k in changed)
    if objective == "adadem":
        assert ad.objective.bank.shape == (NUM_SEG_CLASSES, NUM_SEG_CLASSES) and int(ad.objective.num_updates) == 2
    ad.reset()
    assert all(torch.equal(before[k], v) for k, v in ad.model.state_dict().items() if k in before)


def _cfg(protocol="continual", objective="adadem"):
    return SegTTAConfig("tent", objective, protocol, ("fog", "contrast", "snow"), 8, 16, "adam", 1e-3)


def test_runner_records_every_domain_and_resumes_a_killed_stream_exactly(tiny_segmenter, tmp_path):
    path, data = tiny_segmenter
    model, _ = load_seg_model(path)
    straight = run_seg_tta(_cfg(), 0, ResultStore(tmp_path / "a.sqlite"), model, data)
    assert [r["domain"] for r in straight] == ["fog", "contrast", "snow"]
    st = ResultStore(tmp_path / "b.sqlite")

    class Killed(Exception):
        pass

    def kill_after_first(rec):
        if rec["position"] == 0:
            raise Killed

    with pytest.raises(Killed):
        run_seg_tta(_cfg(), 0, st, model, data, progress=kill_after_first)
    assert len(st.get_records(SEG_RECORD)) == 1 and st.load_state(_cfg().hash, 0) is not None
    resumed = run_seg_tta(_cfg(), 0, st, model, data)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rs]
    assert strip(resumed) == strip(straight)
    # single-domain resets: each domain equals a fresh adapter's run on it alone
    single = run_seg_tta(_cfg("single"), 0, st, model, data)
    alone = SegTTAConfig("tent", "adadem", "single", ("contrast",), 8, 16, "adam", 1e-3)
    one = run_seg_tta(alone, 0, st, model, data)
    assert single[1]["miou"] != straight[1]["miou"] or single[1]["iou"] != straight[1]["iou"]
    assert one[0]["n"] == single[1]["n"]


def test_the_key_covers_what_decides_a_run():
    base = _cfg()
    for change in ({"lr": 1e-2}, {"objective": "em"}, {"protocol": "single"}, {"n_per_domain": 8},
                   {"weights_sha256": "x"}, {"scenes_fingerprint": "y"}, {"code_version": 2}):
        assert SegTTAConfig(**{**base.__dict__, **change}).hash != base.hash, change
    assert SegTTAConfig(**base.__dict__).hash == base.hash


def test_unsupported_hosts_and_domains_are_refused(tiny_segmenter, tmp_path):
    with pytest.raises(UsageError, match="selects whole samples by entropy"):
        SegTTAConfig("eta")
    with pytest.raises(UsageError, match="unknown domain"):
        SegTTAConfig("tent", corruptions=("fogg",))
    res = CliRunner().invoke(app, ["seg-tta", "--methods", "eta", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "eta" in res.output
    res = CliRunner().invoke(app, ["seg-tta", "--n-per-domain", "0", "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "--n-per-domain and --batch-size must be >= 1" in res.output
    res = CliRunner().invoke(app, ["seg-tta", "--weights", str(tmp_path / "none.pt"),
                                   "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 1 and "no segmentation checkpoint" in res.output


def test_cli_and_report(tiny_segmenter, tmp_path):
    path, data = tiny_segmenter
    args = ["seg-tta", "--weights", str(path), "--corruptions", "fog,contrast", "--n-per-domain", "8",
            "--batch-size", "8", "--seeds", "0", "--protocols", "single", "--store", str(tmp_path / "s.sqlite"),
            "--cache-dir", str(data.cache_dir), "--figure", str(tmp_path / "maps.png")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "maps.png").read_bytes()[:4] == b"\x89PNG"
    res = CliRunner().invoke(app, ["report", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "r" / "seg_table.md").read_text()
    for label in ("source", "bn", "tent+em", "tent+adadem"):
        assert f"| {label} |" in table
    assert table.splitlines()[0].startswith("| protocol | method | lr | mean mIoU")


# ----- UDA -------------------------------------------------------------------------------------------------------
def _uda(method="minent", objective="adadem", **kw):
    from entmin.seg.uda import UDAConfig
    return UDAConfig(method, objective, steps=kw.pop("steps", 4), batch_size=4, checkpoint_every=2, **kw)


@pytest.mark.parametrize(("method", "objective"), [("minent", "adadem"), ("advent", "adadem")])
def test_uda_resumes_a_killed_run_to_the_same_weights(tiny_segmenter, tmp_path, method, objective):
    from entmin.seg.uda import UDA_RECORD, run_uda
    path, data = tiny_segmenter
    model, _ = load_seg_model(path)
    straight = run_uda(_uda(method, objective), 0, ResultStore(tmp_path / "a.sqlite"), model, data)
    st = ResultStore(tmp_path / "b.sqlite")

    class Killed(Exception):
        pass

    def kill(step):
        raise Killed

    with pytest.raises(Killed):
        run_uda(_uda(method, objective), 0, st, model, data, progress=kill)
    assert not st.get_records(UDA_RECORD)
    resumed = run_uda(_uda(method, objective), 0, st, model, data)
    assert resumed["resumed_from"] == 2 and resumed["weights_sha256"] == straight["weights_sha256"]
    assert resumed["miou"] == straight["miou"]


def test_uda_killed_with_sigkill_resumes_to_the_same_weights(tiny_segmenter, tmp_path):
    """A real process kill (not an exception) after a checkpoint: the rerun resumes from it and ends with the
    weights of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from entmin.seg.uda import UDA_RECORD, run_uda
    path, data = tiny_segmenter
    store = tmp_path / "u.sqlite"
    cmd = [sys.executable, "-m", "entmin.cli", "seg-uda", "--weights", str(path), "--methods", "minent", "--objectives",
           "adadem", "--steps", "300", "--checkpoint-every", "2", "--batch-size", "4", "--seeds", "0",
           "--store", str(store), "--cache-dir", str(data.cache_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not any(tmp_path.glob("u-resume/*.pt")):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not ResultStore(store).get_records(UDA_RECORD)
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (resumed,) = ResultStore(store).get_records(UDA_RECORD).values()
    model, meta = load_seg_model(path)
    torch.set_num_threads(1)
    cfg = _uda("minent", "adadem", steps=300, weights_sha256=meta["sha256"], scenes_fingerprint=data.fingerprint)
    straight = run_uda(cfg, 0, ResultStore(tmp_path / "s.sqlite"), model, data)
    assert resumed["resumed_from"] > 0
    assert resumed["config_hash"] == straight["config_hash"]
    assert resumed["weights_sha256"] == straight["weights_sha256"] and resumed["miou"] == straight["miou"]


def test_uda_terms_really_act(tiny_segmenter, tmp_path):
    """The objective and the adversarial term each change the trained weights; the source model is untouched."""
    from entmin.seg.uda import run_uda
    path, data = tiny_segmenter
    model, _ = load_seg_model(path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    st = ResultStore(tmp_path / "s.sqlite")
    runs = {(m, o): run_uda(_uda(m, o), 0, st, model, data)["weights_sha256"]
            for m, o in (("source", "em"), ("minent", "em"), ("minent", "adadem"), ("advent", "none"))}
    assert len(set(runs.values())) == 4
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(UsageError, match="unknown UDA method"):
        _uda("adda")
    with pytest.raises(UsageError, match="minent needs an objective"):
        _uda("minent", "none")


def test_uda_cli_and_report(tiny_segmenter, tmp_path, monkeypatch):
    path, data = tiny_segmenter
    store = tmp_path / "u.sqlite"
    res = CliRunner().invoke(app, ["seg-uda", "--weights", str(path), "--steps", "2", "--batch-size", "4",
                                   "--seeds", "0", "--store", str(store), "--cache-dir", str(data.cache_dir)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["seg-uda", "--weights", str(path), "--steps", "2", "--batch-size", "4",
                                   "--methods", "minent", "--objectives", "adadem", "--lambda-ent", "0.03",
                                   "--seeds", "0", "--store", str(store), "--cache-dir", str(data.cache_dir)])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["report", "--store", str(store), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    table = (tmp_path / "r" / "seg_uda_table.md").read_text()
    for label in ("source only (no adaptation)", "source fine-tuning", "MinEnt |", "MinEnt+adadem", "AdvEnt |",
                  "AdvEnt+adadem"):
        assert label in table, label
    # two configurations that differ only by lambda are two rows that say so
    assert "| MinEnt+adadem | 2 | 0.1 | – |" in table and "| MinEnt+adadem | 2 | 0.03 | – |" in table
    assert "| AdvEnt | 2 | – | 0.01 |" in table and "| AdvEnt+adadem | 2 | 0.1 | 0.01 |" in table
    # the maps figure is drawn from the store alone: the source record keeps the scenes, their truth and the
    # source model's maps, each UDA record its own maps
    from entmin.seg.report import MAP_SCENES, unpack_uint8
    assert (tmp_path / "r" / "seg_uda_maps_inverted.png").stat().st_size > 0
    src = next(iter(ResultStore(store).get_records("seg-uda-source").values()))
    x, y = data.split("inverted", "test")
    model, _ = load_seg_model(path)
    with torch.no_grad():
        expected = model.eval()(x[:MAP_SCENES]).argmax(1)
    assert torch.equal(unpack_uint8(src["maps"]).long(), expected)
    assert torch.equal(unpack_uint8(src["truth"]).long(), y[:MAP_SCENES])
    assert (unpack_uint8(src["scenes"]).float() / 255 - x[:MAP_SCENES]).abs().max() <= 0.5 / 255 + 1e-6
    recs = ResultStore(store).get_records("seg-uda")
    assert all(unpack_uint8(r["maps"]).shape == expected.shape for r in recs.values())
    # one column per configuration: the two MinEnt+adadem runs (lambda 0.1 and 0.03) are both drawn and titled
    import entmin.seg.report as seg_report
    drawn = {}
    monkeypatch.setattr(seg_report, "seg_maps_figure", lambda images, truth, preds, path, title="": drawn.update(preds))
    seg_report.uda_maps_figure(recs, ResultStore(store).get_records("seg-uda-source"), tmp_path)
    assert {"MinEnt+adadem (λ 0.1, –)", "MinEnt+adadem (λ 0.03, –)", "MinEnt", "source only"} <= set(drawn)
    assert len(drawn) == 1 + len({r["config_hash"] for r in recs.values()})
    res = CliRunner().invoke(app, ["seg-uda", "--weights", str(path), "--target", "sepia",
                                   "--store", str(store), "--cache-dir", str(data.cache_dir)])
    assert res.exit_code == 2 and "unknown target domain 'sepia'" in res.output


def test_uda_dem_grid_from_the_cli_reaches_the_objective(tiny_segmenter, tmp_path):
    """--tau/--alpha lists make one AdvEnt+DEM run per pair; each pair is its own configuration (key, label) and
    really reaches the objective (different tau, different trained weights)."""
    from entmin.seg.uda import UDA_RECORD
    path, data = tiny_segmenter
    store = tmp_path / "d.sqlite"
    res = CliRunner().invoke(app, ["seg-uda", "--weights", str(path), "--steps", "2", "--batch-size", "4",
                                   "--methods", "advent", "--objectives", "dem", "--tau", "0.5,2", "--alpha", "1",
                                   "--seeds", "0", "--store", str(store), "--cache-dir", str(data.cache_dir)])
    assert res.exit_code == 0, res.output
    recs = ResultStore(store).get_records(UDA_RECORD)
    by_label = {r["label"]: r for r in recs.values()}
    assert set(by_label) == {"AdvEnt", "AdvEnt+dem(alpha=1, tau=0.5)", "AdvEnt+dem(alpha=1, tau=2)"}
    assert len({r["weights_sha256"] for r in recs.values()}) == 3
    assert dict(by_label["AdvEnt+dem(alpha=1, tau=2)"]["config"]["objective_options"]) == {"alpha": 1.0, "tau": 2.0}
    res = CliRunner().invoke(app, ["seg-uda", "--weights", str(path), "--objectives", "dem", "--tau", "0",
                                   "--store", str(store), "--cache-dir", str(data.cache_dir)])
    assert res.exit_code == 2 and "--tau must be > 0" in res.output


@pytest.mark.parametrize("arch", ["deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50"])
def test_a_torchvision_segmenter_takes_per_pixel_tent_with_adadem(arch):
    """torchvision's models (random init, through the CPU route) plug into the same adapters: the dict output is
    unwrapped, grayscale is repeated to RGB, only BN affine parameters move, reset is exact."""
    from entmin.adapt import make_adapter
    from entmin.models.zoo import import_vision_library
    from entmin.seg import DenseLogits

    try:
        tv = import_vision_library("torchvision")
    except Exception as e:                       # the vision extra is optional outside CI
        pytest.skip(f"torchvision unavailable: {e}")
    torch.manual_seed(0)
    net = getattr(tv.models.segmentation, arch)(weights=None, weights_backbone=None, num_classes=11)
    model = DenseLogits(net, in_channels=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tent = make_adapter("tent", model, "adadem", num_classes=11, optimizer={"name": "adam", "lr": 1e-3})
    x = torch.rand(2, 1, 64, 64)
    out = tent(x)
    assert out.shape == (2, 11, 64, 64)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert changed and all(k.rsplit(".", 1)[0] in norms and k.endswith(("weight", "bias")) for k in changed)
    assert int(tent.objective.num_updates) == 1                          # the bank saw the pixels once
    tent.reset()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
