"""``entmin rl``: PPO on MiniGrid with a pluggable entropy objective, into the results store."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..objectives import OBJECTIVES
from .common import Items, comma_list, console, handle_errors, progress

__all__ = ["register"]

DEFAULT_RL_STORE = Path("results/rl.sqlite")


def _run_one(cfg: Any, seed: int, store_path: str, device: str, threads: int) -> dict[str, Any]:
    """One cell in a worker process (one torch thread each, its own connection to the store)."""
    import torch

    from ..bench.store import ResultStore
    from ..rl.runner import run_cell

    torch.set_num_threads(threads)
    store = ResultStore(store_path)
    try:
        rec = run_cell(cfg, seed, store, device=device)
    finally:
        store.close()
    return {k: rec[k] for k in ("env", "objective", "seed", "timesteps", "final_mean", "final_std",
                                "final_stochastic_mean",
                                "wall_seconds", "steps_per_second", "resumed_from")}


def register(app: typer.Typer) -> None:
    @app.command("rl")
    @handle_errors
    def rl(envs: Items = typer.Option("DoorKey-5x5", parser=comma_list(str),
                                      help="comma list of the paper's MiniGrid environments, or all",
                                      metavar="NAME,..."),
           objectives: Items = typer.Option("em,adadem", parser=comma_list(str, tuple(OBJECTIVES)),
                                            help="entropy objectives (em = standard PPO)", metavar="NAME,..."),
           seeds: Items = typer.Option("0,1,2", parser=comma_list(int), help="comma list of seeds",
                                       metavar="INT,..."),
           timesteps_scale: float = typer.Option(1.0, help="fraction of the zoo's budget per environment"),
           max_timesteps: float | None = typer.Option(None, help="cap on every budget (a stated reduction)"),
           evals: int = typer.Option(10, help="evaluations per run (learning-curve points)"),
           ent_coef: float = typer.Option(0.001, help="entropy weight (paper: 0.001; the zoo's default is 0)"),
           normalize: bool | None = typer.Option(None, "--normalize/--no-normalize",
                                                 help="VecNormalize of observations and rewards (default: the "
                                                      "zoo's, on; off is a stated deviation)"),
           tau: float | None = typer.Option(None, help="tau of objective 'dem'"),
           alpha: float | None = typer.Option(None, help="alpha of objective 'dem'"),
           checkpoint_every: int | None = typer.Option(None, help="steps between exactly resumable checkpoints "
                                                       "(default: about 1e5, a multiple of the evaluation interval)"),
           store: Path = typer.Option(DEFAULT_RL_STORE, help="results store; finished cells are skipped"),
           jobs: int = typer.Option(1, help="cells run in parallel, one process and one thread each"),
           device: str = typer.Option("cpu", help="cpu (the MLP policy is faster there) or cuda"),
           dry_run: bool = typer.Option(False, "--dry-run", help="list the cells and their budgets only")) -> None:
        """PPO (RL-Baselines3-Zoo's MiniGrid settings) whose entropy bonus is an entmin objective; one cell per
        (environment, objective, seed), resumable; `entmin report --store` draws the curves and table."""
        from ..errors import UsageError
        from ..rl import require_rl_extra
        from ..rl.settings import MINIGRID_ENVS, RLConfig, resolve_env

        require_rl_extra()
        if jobs < 1 or evals < 1:
            raise UsageError("--jobs and --evals must be >= 1")
        if any(s < 0 for s in seeds):
            raise UsageError(f"seeds must be >= 0, got {', '.join(map(str, seeds))}")
        if max_timesteps is not None and not max_timesteps >= 1:
            raise UsageError(f"--max-timesteps must be >= 1, got {max_timesteps:g}")
        if not ent_coef >= 0:
            raise UsageError(f"--ent-coef must be >= 0, got {ent_coef}")
        from ..utils import resolve_device

        device = str(resolve_device(device))
        names = list(MINIGRID_ENVS) if "all" in envs else [resolve_env(e) for e in envs]
        options: dict[str, float] = {k: v for k, v in (("tau", tau), ("alpha", alpha)) if v is not None}
        if options and objectives != ["dem"]:
            raise UsageError("--tau/--alpha apply to objective 'dem' only; run it on its own")
        cap = None if max_timesteps is None else int(max_timesteps)
        extra: dict[str, Any] = {} if checkpoint_every is None else {"checkpoint_every": checkpoint_every}
        if normalize is not None:
            extra["normalize"] = normalize
        cells = [(RLConfig.from_zoo(env, obj, timesteps_scale=timesteps_scale, max_timesteps=cap, evals=evals,
                                    ent_coef=ent_coef, objective_options=tuple(sorted(options.items())), **extra),
                  seed)
                 for env in names for seed in seeds for obj in objectives]
        if dry_run:
            for cfg, seed in cells:
                console.print(f"{cfg.env} {cfg.objective} seed {seed}: {cfg.timesteps} steps "
                              f"(eval every {cfg.eval_every}) key {cfg.hash()}/{seed}")
            return
        _run_cells(cells, store, jobs, device)
        console.print(f"done: {len(cells)} cells in {store}; `entmin report --store {store}` draws them")


def _run_cells(cells: list[tuple[Any, int]], store: Path, jobs: int, device: str) -> None:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from ..bench.store import ResultStore
    from ..rl.runner import RECORD_KIND, cell_key

    st = ResultStore(store)  # opened (and created) once up front: an unwritable store fails before any compute
    done = st.get_records(RECORD_KIND)
    st.close()
    todo = [(c, s) for c, s in cells if cell_key(c, s) not in done]
    if len(todo) < len(cells):
        console.print(f"{len(cells) - len(todo)} of {len(cells)} cells already in {store}: skipped")

    def line(r: dict[str, Any]) -> str:
        resumed = f", resumed at {r['resumed_from']}" if r["resumed_from"] else ""
        return (f"{r['env'].removeprefix('MiniGrid-')} {r['objective']} seed {r['seed']}: return "
                f"{r['final_mean']:.3f} ± {r['final_std']:.3f} (sampled policy {r['final_stochastic_mean']:.3f}) "
                f"after {r['timesteps']} steps "
                f"({r['steps_per_second']:.0f} steps/s{resumed})")

    with progress(len(todo), "rl cells") as advance:
        if jobs == 1:
            for cfg, seed in todo:
                advance(line=line(_run_one(cfg, seed, str(store), device, 1)))
            return
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_one, cfg, seed, str(store), device, 1) for cfg, seed in todo]
            for fut in as_completed(futures):
                advance(line=line(fut.result()))
