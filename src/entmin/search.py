"""DEM*: DEM with (tau, alpha) found by TPE (Optuna) on a labelled 20% of each target stream.

Each trial is one benchmark run (``RunConfig(split="search")``) written to the results store, so finished
trials are never recomputed; the Optuna study itself lives in an embedded SQLite database
(``sqlite:///...``), so an interrupted search continues where it stopped. A trial that raises is marked
failed by Optuna and the search goes on. Reported: the best pair's accuracy on the remaining 80%
(``split="holdout"``), next to EM and AdaDEM on the same 80%.

Search space (dem_spec.md section 4): alpha in {0.0, 0.1, ..., 2.0}; tau in {0.1, ..., 2.0} (tau = 0 is
invalid), optionally restricted to tau <= 2/alpha (Prop. A.1).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bench.config import RunConfig
from .bench.provenance import resolve
from .bench.runner import run_experiment, summarize
from .bench.store import ResultStore
from .errors import DataError, UsageError

__all__ = ["DEM_STAR_KIND", "best_dem_params", "holdout_accuracy", "search_dem"]

DEM_STAR_KIND = "dem*"


def _key(base: RunConfig) -> str:
    """The setting a DEM* search belongs to: host, model, protocol, dataset, and the hash of everything else
    that changes a number (weights, data, lr, images per domain, ...), so that `compare --objectives dem*`
    never takes a pair searched under other settings."""
    setting = dataclasses.replace(base, objective="em", objective_options=(), split="all")
    return f"{base.method}:{base.model}:{base.protocol}:{base.dataset}:{setting.hash}"


def best_dem_params(store: ResultStore, base: RunConfig, run_kwargs: dict[str, Any] | None = None
                    ) -> dict[str, float] | None:
    """The stored (tau*, alpha*) of ``base``'s setting (resolved against the data here), or None."""
    kw = run_kwargs or {}
    base = resolve(base, kw.get("data_dir"), kw.get("cache_dir"))
    return store.get_records(DEM_STAR_KIND).get(_key(base))


def holdout_accuracy(base: RunConfig, store: ResultStore, tau: float, alpha: float,
                     seeds: tuple[int, ...] = (1,), run_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """Mean accuracy of DEM(tau, alpha), EM and AdaDEM on the held-out 80% of each stream (what the DEM*
    report shows next to the search result)."""
    held: dict[str, float] = {}
    for label, obj, opts in (("DEM*", "dem", (("alpha", alpha), ("tau", tau))), ("EM", "em", ()),
                             ("AdaDEM", "adadem", ())):
        cfg = dataclasses.replace(base, objective=obj, objective_options=opts, split="holdout")
        held[label] = summarize(run_experiment(cfg, seeds, store, **(run_kwargs or {})))["mean"]
    return held


def search_dem(base: RunConfig, store: ResultStore, *, trials: int = 30, seeds: tuple[int, ...] = (1,),
               constrain: bool = True, study_path: str | Path = "results/search.sqlite", sampler_seed: int = 0,
               run_kwargs: dict[str, Any] | None = None, progress: Callable[[str], None] | None = None,
               executor: Any = None, parallel: int = 4, startup_trials: int = 10) -> dict[str, Any]:
    """TPE search (Optuna ask/tell): in-process one trial at a time, or ``parallel`` trials at a time as tasks
    of a Ray ``executor``. A trial whose run fails is told FAIL and the search goes on.

    ``startup_trials``: random trials before TPE models the results (Optuna's default 10). With a budget of
    ``trials <= startup_trials`` the search is a seeded random search over the grid; lower it for small budgets.
    """
    try:
        import optuna
    except ImportError:
        raise UsageError("DEM* search needs Optuna: pip install 'entmin[search]'") from None
    if trials < 1:
        raise UsageError(f"trials must be >= 1, got {trials}")
    if startup_trials < 1:
        raise UsageError(f"startup_trials must be >= 1, got {startup_trials}")
    run_kwargs = run_kwargs or {}
    base = resolve(base, run_kwargs.get("data_dir"), run_kwargs.get("cache_dir"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Path(study_path).parent.mkdir(parents=True, exist_ok=True)
    name = f"dem-{_key(base)}-{base.hash}-{'c' if constrain else 'u'}-seeds{'_'.join(map(str, seeds))}"
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{study_path}", direction="maximize",
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(
                                    seed=sampler_seed, n_startup_trials=startup_trials))

    def trial_config(trial: optuna.Trial) -> RunConfig:
        alpha = trial.suggest_float("alpha", 0.0, 2.0, step=0.1)
        tau_max = 2.0 if not constrain or alpha == 0 else min(2.0, math.floor(round(20.0 / alpha, 6)) / 10)
        tau = trial.suggest_float("tau", 0.1, max(0.1, tau_max), step=0.1)
        return dataclasses.replace(base, objective="dem", split="search",
                                   objective_options=(("alpha", round(alpha, 1)), ("tau", round(tau, 1))))

    if executor is None:
        from .executors import LocalExecutor

        executor = LocalExecutor()
    # in-process trials run one at a time, so TPE sees every finished trial before sampling the next
    in_flight = 1 if executor.name == "local" else parallel
    complete = optuna.trial.TrialState.COMPLETE
    remaining = trials - len([t for t in study.trials if t.state == complete])
    while remaining > 0:
        batch = [study.ask() for _ in range(min(in_flight, remaining))]
        cfgs = {id(t): trial_config(t) for t in batch}
        by_hash = {cfgs[id(t)].hash: t for t in batch}
        for res in executor.run(list(cfgs.values()), list(seeds), store, run_kwargs):
            trial = by_hash[res.config.hash]
            if res.rows is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                if progress:
                    progress(f"trial {trial.number} failed: {res.error}")
            else:
                acc = summarize([r for r in res.rows if r["seed"] in seeds])["mean"]
                study.tell(trial, acc)
                if progress:
                    progress(f"trial {trial.number}: {dict(res.config.objective_options)} -> {100 * acc:.2f}%")
        remaining = trials - len([t for t in study.trials if t.state == complete])
        if all(t.state != complete for t in study.trials) and len(study.trials) >= 3 * trials:
            raise DataError("every DEM* trial failed; see the errors above")
    best = study.best_trial
    states = [t.state for t in study.trials]
    result = {"tau": round(best.params["tau"], 1), "alpha": round(best.params["alpha"], 1),
              "search_accuracy": best.value, "trials": states.count(complete),
              "completed_trials": states.count(complete),
              "failed_trials": states.count(optuna.trial.TrialState.FAIL),
              "unfinished_trials": sum(st in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
                                       for st in states), "study": name,
              "n_per_domain": base.n_per_domain, "lr": base.effective_lr, "seeds": list(seeds)}
    store.put_record(DEM_STAR_KIND, _key(base), result, replace=True)
    result["holdout_accuracy"] = holdout_accuracy(base, store, result["tau"], result["alpha"], seeds, run_kwargs)
    store.put_record(DEM_STAR_KIND, _key(base), result, replace=True)
    return result
