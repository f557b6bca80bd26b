"""Config validation, results store, protocols, kill-and-resume, report."""
import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from entmin.bench.config import RunConfig, load_config_file
from entmin.bench.runner import batch_bounds, run_experiment
from entmin.bench.store import ResultStore
from entmin.bench.streams import PROTOCOLS
from entmin.bench.tables import build_table, table_markdown, write_csv
from entmin.data import FMNISTC

CHEAP = ("gaussian_noise", "contrast", "brightness", "pixelate")


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="'method'"):
        RunConfig(method="tenet")
    with pytest.raises(ValueError, match="'protocol'"):
        RunConfig(protocol="episodic")
    with pytest.raises(ValueError, match="'lr'"):
        RunConfig(lr=-1.0)
    with pytest.raises(ValueError, match="'corruptions'"):
        RunConfig(corruptions=("fogg",))
    p = tmp_path / "exp.toml"
    p.write_text('method = "sar"\nobjective = "adadem"\nlr = 0.01\n')
    cfg = load_config_file(p)
    assert cfg.method == "sar" and cfg.lr == 0.01
    p.write_text('method = "sar"\nlearning_rate = 0.01\n')
    with pytest.raises(ValueError, match="learning_rate"):
        load_config_file(p)
    p.write_text('method = "sar\n')
    with pytest.raises(ValueError, match="cannot read config"):
        load_config_file(p)
    assert RunConfig().hash == RunConfig().hash != RunConfig(objective="adadem").hash


def test_batch_bounds_never_leave_a_single_sample():
    assert batch_bounds(129, 64) == [(0, 64), (64, 129)]
    assert batch_bounds(130, 64) == [(0, 64), (64, 128), (128, 130)]


def test_store_ignores_duplicates(tmp_path):
    st = ResultStore(tmp_path / "r.sqlite")
    st.register("h", {"a": 1})
    st.write_cell("h", 1, "fog", 0, 10, 5, {}, 1.0)
    st.write_cell("h", 1, "fog", 0, 10, 9, {}, 1.0)
    assert st.done("h", 1) == {0}
    assert [r["correct"] for r in st.cells("h")] == [5]
    (tmp_path / "bad.sqlite").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ValueError, match="not a valid SQLite"):
        ResultStore(tmp_path / "bad.sqlite")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, fmnist_test):
    d = tmp_path_factory.mktemp("cache")
    FMNISTC(cache_dir=d).build_all(CHEAP, [5])
    return d


def _cfg(**kw):
    base = {"method": "tent", "objective": "adadem", "corruptions": CHEAP, "n_per_domain": 256, "batch_size": 32}
    base.update(kw)
    return RunConfig(**base)


def test_rerun_skips_finished_cells_and_is_deterministic(tmp_path, cache_dir, monkeypatch):
    import entmin.bench.runner as runner_module

    built = []
    real = runner_module._build_adapter
    monkeypatch.setattr(runner_module, "_build_adapter", lambda *a, **k: built.append(a[3]) or real(*a, **k))
    st = ResultStore(tmp_path / "a.sqlite")
    rows = run_experiment(_cfg(), [1, 2], st, cache_dir=cache_dir)
    assert len(rows) == 8 and built == [1, 2]  # one adapter per seed
    finished = {(r["seed"], r["domain"]): r["correct"] for r in rows}
    rows2 = run_experiment(_cfg(), [1, 2], st, cache_dir=cache_dir)
    assert built == [1, 2], "a rerun of finished cells built an adapter (recomputed)"
    assert {(r["seed"], r["domain"]): r["correct"] for r in rows2} == finished
    other = ResultStore(tmp_path / "b.sqlite")
    again = run_experiment(_cfg(), [1, 2], other, cache_dir=cache_dir)
    assert {(r["seed"], r["domain"]): r["correct"] for r in again} == finished


def test_fp16_runs_record_the_steps_gradscaler_skipped(tmp_path, cache_dir, loud_cnn):
    """A step whose scaled fp16 gradients overflow is dropped by GradScaler; the cell says how many were, so a
    run that never adapted does not pass for one that did."""
    st = ResultStore(tmp_path / "f.sqlite")
    cfg = _cfg(precision="fp16", corruptions=CHEAP[:2], n_per_domain=128)
    rows = run_experiment(cfg, [1], st, cache_dir=cache_dir, model_loader=loud_cnn)
    skipped = [r["metrics"]["fp16_skipped_steps"] for r in sorted(rows, key=lambda r: r["position"])]
    assert skipped[0] >= 1 and all(0 <= k <= 4 for k in skipped)
    fp32 = run_experiment(_cfg(corruptions=CHEAP[:1], n_per_domain=64), [1], st, cache_dir=cache_dir)
    assert "fp16_skipped_steps" not in fp32[0]["metrics"]


