"""Benchmark commands: run, compare, sweep, search, report. Options come from :class:`RunConfig`'s fields."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from ..bench.config import RunConfig, toml_table
from ..bench.grid import DEM_STAR
from ..bench.streams import segment_count
from ..data.corruptions import CORRUPTIONS
from ..errors import UsageError
from .common import (
    Items,
    comma_list,
    config_options,
    console,
    handle_errors,
    progress,
    require_writable_dir,
    set_threads,
)

__all__ = ["register"]

DEFAULT_STORE = Path("results/entmin.sqlite")
SEEDS = typer.Option("1", help="comma list of seeds (each fixes stream order and the adapter's randomness)",
                     parser=comma_list(int), metavar="INT,...")
STORE = typer.Option(DEFAULT_STORE, help="results store (SQLite); finished cells are skipped on rerun")
DATA_DIR = typer.Option(None, help="dataset folder (default: Debian's Fashion-MNIST or $ENTMIN_FASHION_MNIST_DIR)")
CACHE_DIR = typer.Option(None, help="corruption cache folder (default $ENTMIN_CACHE or ~/.cache/entmin)")
DEVICE = typer.Option("auto", help="auto (cuda if available), cpu, cuda or cuda:N")
THREADS = typer.Option(None, help="torch intra-op threads (default: torch's choice)")
CONFIG = typer.Option(None, help="TOML file of RunConfig fields; options given on the command line override it")
RAY = typer.Option(None, envvar="ENTMIN_RAY_ADDRESS", help="run the grid as tasks on this Ray cluster (host:port)")
GRID = ("method", "objective", "protocol", "model")


def _base(options: dict[str, Any], given: set[str], config: Path | None, grid: bool) -> dict[str, Any]:
    """RunConfig fields from the command line over those of ``--config`` (explicit options win)."""
    values = dict(options)
    if values.get("corruptions") is not None:
        values["corruptions"] = tuple(CORRUPTIONS) if list(values["corruptions"]) == ["all"] \
            else tuple(values["corruptions"])
    if config is not None:
        table = toml_table(config)
        RunConfig.from_dict({k: v for k, v in table.items() if not (grid and k in GRID)})  # validate its fields
        for k, v in table.items():
            if k not in given:
                values[k] = tuple(v) if isinstance(v, list) and k == "corruptions" else v
    return values


def _execute(configs: list[RunConfig], seeds: list[int], store_path: Path, run_kwargs: dict[str, Any],
             ray_address: str | None = None):
    from ..bench.store import ResultStore
    from ..executors import make_executor

    store = ResultStore(store_path)
    executor = make_executor(ray_address)
    failed = []
    total = sum(segment_count(c.to_dict()) for c in configs) * len(seeds)
    with progress(total) as advance:
        if executor.name == "local":
            from ..bench.runner import run_experiment

            for cfg in configs:
                def on_cell(ev: dict[str, Any]) -> None:
                    advance(1, f"{ev['model']} {ev['protocol']} {ev['label']} seed {ev['seed']} {ev['domain']}: "
                               f"{100 * ev['accuracy']:.1f}% ({ev['wall']:.1f}s)")
                run_experiment(cfg, seeds, store, progress=on_cell, **run_kwargs)
        else:
            for res in executor.run(configs, seeds, store, run_kwargs):
                advance(segment_count(res.config.to_dict()) * len(seeds), f"{res.config.label} ({res.config.model}, "
                        f"{res.config.protocol}, lr {res.config.effective_lr:g})")
                if res.rows is None:
                    failed.append(f"{res.config.label}: {res.error}")
            console.print(f"ran on the Ray cluster, {executor.num_gpus:g} GPU per task")
    for f in failed:
        console.print(f"[yellow]failed after retries:[/] {f}")
    return store


def _run_kwargs(data_dir, cache_dir, device, ray_address=None) -> dict[str, Any]:
    from ..utils import parse_device, resolve_device

    if ray_address:  # each worker resolves the device itself: "auto" means the GPU Ray gave its task, if any
        if device != "auto":
            parse_device(device)  # a typo fails here, before anything is sent
        return {"data_dir": data_dir, "cache_dir": cache_dir, "device": device}
    return {"data_dir": data_dir, "cache_dir": cache_dir, "device": resolve_device(device)}


def _resolved(configs: list[RunConfig], kw: dict[str, Any]) -> list[RunConfig]:
    """Configurations with their provenance (fails early on missing data or weights, before any compute)."""
    from ..bench.provenance import resolve

    return [resolve(c, kw.get("data_dir"), kw.get("cache_dir")) for c in configs]


def _lr_note(configs: list[RunConfig]) -> None:
    """After a run: say when custom weights, data or models ran at a default lr tuned for the built-in ones."""
    from ..bench.config import DEFAULT_LR

    untuned = sorted({f"{c.model}{' (' + Path(c.weights).name + ')' if c.weights else ''} at lr "
                      f"{c.effective_lr:g}" for c in configs if c.lr is None and c.method not in ("source", "bn")
                      and (c.model not in DEFAULT_LR or c.weights is not None or c.dataset != "fmnist")})
    if untuned:
        console.print(f"[yellow]note:[/] {', '.join(untuned)}: a default tuned for the built-in models on "
                      "Fashion-MNIST; pass --lr, or find one with `entmin sweep`")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    @config_options(RunConfig, exclude=("split",))
    def run(seeds: Items = SEEDS,
            tau: float | None = typer.Option(None, help="DEM temperature tau (objective dem)"),
            alpha: float | None = typer.Option(None, help="DEM weight alpha of the GMC (objective dem)"),
            config: Path | None = CONFIG, store: Path = STORE, data_dir: str | None = DATA_DIR,
            cache_dir: str | None = CACHE_DIR, device: str = DEVICE, threads: int | None = THREADS,
            ray_address: str | None = RAY, *, options: dict[str, Any], given: set[str]) -> None:
        """Run one method with one objective on one protocol; prints its per-domain table."""
        from ..bench.tables import build_table, table_markdown

        set_threads(threads)
        values = _base(options, given, config, grid=False)
        opts = dict(values.get("objective_options") or {})
        opts.update({k: v for k, v in (("tau", tau), ("alpha", alpha)) if v is not None})
        values["objective_options"] = tuple(sorted(opts.items()))
        cfg = RunConfig.from_dict(values)
        kw = _run_kwargs(data_dir, cache_dir, device, ray_address)
        [cfg] = _resolved([cfg], kw)
        st = _execute([cfg], list(seeds), store, kw, ray_address)
        print(table_markdown(build_table(st.cells(cfg.hash), list(seeds))))
        _lr_note([cfg])

    @app.command()
    @handle_errors
    @config_options(RunConfig, grid=GRID, exclude=("split",), extra_choices={"objective": DEM_STAR},
                    defaults={"method": ("source", "tent"), "objective": ("em", "adadem"),
                              "protocol": ("single", "continual")})
    def compare(seeds: Items = typer.Option("1,2,3", help="comma list of seeds", parser=comma_list(int),
                                            metavar="INT,..."),
                config: Path | None = CONFIG, store: Path = STORE,
                out: Path = typer.Option(Path("results"), help="folder of the tables and figures"),
                data_dir: str | None = DATA_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE,
                threads: int | None = THREADS, ray_address: str | None = RAY,
                *, options: dict[str, Any], given: set[str]) -> None:
        """Grid of methods x objectives x protocols x models x seeds; writes the paper-style table (only the
        seeds asked for) and its figures. Objective dem* takes the (tau, alpha) stored by `entmin search`.
        --weights takes one file for one model, or model=file,... for several."""
        from ..bench.report import write_report

        set_threads(threads)
        require_writable_dir(out)
        values = _base(options, given, config, grid=True)
        kw = _run_kwargs(data_dir, cache_dir, device, ray_address)
        cfgs = _grid(values, store, kw)
        st = _execute(cfgs, list(seeds), store, kw, ray_address)
        print(write_report(st, out, {c.hash for c in cfgs}, seeds=list(seeds)))
        console.print(f"tables and figures written to {out}/")
        _lr_note(cfgs)

    @app.command()
    @handle_errors
    @config_options(RunConfig, grid=GRID, exclude=("split", "lr"),
                    defaults={"method": ("tent",), "objective": ("em", "adadem_norm", "adadem_mec", "adadem"),
                              "protocol": ("single", "continual")})
    def sweep(lrs: Items = typer.Option("1e-4,2.5e-4,5e-4,1e-3,2.5e-3,5e-3,0.01,0.025,0.05,0.1",
                                        help="learning-rate grid (the paper's Table 14 grid by default)",
                                        parser=comma_list(float), metavar="FLOAT,..."),
              seeds: Items = SEEDS, config: Path | None = CONFIG, store: Path = STORE,
              out: Path = typer.Option(Path("results/sweep"), help="folder of the lr table and plots"),
              data_dir: str | None = DATA_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE,
              threads: int | None = THREADS, ray_address: str | None = RAY,
              *, options: dict[str, Any], given: set[str]) -> None:
        """Learning-rate grid for several methods and objectives, into the same store as `compare`; writes the
        accuracy-vs-lr table and plot (the paper's Table 14 / Fig. 9 analog)."""
        from ..bench.tables import build_table, lr_table_markdown
        from ..viz.bench import plot_lr_sweep

        set_threads(threads)
        require_writable_dir(out)
        values = _base(options, given, config, grid=True)
        kw = _run_kwargs(data_dir, cache_dir, device, ray_address)
        cfgs = [dataclasses.replace(c, lr=lr) for c in _grid(values, store, kw) for lr in lrs]
        st = _execute(cfgs, list(seeds), store, kw, ray_address)
        hashes = {c.hash for c in cfgs}
        entries = build_table([r for r in st.cells() if r["config_hash"] in hashes], list(seeds))
        md = lr_table_markdown(entries)
        (out / "lr_table.md").write_text(md)
        for model, protocol in sorted({(e["model"], e["protocol"]) for e in entries}):
            plot_lr_sweep([e for e in entries if e["model"] == model and e["protocol"] == protocol],
                          out / f"lr_sweep_{model}_{protocol}.png".replace(":", "-"), f"{model}, {protocol}")
        print(md)

    @app.command()
    @handle_errors
    @config_options(RunConfig, exclude=("split", "objective"))
    def search(trials: int = typer.Option(30, help="completed TPE trials to reach"), seeds: Items = SEEDS,
               constrain: bool = typer.Option(True, help="restrict tau <= 2/alpha (Prop. A.1)"),
               store: Path = STORE,
               study: Path = typer.Option(Path("results/search.sqlite"), help="Optuna study database"),
               data_dir: str | None = DATA_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE,
               threads: int | None = THREADS,
               parallel: int = typer.Option(4, help="trials in flight at once on a Ray cluster"),
               startup_trials: int = typer.Option(10, help="random trials before TPE models the results"),
               ray_address: str | None = RAY, *, options: dict[str, Any], given: set[str]) -> None:
        """DEM*: TPE search of (tau, alpha) on a labelled 20% of each target stream (resumable Optuna study);
        reports accuracy on the other 80% for DEM*, EM and AdaDEM. `compare --objectives dem*` then uses it."""
        from ..bench.store import ResultStore
        from ..executors import make_executor
        from ..search import search_dem

        set_threads(threads)
        if parallel < 1:
            raise UsageError(f"--parallel must be >= 1, got {parallel}")
        base = RunConfig.from_dict(_base(options, given, None, grid=False))
        kw = _run_kwargs(data_dir, cache_dir, device, ray_address)
        res = search_dem(base, ResultStore(store), trials=trials, seeds=tuple(seeds), constrain=constrain,
                         study_path=study, progress=console.print, run_kwargs=kw,
                         executor=make_executor(ray_address), parallel=parallel, startup_trials=startup_trials)
        print(json.dumps(res, indent=2))

    @app.command()
    @handle_errors
    def report(store: Path = typer.Option(DEFAULT_STORE, help="results store to read (opened read-only)"),
               out: Path = typer.Option(Path("results"), help="folder of the tables and figures")) -> None:
        """Rebuild tables (Markdown, CSV) and figures (PNG) from a results store, without changing it."""
        from ..bench.report import write_report
        from ..bench.store import ResultStore

        st = ResultStore(store, readonly=True)
        require_writable_dir(out)
        print(write_report(st, out))
        console.print(f"tables and figures written to {out}/")


def _grid(values: dict[str, Any], store: Path, kw: dict[str, Any]) -> list[RunConfig]:
    """The resolved configurations of a grid command (``values``: plural grid fields + common fields)."""
    from ..bench.grid import expand_grid, parse_weights

    def listed(name: str) -> list[str]:
        v = values.pop(name, None)
        return [v] if isinstance(v, str) else list(v)

    methods, objectives = listed("method"), listed("objective")
    protocols, models = listed("protocol"), listed("model")
    weights = parse_weights(values.pop("weights", None), models)

    def dem_star(cfg: RunConfig):
        from ..bench.store import ResultStore
        from ..search import best_dem_params

        return best_dem_params(ResultStore(store), cfg, kw)

    cfgs = expand_grid(values, methods=methods, objectives=objectives, protocols=protocols, models=models,
                       weights=weights, dem_star=dem_star)
    return _resolved(cfgs, kw)
