"""Where independent benchmark runs execute: in this process (default) or as tasks on a Ray cluster.

A run is ``RunConfig`` + seeds. On Ray each task runs into a private temporary store on its worker and
returns the finished cells; only the driver writes to the results store (one writer, no shared SQLite
over the network). A task that raises or whose worker dies is retried ``max_retries`` times, then reported
as failed; the cells of every finished run are kept either way. Where the cluster has GPUs and the device is
not ``cpu``, each task asks Ray for one GPU (``$ENTMIN_RAY_GPUS_PER_TASK`` overrides, e.g. 0.5 to share one
between two small runs) and resolves ``auto`` on its worker, so it runs on the GPU Ray gave it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .bench.config import RunConfig
from .bench.provenance import resolve
from .bench.runner import run_experiment
from .bench.store import ResultStore
from .bench.streams import segment_count
from .errors import UsageError

__all__ = ["GPUS_PER_TASK_ENV", "RAY_ADDRESS_ENV", "LocalExecutor", "RayExecutor", "RunResult", "gpus_per_task",
           "make_executor"]

RAY_ADDRESS_ENV = "ENTMIN_RAY_ADDRESS"
GPUS_PER_TASK_ENV = "ENTMIN_RAY_GPUS_PER_TASK"


@dataclass
class RunResult:
    config: RunConfig
    rows: list[dict[str, Any]] | None
    error: str | None = None


def _run_isolated(cfg_dict: dict[str, Any], seeds: list[int], run_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run on a worker into a throw-away store; return the cells."""
    cfg = RunConfig.from_dict({k: v for k, v in cfg_dict.items()})
    with tempfile.TemporaryDirectory() as d:
        store = ResultStore(os.path.join(d, "worker.sqlite"))
        try:  # run_experiment resolves the device here, on the worker ("auto": the GPU Ray gave this task)
            return run_experiment(cfg, seeds, store, **run_kwargs)
        finally:
            store.close()


def gpus_per_task(device: str | None, cluster_gpus: float, override: str | None = None) -> float:
    """GPUs one task asks Ray for: none for ``cpu``; ``override`` (the environment variable) if given; else one
    where the cluster has any. ``cuda`` on a cluster without GPUs is refused before anything is sent."""
    dev = str(device or "auto")
    if dev == "cpu":
        return 0.0
    if override not in (None, ""):
        try:
            n = float(override)
        except ValueError:
            n = -1.0
        if not 0 <= n <= max(cluster_gpus, 0):
            raise UsageError(f"${GPUS_PER_TASK_ENV}={override!r}: give a number of GPUs between 0 and the "
                             f"cluster's {cluster_gpus:g}")
        return n
    if dev.startswith("cuda") and cluster_gpus < 1:
        raise UsageError(f"device {dev!r} requested but the Ray cluster has no GPU; use --device auto or cpu")
    return 1.0 if cluster_gpus >= 1 else 0.0


def _cfg_dict(cfg: RunConfig) -> dict[str, Any]:
    """Every field, provenance included: the worker checks it against its own files and refuses a mismatch
    (so a worker with other data or weights can never return cells under this configuration's key)."""
    return cfg.to_fields()


class LocalExecutor:
    name = "local"

    def run(self, configs: list[RunConfig], seeds: list[int], store: ResultStore, run_kwargs: dict[str, Any]
            ) -> Iterator[RunResult]:
        for cfg in configs:
            try:
                yield RunResult(cfg, run_experiment(cfg, seeds, store, **run_kwargs))
            except (RuntimeError, ValueError, OSError) as e:
                yield RunResult(cfg, None, f"{type(e).__name__}: {e}")


class RayExecutor:
    """Runs configurations as Ray tasks on an existing cluster (``ray.init(address=...)``)."""

    name = "ray"

    def __init__(self, address: str, max_retries: int = 1, num_cpus: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError("the Ray backend needs Ray: pip install 'entmin[ray]'") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
        self.task = ray.remote(num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=True)(_run_isolated)
        self.num_gpus = 0.0  # per task, decided per run from the device and the cluster's resources

    def run(self, configs: list[RunConfig], seeds: list[int], store: ResultStore, run_kwargs: dict[str, Any]
            ) -> Iterator[RunResult]:
        ray = self.ray
        pending: dict[Any, RunConfig] = {}
        data = {k: run_kwargs.get(k) for k in ("data_dir", "cache_dir")}
        self.num_gpus = gpus_per_task(run_kwargs.get("device"), ray.cluster_resources().get("GPU", 0.0),
                                      os.environ.get(GPUS_PER_TASK_ENV))
        task = self.task.options(num_gpus=self.num_gpus)
        for cfg in (resolve(c, **data) for c in configs):
            todo = [s for s in seeds if not set(range(segment_count(cfg.to_dict()))) <= store.done(cfg.hash, s)]
            if not todo:
                yield RunResult(cfg, store.cells(cfg.hash))
                continue
            store.register(cfg.hash, cfg.to_dict())
            pending[task.remote(_cfg_dict(cfg), todo, run_kwargs)] = cfg
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            cfg = pending.pop(ref)
            try:
                rows = ray.get(ref)
            except Exception as e:  # RayTaskError, WorkerCrashedError, ...: mark failed, keep going
                cause = getattr(e, "cause", None) or e
                yield RunResult(cfg, None, f"{type(cause).__name__}: {cause}")
                continue
            for r in rows:
                store.write_cell(cfg.hash, r["seed"], r["domain"], r["position"], r["n"], r["correct"],
                                 r["metrics"], r["wall_seconds"])
            yield RunResult(cfg, store.cells(cfg.hash))

    def shutdown(self) -> None:
        self.ray.shutdown()


def make_executor(ray_address: str | None = None) -> LocalExecutor | RayExecutor:
    address = ray_address or os.environ.get(RAY_ADDRESS_ENV)
    return RayExecutor(address) if address else LocalExecutor()
