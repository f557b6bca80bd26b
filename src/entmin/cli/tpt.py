"""``entmin tpt-train`` and ``entmin tpt``: the CLIP-style validation model and the TPT benchmark on it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..data.corruptions import CORRUPTIONS
from ..objectives import OBJECTIVES
from .common import FMNIST_DIR, Items, comma_list, console, handle_errors, progress

__all__ = ["register"]

METHODS = ("zero-shot", "ensemble", "coop", "tpt", "tpt-coop")


def _run_one(cfg: Any, seed: int, splits: tuple[str, ...], store_path: str, weights: str | None,
             data_dir: str | None, cache_dir: str | None) -> tuple[str, int, float, float]:
    """One (configuration, seed) in a worker process: one torch thread, its own store connection."""
    import torch

    from ..bench.store import ResultStore
    from ..data.cache import FMNISTC
    from ..tpt.bench import run_tpt
    from ..tpt.mini_clip_train import load_mini_clip

    torch.set_num_threads(1)
    clip, meta = load_mini_clip(weights)
    st = ResultStore(store_path)
    try:
        recs = run_tpt(cfg, seed, splits, st, clip, meta["classnames"], FMNISTC(data_dir, cache_dir))
    finally:
        st.close()
    n = sum(r["n"] for r in recs)
    return cfg.label, seed, sum(r["correct"] for r in recs) / n, sum(r["wall_seconds"] for r in recs) / n


def register(app: typer.Typer) -> None:
    @app.command("tpt-train")
    @handle_errors
    def tpt_train(out: Path = typer.Option(Path("results/mini_clip.pt"), help="checkpoint to write (+ .json)"),
                  steps: int = typer.Option(1000, help="training steps"),
                  seed: int = typer.Option(0, help="seed of initialisation, batches and captions"),
                  data_dir: str | None = FMNIST_DIR) -> None:
        """Train the CLIP-style model contrastively on Fashion-MNIST and template captions (the committed one:
        the defaults, written with --out src/entmin/models/checkpoints/mini_clip.pt; one thread, ~3 min)."""
        import torch

        from ..errors import UsageError
        from ..tpt.mini_clip_train import CLIPRecipe, save_mini_clip, train_mini_clip

        if steps < 1:
            raise UsageError("--steps must be >= 1")
        torch.set_num_threads(1)
        model, info = train_mini_clip(CLIPRecipe(steps=steps), seed, data_dir, progress=console.print)
        meta = save_mini_clip(model, info, out)
        console.print(f"zero-shot clean accuracy {100 * info['zero_shot_clean_accuracy']:.1f} (ensemble "
                      f"{100 * info['ensemble_clean_accuracy']:.1f}); wrote {out} (sha256 {meta['sha256'][:12]})")

    @app.command("tpt")
    @handle_errors
    def tpt(methods: Items = typer.Option(",".join(METHODS), parser=comma_list(str, METHODS), metavar="NAME,...",
                                          help="zero-shot, ensemble, coop (16 shots), tpt, tpt-coop"),
            objectives: Items = typer.Option("em,adadem", parser=comma_list(str, tuple(OBJECTIVES)),
                                             metavar="NAME,...", help="objectives of tpt and tpt-coop (em = TPT)"),
            tau: float = typer.Option(0.8, help="tau of objective dem (default: the paper's TPT+DEM* for "
                                               "CLIP-ViT-B/16, not searched here)"),
            alpha: float = typer.Option(1.0, help="alpha of objective dem"),
            steps: Items = typer.Option("1", parser=comma_list(int), metavar="INT,...",
                                        help="TPT steps per image (a list runs each)"),
            lr: Items = typer.Option("5e-3", parser=comma_list(float), metavar="FLOAT,...",
                                     help="TPT learning rates (AdamW; a list runs each)"),
            n_views: int = typer.Option(63, help="augmented views per image (plus the image)"),
            augment: Items = typer.Option("crops", parser=comma_list(str, ("crops", "augmix")), metavar="NAME,...",
                                          help="TPT's views: crops (random resized crops + flips, TPT on "
                                               "ImageNet) and/or augmix (TPT on its other test sets)"),
            seeds: Items = typer.Option("0,1,2", parser=comma_list(int), metavar="INT,...",
                                        help="seeds of TPT's augmentations (other methods run once)"),
            splits: Items = typer.Option("clean,all", parser=comma_list(str, ("clean", "all", *CORRUPTIONS)),
                                         metavar="NAME,...", help="clean and/or corruptions, or all corruptions"),
            severity: int = typer.Option(5, help="corruption severity"),
            n_images: int = typer.Option(500, help="test images per split (the same seeded subset everywhere)"),
            block: int = typer.Option(100, help="images per stored block (the unit of resumption)"),
            offset: int = typer.Option(0, help="skip this many images of the fixed order (--offset 300 --n-images "
                                               "100: a subset disjoint from the default test subset, to search on)"),
            weights: Path | None = typer.Option(None, help="CLIP-style checkpoint (default: the committed one)"),
            store: Path = typer.Option(Path("results/tpt.sqlite"), help="results store; finished blocks are skipped"),
            jobs: int = typer.Option(1, help="(configuration, seed) runs in parallel, one process and thread each"),
            data_dir: str | None = FMNIST_DIR,
            cache_dir: str | None = typer.Option(None, help="corruption cache (default $ENTMIN_CACHE)")) -> None:
        """Zero-shot, prompt ensemble, CoOp, TPT and TPT(CoOp) with em/dem/adadem on the committed CLIP-style model,
        clean and corrupted test images; `entmin report --store` writes the table."""
        from rich.markup import escape

        from ..bench.store import ResultStore
        from ..errors import UsageError
        from ..tpt.bench import TPTConfig
        from ..tpt.mini_clip_train import load_mini_clip

        if min(seeds) < 0 or jobs < 1 or n_images < 1 or block < 1 or severity not in (1, 2, 3, 4, 5):
            raise UsageError("seeds must be >= 0, --jobs/--n-images/--block >= 1, --severity in 1..5")
        if min(steps) < 0 or not min(lr) > 0 or n_views < 0:
            raise UsageError("--steps and --n-views must be >= 0 and --lr > 0")
        load_mini_clip(weights)                           # a missing or damaged checkpoint fails before any work
        names = ("clean",) * ("clean" in splits) + tuple(CORRUPTIONS if "all" in splits else
                                                          [s for s in splits if s != "clean"])
        runs = []
        for method in methods:
            if method in ("tpt", "tpt-coop"):
                for obj in objectives:
                    dem = {"tau": tau, "alpha": alpha} if obj == "dem" else {}
                    runs += [(TPTConfig(method, obj, steps=k, lr=r, n_views=n_views, augment=a, severity=severity,
                                        n_images=n_images, block=block, offset=offset, **dem), s)
                             for a in augment for k in steps for r in lr for s in seeds]
            else:
                runs.append((TPTConfig(method, severity=severity, n_images=n_images, block=block, offset=offset), 0))
        ResultStore(store).close()                         # an unwritable store fails before any compute
        if corrupted := [n for n in names if n != "clean"]:  # build missing splits once, not in every worker
            from ..data.cache import FMNISTC

            FMNISTC(data_dir, cache_dir).build_all(corrupted, (severity,), workers=jobs)
        args = (names, str(store), str(weights) if weights else None, data_dir, cache_dir)
        with progress(len(runs), "tpt runs") as advance:
            def line(out: tuple[str, int, float, float]) -> None:
                advance(line=f"{escape(out[0])} seed {out[1]}: accuracy {100 * out[2]:.1f} over {len(names)} split(s) "
                             f"({1000 * out[3]:.1f} ms/image)")
            if jobs == 1:
                for cfg, seed in runs:
                    line(_run_one(cfg, seed, *args))
            else:
                from concurrent.futures import ProcessPoolExecutor, as_completed
                from multiprocessing import get_context

                with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
                    for fut in as_completed([pool.submit(_run_one, cfg, seed, *args) for cfg, seed in runs]):
                        line(fut.result())
        console.print(f"done: {len(runs)} runs in {store}; `entmin report --store {store}` writes the table")
