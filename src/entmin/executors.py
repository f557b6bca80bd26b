"""Where independent benchmark runs execute: in this process (default) or as tasks on a Ray cluster.

A run is ``RunConfig`` + seeds. On Ray each task runs into a private temporary store on its worker and
returns the finished cells; only the driver writes to the results store (one writer, no shared SQLite
over the network). A task that raises or whose worker dies is retried ``max_retries`` times, then reported
as failed; the cells of every finished run are kept either way.
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

__all__ = ["RAY_ADDRESS_ENV", "LocalExecutor", "RayExecutor", "RunResult", "make_executor"]

RAY_ADDRESS_ENV = "ENTMIN_RAY_ADDRESS"


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
        try:
            return run_experiment(cfg, seeds, store, **run_kwargs)
        finally:
            store.close()


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

    def run(self, configs: list[RunConfig], seeds: list[int], store: ResultStore, run_kwargs: dict[str, Any]
            ) -> Iterator[RunResult]:
        ray = self.ray
        pending: dict[Any, RunConfig] = {}
        data = {k: run_kwargs.get(k) for k in ("data_dir", "cache_dir")}
        for cfg in (resolve(c, **data) for c in configs):
            todo = [s for s in seeds if not set(range(segment_count(cfg.to_dict()))) <= store.done(cfg.hash, s)]
            if not todo:
                yield RunResult(cfg, store.cells(cfg.hash))
                continue
            store.register(cfg.hash, cfg.to_dict())
            pending[self.task.remote(_cfg_dict(cfg), todo, run_kwargs)] = cfg
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