def _table(store_path):
    """The stored cells, with the adapter-dependent metrics (mean entropy to the last bit, samples selected):
    a resume that lost the adapter state can keep every count of correct predictions but not these."""
    with sqlite3.connect(store_path) as c:
        rows = c.execute("SELECT config_hash, seed, domain, position, n, correct, metrics FROM cells").fetchall()
    metrics = [json.loads(r[-1]) for r in rows]
    return sorted(r[:-1] + (m["mean_entropy"], m["selected"]) for r, m in zip(rows, metrics))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sigkill_and_restart_gives_the_uninterrupted_table(tmp_path, cache_dir, protocol):
    """A real SIGKILL (no cleanup runs) mid-stream on every protocol; the rerun resumes from the stored stream
    position (the adapter state after the last finished segment) and ends with the uninterrupted table."""
    short = protocol in ("gradual", "long")              # 9 visits / 2 rounds per domain: fewer images suffice
    args = [sys.executable, "-m", "entmin.cli", "run", "--method", "eta", "--objective", "adadem",
            "--protocol", protocol, "--seeds", "1,2", "--n-per-domain", "128" if short else "512",
            "--batch-size", "32", "--rounds", "2", "--corruptions", ",".join(CHEAP[:2] if short else CHEAP),
            "--cache-dir", str(cache_dir), "--device", "cpu", "--threads", "1"]
    ref = tmp_path / "ref.sqlite"
    subprocess.run(args + ["--store", str(ref)], check=True, capture_output=True)
    total = len(_table(ref))
    killed = tmp_path / "killed.sqlite"
    proc = subprocess.Popen(args + ["--store", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if killed.exists():
            try:
                with sqlite3.connect(killed) as c:
                    if c.execute("SELECT count(*) FROM cells").fetchone()[0] >= 1:
                        break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = _table(killed)
    assert 0 < len(partial) < total, f"the kill should land mid-run ({len(partial)} of {total} cells)"
    subprocess.run(args + ["--store", str(killed)], check=True, capture_output=True)
    assert _table(killed) == _table(ref)


def test_report_table_and_plots(tmp_path, cache_dir):
    st = ResultStore(tmp_path / "r.sqlite")
    for obj in ("em", "adadem"):
        for protocol in ("single", "continual"):
            run_experiment(_cfg(objective=obj, protocol=protocol, n_per_domain=128), [1], st, cache_dir=cache_dir)
    run_experiment(_cfg(method="source", objective="em", n_per_domain=128), [1], st, cache_dir=cache_dir)
    entries = build_table(st.cells())
    md = table_markdown(entries)
    assert "| source |" in md and "tent" in md and "Gauss" in md
    write_csv(entries, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().count("\n") == 6
    from entmin.bench.report import write_report

    write_report(st, tmp_path / "out")
    for name in ("table.md", "per_corruption_cnn_single.png", "stream_cnn_continual.png", "heatmap_cnn_single.png",
                 "class_distribution_cnn_single.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    page = (tmp_path / "out" / "report.html").read_text()
    from html.parser import HTMLParser

    class Seen(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.imgs = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img":
                self.imgs.append(dict(attrs)["src"])

    seen = Seen()
    seen.feed(page)
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(seen.imgs) == len(pngs) and all(s.startswith("data:image/png;base64,") for s in seen.imgs)
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing to fetch
    assert seen.tags.count("table") == 2 and seen.tags.count("details") == len({r["config_hash"] for r in st.cells()})
    import html as _html

    text = _html.unescape(page)
    assert "tent+adadem" in text and "\"corruptions\"" in text and "\"torch\"" in text


def test_lr_table_shows_seed_spread_and_the_usable_range():
    from entmin.bench.tables import lr_table_markdown

    def e(obj, lr, mean, std=0.01):
        return {"method": "tent", "objective": obj, "model": "vit", "protocol": "continual", "lr": lr,
                "mean": mean, "std": std, "seeds": [1, 2, 3]}

    # EM: best at 1e-3, within 1 point only there and at 1e-4; AdaDEM: flat from 1e-3 to 1e-1 but a
    # dip at 1e-4 (the range is contiguous around the best, so 1e-4 stays out)
    entries = [e("em", 1e-4, 0.700), e("em", 1e-3, 0.705), e("em", 1e-2, 0.650), e("em", 1e-1, 0.500),
               e("adadem", 1e-4, 0.600), e("adadem", 1e-3, 0.710), e("adadem", 1e-2, 0.715),
               e("adadem", 1e-1, 0.708)]
    md = lr_table_markdown(entries)
    assert "(3 seeds, mean ± std)" in md
    assert "| 0.001 | 71.0 ± 1.0 | **70.5 ± 1.0** |" in md
    assert "tent+em: usable range (contiguous, within 1 point of its best) 0.0001 – 0.001 (10x)" in md
    assert "tent+adadem: usable range (contiguous, within 1 point of its best) 0.001 – 0.1 (100x)" in md
