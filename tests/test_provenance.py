"""No silent wrong number: every cached split and stored result is keyed by what really produced it (data,
weights, corruption code, stream position), and what cannot be told apart is refused."""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from entmin.bench.config import RunConfig
from entmin.bench.provenance import BUILTIN_PROVENANCE, resolve
from entmin.bench.runner import run_experiment
from entmin.bench.store import ResultStore
from entmin.bench.tables import build_table, table_markdown
from entmin.cli import app
from entmin.data import FMNISTC, write_idx
from entmin.errors import DataError, UsageError
from entmin.models import load_source_model

runner = CliRunner()
FMNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")


def fake_fmnist(folder, images, labels):
    """An IDX dataset folder (train split = test split: only the test split matters here)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(FMNIST_FILES, (images, labels, images, labels)):
        write_idx(folder / (name + ".gz"), np.asarray(arr, np.uint8))
    return folder


@pytest.fixture(scope="module")
def real_subset(fmnist_test):
    from entmin.data.fashion_mnist import load_fashion_mnist

    x, y = load_fashion_mnist("test", as_uint8=True)
    return x[:, 2:30, 2:30][:300].numpy(), y[:300].numpy()


def test_cache_is_keyed_by_the_data_it_was_built_from(tmp_path, real_subset):
    """A test set in another order or a smaller one gets its own cached splits, whose images belong to its
    labels (entmin 0.1 served the first data's images with the second data's labels: 10.7% accuracy)."""
    imgs, labels = real_subset
    a = FMNISTC(fake_fmnist(tmp_path / "a", imgs, labels), tmp_path / "cache")
    b = FMNISTC(fake_fmnist(tmp_path / "b", imgs[::-1], labels[::-1]), tmp_path / "cache")
    c = FMNISTC(fake_fmnist(tmp_path / "c", imgs[:100], labels[:100]), tmp_path / "cache")
    xa, ya = a.load("contrast", 3)  # contrast is deterministic: the same image gives the same pixels
    xb, yb = b.load("contrast", 3)
    xc, yc = c.load("contrast", 3)
    assert len({a.root, b.root, c.root}) == 3
    assert torch.equal(xb, xa.flip(0)) and torch.equal(yb, ya.flip(0))
    assert len(xc) == len(yc) == 100 and torch.equal(xc, xa[:100])
    model = load_source_model("cnn")
    with torch.no_grad():
        acc_a = float((model(xa).argmax(1) == ya).float().mean())
        acc_b = float((model(xb).argmax(1) == yb).float().mean())
    assert acc_a == acc_b


def test_a_cached_split_that_does_not_match_its_labels_is_refused(tmp_path, real_subset):
    imgs, labels = real_subset
    ds = FMNISTC(fake_fmnist(tmp_path / "a", imgs, labels), tmp_path / "cache")
    ds.load("fog", 2)
    p = ds.path("fog", 2)
    short = np.load(p)[:50]
    np.save(p, short)  # a split of 50 images with a checksum that matches it, beside 300 labels
    import hashlib

    ds.checksum_path("fog", 2).write_text(hashlib.sha256(p.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="holds 50 images but the test set .* has 300 labels"):
        ds.load("fog", 2)


def test_builtin_hashes_are_unchanged_and_the_defaults_are_what_this_machine_has(fmnist_test, tmp_path):
    """The stores of entmin 0.1 keep their keys: the provenance found here for a built-in run equals the
    recorded defaults, which leave the hash as it was (pinned from a store written by entmin 0.1)."""
    shutil.copy("tests/data/golden_v1.sqlite", tmp_path / "old.sqlite")
    old = ResultStore(tmp_path / "old.sqlite", readonly=True)
    stored = {r[0]: json.loads(r[1]) for r in old.conn.execute("SELECT config_hash, config FROM configs")}
    for h, d in stored.items():
        d = dict(d, lr=None if d["method"] in ("source", "bn") else d["lr"])
        cfg = RunConfig.from_dict(d)
        assert cfg.hash == h
        resolved = resolve(cfg)
        assert dict(resolved.provenance)["data"] == BUILTIN_PROVENANCE["data"]
        assert resolved.hash == h


def test_weights_replaced_at_the_same_path_are_not_served_from_the_store(tmp_path, fmnist_test):
    """entmin 0.1 keyed results by the weights path: replacing the file served the old model's numbers."""
    w = tmp_path / "mine.pt"
    model = load_source_model("cnn")
    torch.save(model.state_dict(), w)
    cfg = RunConfig(method="source", weights=str(w), corruptions=("fog",), n_per_domain=64)
    st = ResultStore(tmp_path / "s.sqlite")
    first = run_experiment(cfg, [1], st, cache_dir=tmp_path / "cache")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.0)
    torch.save(model.state_dict(), w)
    second = run_experiment(cfg, [1], st, cache_dir=tmp_path / "cache")
    assert first[0]["config_hash"] != second[0]["config_hash"]
    assert len(st.cells()) == 2
    assert first[0]["correct"] != second[0]["correct"]


