"""Label-free accuracy estimation commands: estimate-eval, estimate, phases."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from ..data.corruptions import CORRUPTIONS, SEVERITIES
from ..models.small import MODEL_NAMES
from .common import FMNIST_DIR, Items, comma_list, console, handle_errors, require_writable_dir, set_threads

__all__ = ["register"]

CACHE_DIR = typer.Option(None, help="corruption cache folder (default $ENTMIN_CACHE or ~/.cache/entmin)")
DEVICE = typer.Option("auto", help="auto (cuda if available), cpu, cuda or cuda:N")
MODEL = typer.Option("cnn", help="committed source model")
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]


def register(app: typer.Typer) -> None:
    @app.command("estimate-eval")
    @handle_errors
    def estimate_eval(models: Items = typer.Option("cnn,vit", parser=comma_list(str, MODEL_NAMES),
                                                   help="comma list of committed source models",
                                                   metavar="NAME,..."),
                      store: Path = typer.Option(Path("results/estimate.sqlite"), help="store of the split records"),
                      out: Path = typer.Option(Path("results/estimate"), help="folder of table, plots and maps"),
                      probe_size: int = typer.Option(1000, help="images re-predicted to count flips"),
                      steps: int = typer.Option(300, help="adaptation steps of the flip measurement"),
                      lr: float = typer.Option(1e-3, help="learning rate of the flip measurement"),
                      severities: Items = typer.Option("1,2,3,4,5", parser=comma_list(int, SEVERITIES),
                                                       help="comma list of severities", metavar="INT,..."),
                      corruptions: Items = typer.Option("all", parser=comma_list(str, (*CORRUPTIONS, "all")),
                                                        help="comma list of corruptions, or all", metavar="NAME,..."),
                      data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE,
                      threads: int | None = typer.Option(None, help="torch intra-op threads")) -> None:
        """MAE of Weighted Flips and the AC/DoC/ATC/COT baselines over Fashion-MNIST-C (leave-one-corruption-out
        calibration), a scatter plot per model, and the fitted maps (for `entmin estimate`)."""
        from ..bench.store import ResultStore
        from ..data.cache import FMNISTC
        from ..estimate.evaluate import FLIP_METHODS, collect_records, leave_one_corruption_out, mae_table_markdown
        from ..estimate.flips import FlipsConfig, PolynomialMap
        from ..utils import resolve_device
        from ..viz.other import scatter_plot

        set_threads(threads)
        dev = resolve_device(device)
        require_writable_dir(out)
        cfg = FlipsConfig(probe_size=probe_size, steps=steps, lr=lr)
        st = ResultStore(store)
        data = FMNISTC(data_dir, cache_dir)
        names = list(CORRUPTIONS) if "all" in corruptions else list(corruptions)
        per_model = {}
        for model in models:
            recs = collect_records(model, st, cfg, data=data, severities=tuple(severities), corruptions=tuple(names),
                                   device=dev, progress=console.print)
            per_model[model] = leave_one_corruption_out(recs)
            scatter_plot(per_model[model], out / f"scatter_{model}.png", f"{model}: estimated vs true accuracy")
            vals = list(recs.values())
            maps = {name: PolynomialMap(deg).fit([r[stat] for r in vals], [r["accuracy"] for r in vals]).coef.tolist()
                    for name, (stat, deg) in FLIP_METHODS.items()}
            (out / f"maps_{model}.json").write_text(json.dumps(
                {"model": model, "flips_config": cfg.__dict__, "maps": maps,
                 "statistics": {n: s for n, (s, _) in FLIP_METHODS.items()}}, indent=2))
        md = mae_table_markdown(per_model)
        (out / "mae_table.md").write_text(md)
        print(md)

    @app.command()
    @handle_errors
    def estimate(model: ModelName = MODEL,
                 corruption: str = typer.Option("gaussian_noise", help="corruption of the built-in data"),
                 severity: int = typer.Option(5, help="severity 1-5 of the built-in data"),
                 images: Path | None = typer.Option(None, help=".npy of (N, 32, 32) uint8 or (N, 1, 32, 32) float "
                                                               "images to estimate on instead"),
                 maps: Path | None = typer.Option(None, help="maps JSON written by estimate-eval"),
                 data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE) -> None:
        """Estimate the source model's accuracy on unlabelled data (Weighted Flips + AC/DoC/ATC baselines)."""
        import numpy as np
        import torch

        from ..data.cache import FMNISTC
        from ..errors import DataError
        from ..estimate.baselines import BASELINES
        from ..estimate.evaluate import predict_logits
        from ..estimate.flips import FlipsConfig, PolynomialMap, measure_flips
        from ..models.checkpoints import load_source_model
        from ..utils import resolve_device

        name = model
        dev = resolve_device(device)
        data = FMNISTC(data_dir, cache_dir)
        if images is not None:
            try:
                arr = np.load(images, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read {images}: {e}") from None
            if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"{images}: expected uint8 or float images, got dtype {arr.dtype}")
            x = torch.from_numpy(arr).float()
            x = x / 255.0 if arr.dtype == np.uint8 else x
            x = x.unsqueeze(1) if x.dim() == 3 else x
            if x.dim() != 4 or x.shape[1:] != (1, 32, 32):
                raise ValueError(f"{images}: expected (N, 32, 32) or (N, 1, 32, 32) images, got {tuple(arr.shape)}")
        else:
            x, _ = data.load(corruption, severity)
        maps_path = maps or Path("results/estimate") / f"maps_{name}.json"
        if not maps_path.is_file():
            raise FileNotFoundError(f"no fitted maps at {maps_path}; run `entmin estimate-eval --models {name}`")
        try:
            spec = json.loads(maps_path.read_text())
            cfg = FlipsConfig(**spec["flips_config"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"{maps_path} is not a maps file of estimate-eval ({e})") from None
        src = load_source_model(name).to(dev)
        logits = predict_logits(src, x, dev)
        xi, yi = data.load("clean", 0)
        id_logits = predict_logits(src, xi, dev)
        result = {n: make().fit(id_logits, yi).estimate(logits) for n, make in BASELINES.items()}
        stats = measure_flips(lambda: load_source_model(name), x, cfg, dev)
        for n, coef in spec["maps"].items():
            result[n] = float(PolynomialMap(len(coef) - 1, coef)(stats[spec["statistics"][n]]))
        result.update(stats)
        print(json.dumps(result, indent=2))

    @app.command()
    @handle_errors
    def phases(model: ModelName = MODEL,
               corruption: str = typer.Option("gaussian_noise", help="corruption adapted to"),
               severity: int = typer.Option(5, help="severity 1-5"),
               steps: int = typer.Option(600, help="adaptation steps"),
               every: int = typer.Option(20, help="measure every this many steps"),
               lr: float = typer.Option(1e-2, help="Tent learning rate"),
               objectives: Items = typer.Option("em,adadem", parser=comma_list(str), metavar="NAME,...",
                                                help="comma list of objectives compared"),
               out: Path = typer.Option(Path("results/phases"), help="folder of the PNG and JSON"),
               data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR, device: str = DEVICE) -> None:
        """The two phases of EM (clustering, then collapse): accuracy, distance to source class means and cluster
        quality along a long adaptation run, for EM vs AdaDEM; writes a PNG and a JSON."""
        from ..data.cache import FMNISTC
        from ..estimate.phases import two_phase_run
        from ..models.checkpoints import load_source_model
        from ..utils import resolve_device
        from ..viz.other import plot_phases

        name = model
        if steps < 1 or every < 1:
            raise ValueError(f"--steps and --every must be >= 1, got {steps} and {every}")
        dev = resolve_device(device)
        require_writable_dir(out)
        data = FMNISTC(data_dir, cache_dir)
        runs = {o: two_phase_run(lambda: load_source_model(name), data.load("clean", 0), data.load(corruption, severity),
                                 objective=o, steps=steps, every=every, lr=lr, device=dev)
                for o in objectives}
        plot_phases(runs, out / f"phases_{name}_{corruption}.png", f"{name}, {corruption}-{severity}, Tent lr {lr}")
        (out / f"phases_{name}_{corruption}.json").write_text(json.dumps(runs, indent=1))
        console.print(f"wrote {out}/phases_{name}_{corruption}.png")
