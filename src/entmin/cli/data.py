"""Data commands: corrupt (build the Fashion-MNIST-C cache), contact-sheet, rewards."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from ..data.corruptions import CORRUPTIONS, SEVERITIES
from .common import FMNIST_DIR, Items, comma_list, console, handle_errors, progress, require_writable_dir

__all__ = ["register"]

CACHE_DIR = typer.Option(None, help="corruption cache folder (default $ENTMIN_CACHE or ~/.cache/entmin)")


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def corrupt(data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR,
                severities: Items = typer.Option("1,2,3,4,5", help="comma list of severities (1-5)",
                                                 parser=comma_list(int, SEVERITIES), metavar="INT,..."),
                corruptions: Items = typer.Option("all", help="comma list of corruptions, or all",
                                                  parser=comma_list(str, (*CORRUPTIONS, "all")), metavar="NAME,..."),
                workers: int = typer.Option(0, help="parallel build processes (0 = one per CPU core)")) -> None:
        """Build (or verify) the Fashion-MNIST-C cache: 15 corruptions x 5 severities of the 10,000 test images,
        keyed by the fingerprint of the test set and the corruption code version."""
        from ..data.cache import FMNISTC

        if workers < 0:
            raise ValueError(f"--workers must be >= 0, got {workers}")
        names = list(CORRUPTIONS) if "all" in corruptions else list(corruptions)
        ds = FMNISTC(data_dir, cache_dir)
        with progress(len(names) * len(severities), "corrupting") as advance:
            ds.build_all(names, list(severities), progress=lambda c, s: advance(1, f"{c}-{s}"),
                         workers=workers or os.cpu_count() or 1)
        console.print(f"cache ready at {ds.root}")

    @app.command("contact-sheet")
    @handle_errors
    def contact_sheet(out: Path = typer.Option(Path("results/contact_sheet.png"), help="PNG to write"),
                      index: int = typer.Option(0, help="index of the test image shown"),
                      data_dir: str | None = FMNIST_DIR) -> None:
        """PNG grid of one test image: rows = corruptions, columns = the clean image and severities 1-5."""
        from ..data.fashion_mnist import load_fashion_mnist
        from ..viz.other import contact_sheet as draw

        n = len(load_fashion_mnist("test", data_dir)[1])
        if not 0 <= index < n:
            raise ValueError(f"--index must lie in [0, {n - 1}], got {index}")
        require_writable_dir(out.parent)
        draw(out, index=index, data_dir=data_dir)
        console.print(f"wrote {out}")

    @app.command()
    @handle_errors
    def rewards(out: Path = typer.Option(Path("results/reward_curves.png"), help="PNG to write"),
                num_classes: int = typer.Option(10, help="class count C of the curves")) -> None:
        """Draw the reward-collapse curves of EM, CADF, DEM(tau, alpha) and AdaDEM (paper Fig. 2-4 left)."""
        from ..viz.other import reward_figure

        if num_classes < 2:
            raise ValueError(f"--num-classes must be >= 2, got {num_classes}")
        require_writable_dir(out.parent)
        reward_figure(out, num_classes)
        console.print(f"wrote {out}")