def test_a_config_resolved_elsewhere_is_refused(tmp_path, fmnist_test):
    cfg = resolve(RunConfig(method="source", corruptions=("fog",)))
    other = dataclasses.replace(cfg, provenance=tuple((k, "0" * 64 if k == "data" else v) for k, v in cfg.provenance))
    with pytest.raises(DataError, match="resolved against other inputs"):
        run_experiment(other, [1], ResultStore(tmp_path / "s.sqlite"), cache_dir=tmp_path / "cache")


def test_integer_numpy_and_misshapen_images_are_refused():
    from entmin.adapt import make_adapter

    model = load_source_model("cnn")
    x = torch.rand(4, 1, 32, 32)
    for target in (model, make_adapter("tent", load_source_model("cnn")), make_adapter("source", model)):
        with pytest.raises(ValueError, match="floating-point images .* uint8"):
            target((x * 255).to(torch.uint8))
        with pytest.raises(ValueError, match="torch.Tensor .* numpy.ndarray"):
            target(x.numpy())
    with pytest.raises(ValueError, match=r"shape \(N, 1, \*, \*\), got \(4, 3, 32, 32\)"):
        model(torch.rand(4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"shape \(N, 1, 32, 32\), got \(4, 1, 28, 28\)"):
        load_source_model("vit")(torch.rand(4, 1, 28, 28))


def test_one_weights_file_for_several_models_is_refused_and_per_model_weights_work(tmp_path, fmnist_test):
    from entmin.bench.grid import parse_weights

    with pytest.raises(UsageError, match="one --weights file for 2 models"):
        parse_weights("mine.pt", ["cnn", "vit"])
    assert parse_weights("cnn=a.pt,vit=b.pt", ["cnn", "vit"]) == {"cnn": "a.pt", "vit": "b.pt"}
    assert parse_weights("vit=b.pt", ["cnn", "vit"]) == {"cnn": None, "vit": "b.pt"}
    with pytest.raises(UsageError, match="not among --models"):
        parse_weights("resnet=a.pt", ["cnn"])
    res = runner.invoke(app, ["compare", "--models", "cnn,vit", "--weights", "mine.pt", "--store",
                              str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "one --weights file for 2 models" in res.output


def test_sibling_metadata_cannot_swap_the_model(tmp_path):
    from entmin.models import save_checkpoint

    path = tmp_path / "vit.pt"
    save_checkpoint(load_source_model("vit"), path, {"arch": "vit", "num_classes": 10})
    res = runner.invoke(app, ["run", "--model", "cnn", "--weights", str(path), "--store", str(tmp_path / "s.sqlite")])
    assert res.exit_code == 2 and "a 'vit' model (says vit.json) but --model cnn" in res.output
    assert len(res.output.strip().splitlines()) == 1


def _cells(hash_, seeds, accs, domains=("fog", "snow")):
    cfg = RunConfig(corruptions=domains).to_dict()
    return [{"config_hash": hash_, "seed": s, "domain": d, "position": i, "n": 100, "correct": int(100 * a),
             "accuracy": a, "metrics": {}, "wall_seconds": 0.0, "config": dict(cfg, objective=hash_)}
            for s, per in zip(seeds, accs) for i, (d, a) in enumerate(zip(domains, per))]


def test_tables_use_finished_seeds_only_and_deltas_on_matched_seeds():
    em = _cells("em", [1, 2], [(0.5, 0.5), (0.7, 0.7)])
    ada = _cells("adadem", [2], [(0.8, 0.8)]) + _cells("adadem", [3], [(0.1,)])  # seed 3 unfinished
    entries = build_table(em + ada)
    e = next(x for x in entries if x["objective"] == "adadem")
    assert e["seeds"] == [2] and e["partial_seeds"] == [3]
    assert e["per_domain"] == {"fog": 0.8, "snow": 0.8}  # the unfinished seed 3 is not averaged in
    md = table_markdown(entries)
    row = next(line for line in md.splitlines() if "| adadem |" in line)
    assert "| +10.0 |" in row  # 0.8 - 0.7 on seed 2, not 0.8 - mean(0.5, 0.7)
    assert "1 (+1 unfinished)" in row
    only1 = build_table(em + ada, seeds=[1])
    assert [x["objective"] for x in only1] == ["em"] and only1[0]["per_domain"]["fog"] == 0.5


def test_compare_reports_exactly_the_requested_seeds(tmp_path, fmnist_test):
    args = ["compare", "--methods", "source", "--protocols", "single", "--corruptions", "fog", "--n-per-domain",
            "32", "--store", str(tmp_path / "s.sqlite"), "--out", str(tmp_path / "o"), "--cache-dir",
            str(tmp_path / "cache")]
    assert runner.invoke(app, [*args, "--seeds", "1,2"]).exit_code == 0
    res = runner.invoke(app, [*args, "--seeds", "1"])
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if line.startswith("| source |"))
    assert row.split("|")[-2].split()[0] == "1", row  # seeds column: 1 (seed 2 is in the store, not asked for)


def test_a_domain_visited_twice_keeps_both_visits(tmp_path, fmnist_test):
    cfg = RunConfig(protocol="continual", corruptions=("fog", "contrast", "fog"), n_per_domain=64, lr=0.05)
    rows = run_experiment(cfg, [1], ResultStore(tmp_path / "s.sqlite"), cache_dir=tmp_path / "cache")
    assert [(r["position"], r["domain"]) for r in rows] == [(0, "fog"), (1, "contrast"), (2, "fog")]
    assert rows[0]["metrics"]["batch_acc"] != rows[2]["metrics"]["batch_acc"]  # adapted in between


@pytest.mark.parametrize("args, message", [
    (["--seeds", ""], "empty list"),
    (["--seeds", "a"], "'--seeds'"),
    (["--severity", "0"], "must be 1 to 5"),
    (["--seeds", str(2 ** 64)], "seed must be an integer"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--threads", "-1"], "--threads must be >= 1"),
])
def test_edge_inputs_are_usage_errors_before_any_compute(tmp_path, args, message):
    store = tmp_path / "s.sqlite"
    res = runner.invoke(app, ["run", "--corruptions", "fog", "--store", str(store), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not store.exists() or not ResultStore(store).cells()


def test_old_stores_migrate_in_place_and_rerun_nothing(tmp_path, fmnist_test, monkeypatch):
    """A store of entmin 0.1 (cells keyed by domain) opens, is migrated to position keys without losing a
    cell, and a rerun of its grid with today's code computes nothing and prints the same table."""
    path = tmp_path / "old.sqlite"
    shutil.copy("tests/data/golden_v1.sqlite", path)
    before = ResultStore(path, readonly=True).cells()
    st = ResultStore(path)
    assert st.conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert st.cells() == before
    import entmin.bench.runner as r

    calls = []
    monkeypatch.setattr(r, "_build_adapter", lambda *a, **k: calls.append(a) or pytest.fail("recomputed"))
    for h in {c["config_hash"] for c in before}:
        d = next(c["config"] for c in before if c["config_hash"] == h)
        run_experiment(RunConfig.from_dict(dict(d, lr=None)), [1, 2], st, cache_dir=tmp_path / "cache")
    assert not calls
    # byte-identical to entmin 0.1's table (the collapse flag came later: off here)
    assert table_markdown(build_table(st.cells()), flag_collapse=False) == Path("tests/data/golden_table.md").read_text()


def test_the_golden_grid_recomputed_today_gives_entmin_0_1s_table(tmp_path, fmnist_test):
    """The same small grid that entmin 0.1 ran (tests/data/golden_v1.sqlite), recomputed from scratch with
    today's runner, streams and tables, prints its table byte for byte (collapse flag off, it came later)."""
    common = {"corruptions": ("gaussian_noise", "contrast", "fog"), "n_per_domain": 96, "batch_size": 32}
    cfgs = [RunConfig(method="source", **common)]
    for protocol in ("single", "continual"):
        cfgs += [RunConfig(method="tent", objective=o, protocol=protocol, **common) for o in ("em", "adadem")]
        cfgs += [RunConfig(method="eta", objective="adadem", protocol=protocol, model="vit", **common)]
    st = ResultStore(tmp_path / "new.sqlite")
    for c in cfgs:
        run_experiment(c, [1, 2], st, cache_dir=tmp_path / "cache")
    assert table_markdown(build_table(st.cells()), flag_collapse=False) == \
        Path("tests/data/golden_table.md").read_text()
