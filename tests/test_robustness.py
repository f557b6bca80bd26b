"""Failures of the machine and of the environment: full disks, shared caches, read-only stores, killed
parents; and the command line's contract (help on every option, --config vs flags, where files go)."""
import ast
import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from entmin.bench.store import ResultStore
from entmin.cli import app
from entmin.errors import DataError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_a_full_disk_during_a_cell_write_is_one_line_and_keeps_the_finished_cells(tmp_path):
    st = ResultStore(tmp_path / "s.sqlite")
    st.register("h", {"a": 1})
    st.write_cell("h", 1, "fog", 0, 10, 5, {}, 1.0)
    pages = st.conn.execute("PRAGMA page_count").fetchone()[0]
    st.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is now full for this database
    with pytest.raises(DataError, match="cannot write to the results store .* full; the cells finished before "
                                        "are kept"):
        st.write_cell("h", 1, "snow", 1, 10, 7, {"big": "x" * 200_000}, 1.0)
    st.close()
    assert [(c["domain"], c["correct"]) for c in ResultStore(tmp_path / "s.sqlite").cells()] == [("fog", 5)]


def test_a_failed_resume_state_write_leaves_no_temp_file_and_no_partial_state(tmp_path, monkeypatch):
    st = ResultStore(tmp_path / "s.sqlite")
    st.save_state("h", 1, 0, {"x": torch.ones(3)})

    def full(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DataError, match="cannot write the resume state .*: No space left on device"):
        st.save_state("h", 1, 1, {"x": torch.zeros(3)})
    assert sorted(p.name for p in st.resume_dir.iterdir()) == ["h-seed1.pt"]  # no temp file
    pos, state = st.load_state("h", 1)
    assert pos == 0 and torch.equal(state["x"], torch.ones(3))  # the previous state is intact


def test_cache_and_store_files_follow_the_umask(tmp_path, fmnist_test):
    """mkstemp makes 0600 files: a second user of a shared cache got a PermissionError (entmin 0.1)."""
    from entmin.data import FMNISTC

    old = os.umask(0o022)
    try:
        ds = FMNISTC(cache_dir=tmp_path)
        ds.build("contrast", 1)
        st = ResultStore(tmp_path / "s.sqlite")
        st.save_state("h", 1, 0, {"x": torch.ones(1)})
    finally:
        os.umask(old)
    for p in (ds.path("contrast", 1), ds.checksum_path("contrast", 1), st._state_path("h", 1)):
        assert p.stat().st_mode & 0o777 == 0o644, p


