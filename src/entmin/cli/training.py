"""Training commands: train-source (the built-in source models), train (entropy-regularised training)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..training.source import SourceRecipe
from .common import Items, comma_list, config_options, console, handle_errors, require_writable_dir, set_threads

__all__ = ["register"]

DATA_DIR = typer.Option(None, help="IDX dataset folder (default: Debian's Fashion-MNIST or "
                                   "$ENTMIN_FASHION_MNIST_DIR)")
DEVICE = typer.Option("auto", help="auto (cuda if available), cpu, cuda or cuda:N")
THREADS = typer.Option(None, help="torch intra-op threads (default: torch's choice)")


def register(app: typer.Typer) -> None:
    @app.command("train-source")
    @handle_errors
    @config_options(SourceRecipe)
    def train_source_cmd(out: Path | None = typer.Option(None, help="checkpoint to write (default "
                                                                    "results/source/fmnist_<model>.pt; never the "
                                                                    "installed package)"),
                         data_dir: str | None = DATA_DIR, device: str = DEVICE, threads: int | None = THREADS,
                         limit: int | None = typer.Option(None, help="train on the first N training images only"),
                         *, options: dict[str, Any], given: set[str]) -> None:
        """Train a built-in source model on a clean IDX dataset and write the checkpoint + metadata JSON (use it
        with `--model <arch> --weights <file>`; the committed ones are reproduced by the defaults)."""
        from ..training.source import train_source
        from ..utils import resolve_device

        set_threads(threads)
        recipe = SourceRecipe(**options)
        path = out or Path("results/source") / f"fmnist_{recipe.model}.pt"
        require_writable_dir(path.parent, "checkpoint folder")
        if limit is not None and limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        meta = train_source(recipe, path, data_dir=data_dir, device=resolve_device(device), limit=limit,
                            progress=console.print, command="entmin " + " ".join(sys.argv[1:]))
        console.print(f"saved {path}: clean test accuracy {meta['clean_test_accuracy']:.4f} after "
                      f"{meta['recipe']['steps']} steps")

    @app.command()
    @handle_errors
    def train(task: str = typer.Option("supervised", help="supervised | semi | imbalanced"),
              losses: Items = typer.Option("ce,min_ent,mix_ent,label_smoothing", parser=comma_list(str),
                                           help="supervised: ce,min_ent,mix_ent,label_smoothing; semi/imbalanced: "
                                                "supervised,entmin,entmin_adadem,fixmatch,fixmatch_adadem",
                                           metavar="NAME,..."),
              model: str = typer.Option("cnn", help="built-in architecture trained from scratch"),
              seeds: Items = typer.Option("1,2,3", parser=comma_list(int), help="comma list of seeds",
                                          metavar="INT,..."),
              steps: int = typer.Option(1500, help="optimisation steps"),
              lr: float = typer.Option(0.05, help="peak SGD learning rate (cosine schedule)"),
              labels_per_class: Items = typer.Option("25", parser=comma_list(int), metavar="INT,...",
                                                     help="semi: labelled images per class (comma list)"),
              imbalance_ratios: Items = typer.Option("10,100", parser=comma_list(float), metavar="FLOAT,...",
                                                     help="imbalanced: n_max / n_min (comma list)"),
              n_train: int | None = typer.Option(None, help="supervised: train on n images (default all)"),
              n_test: int | None = typer.Option(None, help="evaluate on the first n test images (default all)"),
              store: Path = typer.Option(Path("results/train.sqlite"), help="results store of the runs"),
              out: Path = typer.Option(Path("results/train"), help="folder of tables, figures and checkpoints"),
              data_dir: str | None = DATA_DIR, device: str = DEVICE, threads: int | None = THREADS,
              save_checkpoints: bool = typer.Option(True, help="save each trained model under <out>/checkpoints")
              ) -> None:
        """Train with entropy objectives: supervised MIN-ENT/MIX-ENT, semi-supervised EM vs AdaDEM (+FixMatch),
        long-tailed data; several seeds, results in a store (finished runs are skipped), a table and plots."""
        from ..bench.store import ResultStore
        from ..training.entropy_training import TrainConfig, run_training
        from ..training.report import training_table_markdown
        from ..utils import resolve_device
        from ..viz.other import plot_per_class_f1

        set_threads(threads)
        dev = resolve_device(device)
        require_writable_dir(out)
        if task == "semi":
            settings = [{"labels_per_class": int(v)} for v in labels_per_class]
        elif task == "imbalanced":
            settings = [{"imbalance_ratio": float(v)} for v in imbalance_ratios]
        else:
            settings = [{"n_train": n_train}]
        cfgs = [TrainConfig(task=task, loss=loss, model=model, steps=steps, lr=lr, n_test=n_test, **extra)
                for extra in settings for loss in losses]
        st = ResultStore(store)
        keys = set()
        for cfg in cfgs:
            for seed in seeds:
                run_training(cfg, seed, data_dir=data_dir, device=dev, store=st, progress=console.print,
                             checkpoint_dir=out / "checkpoints" if save_checkpoints else None)
                keys.add(f"{cfg.key}|seed={seed}")
        records = {k: v for k, v in st.get_records(f"train:{task}").items() if k in keys}
        md = training_table_markdown(records)
        (out / f"{task}_table.md").write_text(md)
        if task != "supervised":
            for setting in settings:
                sel = {k: v for k, v in records.items() if all(v["config"][a] == b for a, b in setting.items())}
                tag = "_".join(f"{a}{b:g}" for a, b in setting.items())
                plot_per_class_f1(sel, out / f"{task}_per_class_f1_{tag}.png", f"{task}, {tag}")
        print(md)
