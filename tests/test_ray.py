"""The Ray backend against a Ray head started by the test in its own network namespace (only a loopback
interface, so every byte stays on 127.0.0.1), then stopped. The default path never imports Ray."""
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from entmin.bench.store import ResultStore

HERE = Path(__file__).parent


def test_default_path_does_not_import_ray(tmp_path):
    code = ("import sys; from entmin.cli import app; from entmin import search, executors; "
            "from entmin.executors import make_executor; assert make_executor(None).name == 'local'; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    env = {k: v for k, v in os.environ.items() if k != "ENTMIN_RAY_ADDRESS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_gpus_per_task_follows_device_cluster_and_override():
    from entmin.errors import UsageError
    from entmin.executors import gpus_per_task

    assert gpus_per_task("cpu", 8) == 0 and gpus_per_task("cpu", 8, "1") == 0  # cpu never asks for a GPU
    assert gpus_per_task("auto", 0) == 0 and gpus_per_task("auto", 4) == 1 and gpus_per_task("cuda:0", 2) == 1
    assert gpus_per_task("auto", 2, "0.5") == 0.5 and gpus_per_task(None, 2, "") == 1
    for device, gpus, override, msg in [("cuda", 0, None, "has no GPU"), ("auto", 2, "x", "between 0"),
                                        ("auto", 2, "3", "between 0"), ("auto", 2, "-1", "between 0")]:
        with pytest.raises(UsageError, match=msg):
            gpus_per_task(device, gpus, override)


def test_ray_run_checks_the_device_name_before_connecting(tmp_path):
    # a subprocess with a timeout: without the check, the CLI would try to reach the (dead) address and hang
    r = subprocess.run([sys.executable, "-m", "entmin.cli", "run", "--method", "tent", "--device", "tpu",
                        "--ray-address", "127.0.0.1:1", "--store", str(tmp_path / "s.sqlite")],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "device 'tpu'" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "s.sqlite").exists()


def _can_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@pytest.mark.skipif(not _can_netns() and not os.environ.get("CI"), reason="needs root and iproute2 (netns)")
def test_ray_cluster_runs_trials_and_keeps_finished_ones(tmp_path, fmnist_test):
    pytest.importorskip("ray")
    ns = f"entmin-{uuid.uuid4().hex[:8]}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bindir = Path(sys.executable).parent
    ray = str(bindir / "ray")
    store, cache, study = tmp_path / "r.sqlite", tmp_path / "cache", tmp_path / "study.sqlite"
    script = (f"set -e; ip link set lo up; export RAY_USAGE_STATS_ENABLED=0; "
              f"{ray} start --head --port {port} --num-cpus 2 --num-gpus 2 --include-dashboard false --disable-usage-stats "
              f">{tmp_path}/ray.log 2>&1; trap '{ray} stop --force >/dev/null 2>&1' EXIT; "
              f"{sys.executable} {HERE / 'ray_driver.py'} 127.0.0.1:{port} {store} {cache} {study}")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "bash", "-c", script], capture_output=True, text=True, check=False,
                             timeout=600)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert out.returncode == 0, out.stderr[-3000:] + (tmp_path / "ray.log").read_text()[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(res["ok"][h] for h in res["good"]) and res["ok"][res["bad"]] is False
    assert any("e_margin" in e for e in res["errors"])
    assert res["gpus"] == {"auto": 1.0, "search": 1.0, "cpu": 0.0}  # a GPU per task where the cluster has them, none for cpu
    assert res["search"]["trials"] >= 4 and 0.1 <= res["search"]["tau"] <= 2.0
    st = ResultStore(store)  # the driver wrote the finished runs; the failed one left nothing
    assert all(len(st.done(h, 1)) == 1 for h in res["good"]) and not st.done(res["bad"], 1)
    assert res["compare"]["code"] == 0, res["compare"]["output"]
    for row in ("| source | - | - |", "| tent | em |", "| tent | adadem |"):
        line = next(x for x in res["compare"]["output"].splitlines() if x.startswith(row))
        assert line.split("|")[-2].split()[0] == "2", line  # both seeds of the stream, computed on the cluster
    assert res["run"]["code"] == 0, res["run"]["output"]  # `entmin run` on the cluster: both seeds
    for cmd in ("run", "compare"):  # the CLI's default device (auto) asks for a GPU per task
        assert "ran on the Ray cluster, 1 GPU per task" in res[cmd]["output"], res[cmd]["output"]
    fog = [c for c in st.cells() if c["config"]["method"] == "tent" and c["config"]["corruptions"] == ["fog"]]
    assert sorted(c["seed"] for c in fog) == [1, 2]
    grid = [c for c in st.cells() if c["config"]["protocol"] == "continual" and c["config"]["corruptions"] ==
            ["contrast", "fog"]]
    assert len(grid) == 3 * 2 * 2
