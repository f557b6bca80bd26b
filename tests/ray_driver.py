"""Run inside the test's network namespace: distributed runs on a local Ray head (loopback only)."""
import json
import sys

from entmin.bench.config import RunConfig
from entmin.bench.store import ResultStore
from entmin.executors import RayExecutor
from entmin.search import search_dem

address, store_path, cache_dir, study = sys.argv[1:5]
store = ResultStore(store_path)
ex = RayExecutor(address)
good = [RunConfig(method="tent", objective=o, corruptions=("contrast",), n_per_domain=64, batch_size=32)
        for o in ("em", "adadem")]
bad = RunConfig(method="eta", corruptions=("contrast",), n_per_domain=64, batch_size=32,
                method_options=(("e_margin", -1.0),))  # raises on the worker: retried, then reported failed
# the head declares 2 GPUs (this machine has none): "auto" asks Ray for one per task, the worker resolves it
results = list(ex.run(good + [bad], [1], store, {"cache_dir": cache_dir, "device": "auto"}))
gpus = {"auto": ex.num_gpus}
ok = {r.config.hash: r.rows is not None for r in results}
err = [r.error for r in results if r.rows is None]
res = search_dem(RunConfig(method="tent", corruptions=("contrast",), n_per_domain=64, batch_size=32), store,
                 trials=4, study_path=study, executor=ex, parallel=2,
                 run_kwargs={"cache_dir": cache_dir, "device": "auto"})  # its held-out run is local: auto = cpu
gpus["search"] = ex.num_gpus
list(ex.run(good[:1], [1], store, {"cache_dir": cache_dir, "device": "cpu"}))
gpus["cpu"] = ex.num_gpus
# `entmin compare` sends its grid to the same cluster; the driver alone writes the store
from typer.testing import CliRunner

from entmin.cli import app

cmp = CliRunner().invoke(app, ["compare", "--methods", "source,tent", "--objectives", "em,adadem", "--protocols",
                               "continual", "--corruptions", "contrast,fog", "--n-per-domain", "64", "--batch-size",
                               "32", "--seeds", "1,2", "--store", store_path, "--out", store_path + "-out",
                               "--cache-dir", cache_dir, "--ray-address", address])
one = CliRunner().invoke(app, ["run", "--method", "tent", "--corruptions", "fog", "--n-per-domain", "64",
                               "--batch-size", "32", "--seeds", "1,2", "--store", store_path, "--cache-dir", cache_dir,
                               "--ray-address", address])
print(json.dumps({"ok": ok, "gpus": gpus, "run": {"code": one.exit_code, "output": one.output[-3000:]}, "errors": err, "search": res, "good": [c.hash for c in good], "bad": bad.hash,
                  "compare": {"code": cmp.exit_code, "output": cmp.output[-3000:]}}))