def test_report_reads_a_store_without_touching_it(tmp_path, fmnist_test):
    """entmin 0.1 switched the journal mode and created tables when only reading: a read-only store could not
    be reported. The file's bytes and the folder's listing must be the same after `report`."""
    import shutil

    path = tmp_path / "old.sqlite"
    shutil.copy(ROOT / "tests/data/golden_v1.sqlite", path)
    import sqlite3

    with sqlite3.connect(path) as c:  # a store in SQLite's default rollback-journal mode
        c.execute("PRAGMA journal_mode=DELETE")
    digest, listing = hashlib.sha256(path.read_bytes()).hexdigest(), sorted(os.listdir(tmp_path))
    path.chmod(0o444)
    res = runner.invoke(app, ["report", "--store", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(os.listdir(tmp_path)) == sorted([*listing, "out"])
    from entmin.bench.tables import build_table, table_markdown

    expected = table_markdown(build_table(ResultStore(path, readonly=True).cells()))
    assert (tmp_path / "out" / "table.md").read_text() == expected


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_a_read_only_store_is_refused_for_writing(tmp_path):
    ResultStore(tmp_path / "s.sqlite").close()
    (tmp_path / "s.sqlite").chmod(0o444)
    with pytest.raises(DataError, match="is read-only"):
        ResultStore(tmp_path / "s.sqlite")


def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _alive(pid):
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_corrupt_workers_die_with_their_parent(tmp_path, fmnist_test):
    """After a kill -9 of `entmin corrupt` its workers went on building (and writing) splits for seconds."""
    proc = subprocess.Popen([sys.executable, "-m", "entmin.cli", "corrupt", "--workers", "2", "--cache-dir",
                             str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    workers = []
    while time.time() < deadline and len(workers) < 2:
        workers = [c for c in _children(proc.pid) if "python" in (Path("/proc") / str(c) / "cmdline").read_text()]
        time.sleep(0.1)
    assert len(workers) >= 2, "the pool never started"
    time.sleep(0.5)  # 75 splits to build: the workers are busy
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = set(tmp_path.rglob("*.npy"))
    time.sleep(3.0)  # a surviving worker finishes a split in about a second
    alive = [w for w in workers if _alive(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    assert not alive, "workers kept running after their parent was killed"
    assert set(tmp_path.rglob("*.npy")) == at_kill, "a worker wrote a split after its parent died"
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def _commands():
    from typer.main import get_command

    group = get_command(app)
    return [(name, cmd) for name, cmd in sorted(group.commands.items())]


@pytest.mark.parametrize("name", [n for n, _ in _commands()])
def test_every_option_of_every_command_has_help_and_lists_its_choices(name):
    cmd = dict(_commands())[name]
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output
    for p in cmd.params:
        if p.param_type_name == "option" and p.name != "help":
            assert p.help and p.help.strip(), f"{name} --{p.name} has no help text"


def test_method_and_objective_choices_are_listed_in_help():
    out = " ".join(runner.invoke(app, ["run", "--help"]).output.split())
    for word in ("tent", "eata", "deyo", "adadem_norm", "continual", "imagenetc"):
        assert word in out


def test_config_file_values_apply_and_explicit_flags_win(tmp_path, fmnist_test):
    (tmp_path / "exp.toml").write_text('method = "sar"\nlr = 0.5\nn_per_domain = 32\ncorruptions = ["fog"]\n')
    store = tmp_path / "s.sqlite"
    res = runner.invoke(app, ["run", "--config", str(tmp_path / "exp.toml"), "--lr", "0.002", "--store",
                              str(store), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    [cell] = ResultStore(store).cells()
    assert cell["config"]["method"] == "sar"          # from the file
    assert cell["config"]["lr"] == 0.002              # the flag wins over the file's 0.5
    assert cell["config"]["n_per_domain"] == 32


@pytest.mark.parametrize("command", ["run", "compare"])
def test_config_file_tables_reach_the_objective_and_the_method(tmp_path, fmnist_test, command):
    """TOML tables ([objective_options], [method_options]) through run and compare (compare once refused them as
    'not a table'); an option the adapter does not take is a usage error, not ignored."""
    (tmp_path / "exp.toml").write_text('n_per_domain = 32\ncorruptions = ["fog"]\n[objective_options]\npi = 0.5\n'
                                       '[method_options]\nselect = false\nreweight = false\n')
    store = tmp_path / "s.sqlite"
    grid = ["--methods", "eta", "--objectives", "adadem", "--protocols", "single", "--models", "cnn", "--seeds", "1"] \
        if command == "compare" else ["--method", "eta",
                                                                                         "--objective", "adadem"]
    res = runner.invoke(app, [command, "--config", str(tmp_path / "exp.toml"), *grid, "--store", str(store),
                              "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
                        if command == "compare" else [command, "--config", str(tmp_path / "exp.toml"), *grid,
                                                      "--store", str(store), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    [cell] = ResultStore(store).cells()
    assert cell["config"]["objective_options"] == {"pi": 0.5}
    assert cell["config"]["method_options"] == {"reweight": False, "select": False}
    (tmp_path / "bad.toml").write_text('n_per_domain = 32\ncorruptions = ["fog"]\n[method_options]\nbogus = 1\n')
    res = runner.invoke(app, ["run", "--config", str(tmp_path / "bad.toml"), "--method", "eta", "--store",
                              str(tmp_path / "b.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 2 and "invalid option for method 'eta'" in res.output


def test_train_source_never_writes_into_the_package(tmp_path, monkeypatch, fmnist_test):
    from entmin.models.checkpoints import CHECKPOINT_DIR

    before = {p.name: p.stat().st_mtime_ns for p in CHECKPOINT_DIR.iterdir()}
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train-source", "--model", "cnn", "--steps", "2", "--limit", "256",
                              "--augment", "shift", "--threads", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    meta_path = tmp_path / "results" / "source" / "fmnist_cnn.json"
    assert meta_path.is_file() and (tmp_path / "results" / "source" / "fmnist_cnn.pt").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in CHECKPOINT_DIR.iterdir()} == before
    import json

    meta = json.loads(meta_path.read_text())
    assert meta["recipe"]["steps"] == 2 and meta["recipe"]["augment"] == "shift"
    from entmin.data.fashion_mnist import data_fingerprint

    assert meta["dataset"]["fingerprint"] == data_fingerprint()


def test_reward_curves_do_not_retry_a_failing_objective():
    """entmin 0.1 retried any TypeError with another call signature, which could move AdaDEM's bank."""
    from entmin.objectives import AdaDEM, reward_curve

    def broken(z):
        raise TypeError("a bug inside the objective")

    with pytest.raises(TypeError, match="a bug inside"):
        reward_curve(broken, torch.tensor([0.5]), 10)
    ada = AdaDEM(10)
    reward_curve(ada, torch.linspace(0.2, 0.9, 5), 10)
    assert torch.equal(ada.bank, torch.full((10, 10), 0.1)) and int(ada.num_updates) == 0


def test_adadem_bank_follows_the_logits_precision():
    from entmin.objectives import AdaDEM

    ada = AdaDEM(3, pi=1.0)
    z = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    ada(z)
    assert ada.bank.dtype == torch.float64
    assert torch.equal(ada.bank[2], torch.softmax(z, 1)[0])  # exact in float64, not rounded through float32


def _third_party_imports():
    std = set(sys.stdlib_module_names) | {"entmin"}
    found = set()
    for f in (ROOT / "src" / "entmin").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - std


def test_every_imported_package_is_declared():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = " ".join(meta["dependencies"] + [d for ds in meta["optional-dependencies"].values() for d in ds])
    names = {re.split(r"[<>=\[ ;]", d)[0].lower() for d in declared.split()}
    dist = {"PIL": "pillow", "yaml": "pyyaml", "stable_baselines3": "stable-baselines3", "open_clip": "open_clip_torch"}
    missing = {m for m in _third_party_imports() if dist.get(m, m).lower() not in names}
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_host_constants_have_one_home():
    """E0 = 0.4 ln C and the other C-scaled constants live in adapt/constants.py only."""
    offenders = []
    for f in (ROOT / "src" / "entmin").rglob("*.py"):
        if f.name == "constants.py":
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"0\.[45] \* math\.log\(|0\.05 \* math\.sqrt|0\.2 \* math\.log", line):
                offenders.append(f"{f.name}:{i}")
    assert not offenders



def test_custom_weights_at_the_default_lr_get_a_note_after_the_run(tmp_path, fmnist_test):
    from entmin.models import load_source_model

    w = tmp_path / "mine.pt"
    torch.save(load_source_model("cnn").state_dict(), w)
    res = runner.invoke(app, ["run", "--weights", str(w), "--corruptions", "fog", "--n-per-domain", "32", "--store",
                              str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "mine.pt) at lr 0.001" in res.output and "entmin sweep" in res.output
    # printed after the run, so a refused run shows only its one-line error (tests/test_refusals.py)
    res = runner.invoke(app, ["run", "--lr", "0.002", "--weights", str(w), "--corruptions", "fog", "--n-per-domain",
                              "32", "--store", str(tmp_path / "s.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0 and "note:" not in res.output


def test_your_own_idx_dataset_runs_end_to_end_with_its_own_class_count_and_cache(tmp_path, fmnist_test):
    """--dataset idx: a 4-class IDX folder trains a source model, runs a host, keys by its fingerprint and
    caches its corruptions under idx-c; without --data-dir or with missing files: one clear line."""
    import json

    import numpy as np
    from test_provenance import fake_fmnist

    from entmin.bench.store import ResultStore
    from entmin.data.fashion_mnist import data_fingerprint, load_fashion_mnist

    x, y = load_fashion_mnist("test", as_uint8=True)
    keep = (y < 4).nonzero().flatten()[:400]
    data = fake_fmnist(tmp_path / "mine", x[keep][:, 2:30, 2:30].numpy(), y[keep].numpy().astype(np.uint8))
    ck = tmp_path / "mine.pt"
    res = runner.invoke(app, ["train-source", "--model", "cnn", "--steps", "3", "--data-dir", str(data),
                              "--out", str(ck), "--threads", "1", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert json.loads(ck.with_suffix(".json").read_text())["num_classes"] == 4
    store = tmp_path / "s.sqlite"
    args = ["run", "--dataset", "idx", "--data-dir", str(data), "--model", "cnn", "--weights", str(ck),
            "--method", "tent", "--objective", "adadem", "--corruptions", "contrast", "--n-per-domain", "64",
            "--store", str(store), "--cache-dir", str(tmp_path / "cache")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    cell = ResultStore(store).cells()[0]
    assert cell["n"] == 64 and cell["config"]["dataset"] == "idx"
    assert dict(cell["config"]["provenance"])["data"] == data_fingerprint(data)
    assert len(cell["metrics"]["pred_hist"]) == 4
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["idx-c"]
    res = runner.invoke(app, [a for a in args if a not in ("--data-dir", str(data))])
    assert res.exit_code == 2 and "needs --data-dir" in res.output
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "missing t10k-labels-idx1-ubyte" in res.output and "apt-get" not in res.output
