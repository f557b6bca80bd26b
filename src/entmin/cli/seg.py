"""``entmin seg-train`` and ``entmin seg-tta``: the scene segmentation task, its source model and per-pixel TTA."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..data.corruptions import CORRUPTIONS
from ..objectives import OBJECTIVES
from .common import FMNIST_DIR, Items, comma_list, console, handle_errors, progress, set_threads

__all__ = ["register"]

CACHE_DIR = typer.Option(None, help="scene cache folder (default $ENTMIN_CACHE or ~/.cache/entmin)")
THREADS = typer.Option(1, help="torch intra-op threads")


def register(app: typer.Typer) -> None:
    @app.command("seg-train")
    @handle_errors
    def seg_train(out: Path = typer.Option(Path("results/seg_unet.pt"), help="checkpoint to write (+ .json)"),
                  steps: int = typer.Option(2400, help="training steps"),
                  batch_size: int = typer.Option(24, help="scenes per step"),
                  lr: float = typer.Option(2e-3, help="AdamW learning rate (cosine schedule)"),
                  width: int = typer.Option(12, help="channels of the U-Net's first level"),
                  seed: int = typer.Option(0, help="seed of initialisation and batches"),
                  data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR,
                  threads: int = THREADS) -> None:
        """Train the BatchNorm U-Net on clean Fashion-MNIST scenes (the committed one: the defaults, written with
        --out src/entmin/models/checkpoints/seg_unet.pt)."""
        from ..errors import UsageError
        from ..seg import SceneData
        from ..seg.train import SegRecipe, save_segmenter, train_segmenter

        if steps < 1 or batch_size < 1 or width < 4 or not lr > 0:
            raise UsageError("--steps and --batch-size must be >= 1, --width >= 4, --lr > 0")
        set_threads(threads)
        model, info = train_segmenter(SceneData(data_dir, cache_dir), SegRecipe(steps, batch_size, lr, 1e-4, width),
                                      seed, progress=console.print)
        meta = save_segmenter(model, info, out)
        console.print(f"clean test mIoU {100 * info['clean_test_miou']:.1f}, pixel accuracy "
                      f"{100 * info['clean_test_pixel_accuracy']:.1f}; wrote {out} (sha256 {meta['sha256'][:12]})")

    @app.command("seg-tta")
    @handle_errors
    def seg_tta(methods: Items = typer.Option("source,bn,tent", parser=comma_list(str, ("source", "bn", "tent")),
                                              help="hosts (source, bn, tent)", metavar="NAME,..."),
                objectives: Items = typer.Option("em,adadem", parser=comma_list(str, tuple(OBJECTIVES)),
                                                 help="per-pixel objectives of tent", metavar="NAME,..."),
                protocols: Items = typer.Option("single,continual", parser=comma_list(str, ("single", "continual")),
                                                help="single (reset per domain) and/or continual",
                                                metavar="NAME,..."),
                seeds: Items = typer.Option("0,1,2", parser=comma_list(int), help="seeds (scene order)",
                                            metavar="INT,..."),
                corruptions: Items = typer.Option("all", parser=comma_list(str, (*CORRUPTIONS, "clean", "all")),
                                                  help="target domains in stream order, or all",
                                                  metavar="NAME,..."),
                n_per_domain: int = typer.Option(1000, help="scenes per domain"),
                batch_size: int = typer.Option(16, help="test batch size"),
                lr: float = typer.Option(1e-3, help="learning rate of tent (Adam)"),
                weights: Path | None = typer.Option(None, help="segmenter checkpoint (default: the committed one)"),
                store: Path = typer.Option(Path("results/seg.sqlite"), help="results store"),
                figure: Path | None = typer.Option(None, help="also draw predicted maps (source, tent+em, "
                                                              "tent+adadem) on --figure-domain"),
                figure_domain: str = typer.Option("fog", help="domain of the predicted-map figure"),
                data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR, threads: int = THREADS) -> None:
        """Source-only, BN and Tent (EM vs AdaDEM per pixel) on the corrupted scenes; `entmin report --store`
        writes the mIoU table."""
        from ..bench.store import ResultStore
        from ..errors import UsageError
        from ..seg import SceneData
        from ..seg.train import load_seg_model
        from ..seg.tta import SegTTAConfig, run_seg_tta

        if n_per_domain < 1 or batch_size < 1 or not lr > 0 or any(s < 0 for s in seeds):
            raise UsageError("--n-per-domain and --batch-size must be >= 1, --lr > 0 and seeds >= 0")
        set_threads(threads)
        model, meta = load_seg_model(weights)
        data = SceneData(data_dir, cache_dir, **_scene_args(meta))
        trained_on = meta.get("scenes", {}).get("fashion_mnist")
        if trained_on and trained_on != data.key()["fashion_mnist"]:
            console.print(f"[yellow]warning:[/] {weights or 'the committed segmenter'} was trained on scenes of other "
                          "Fashion-MNIST files (fingerprint differs); its results are keyed by both")
        domains = tuple(CORRUPTIONS) if "all" in corruptions else tuple(corruptions)
        configs = []
        for protocol in protocols:
            for method in methods:
                for obj in (objectives if method == "tent" else ["em"]):
                    configs.append(SegTTAConfig(method, obj, protocol, domains, batch_size, n_per_domain, "adam",
                                                lr, 1, meta["sha256"], data.fingerprint))
        st = ResultStore(store)
        total = len(configs) * len(seeds) * len(domains)
        with progress(total, "seg cells") as advance:
            computed = [0]

            def line(r: dict[str, Any]) -> None:
                computed[0] += 1
                advance(line=f"{r['label']} {r['config']['protocol']} seed {r['seed']} {r['domain']}: mIoU "
                             f"{100 * r['miou']:.1f} ({r['wall_seconds']:.1f}s)")
            for cfg in configs:
                for seed in seeds:
                    computed[0] = 0
                    run_seg_tta(cfg, seed, st, model, data, progress=line)
                    if skipped := len(domains) - computed[0]:   # finished domains read from the store
                        advance(skipped)
        if figure is not None:
            if figure_domain not in (*CORRUPTIONS, "clean"):
                raise UsageError(f"--figure-domain {figure_domain!r} is not clean or a corruption")
            _figure(model, data, figure_domain, lr, batch_size, figure)
        console.print(f"done: {len(configs)} configurations x {len(seeds)} seeds in {store}")


def register_uda(app: typer.Typer) -> None:
    @app.command("seg-uda")
    @handle_errors
    def seg_uda(methods: Items = typer.Option("source,minent,advent", parser=comma_list(str, ("source", "minent",
                                                                                               "advent")),
                                              help="source (fine-tuning baseline), minent, advent", metavar="NAME,..."),
                objectives: Items = typer.Option("em,adadem", parser=comma_list(str, tuple(OBJECTIVES)),
                                                 help="minent: its objective; advent: plain, plus each non-em one "
                                                      "added", metavar="NAME,..."),
                target: str = typer.Option("inverted", help="target domain (inverted, or a corruption)"),
                tau: Items = typer.Option("1.0", parser=comma_list(float), metavar="FLOAT,...",
                                          help="tau of objective dem (a list runs each: a DEM* search grid)"),
                alpha: Items = typer.Option("1.0", parser=comma_list(float), metavar="FLOAT,...",
                                            help="alpha of objective dem (a list runs each)"),
                seeds: Items = typer.Option("0,1,2", parser=comma_list(int), help="seeds", metavar="INT,..."),
                steps: int = typer.Option(1000, help="training steps"),
                batch_size: int = typer.Option(16, help="source and target scenes per step"),
                lambda_ent: float = typer.Option(0.1, help="weight of the objective on target pixels"),
                lambda_adv: float = typer.Option(0.01, help="weight of AdvEnt's adversarial term"),
                checkpoint_every: int = typer.Option(250, help="steps between exactly resumable checkpoints"),
                weights: Path | None = typer.Option(None, help="source segmenter (default: the committed one)"),
                store: Path = typer.Option(Path("results/seg_uda.sqlite"), help="results store"),
                data_dir: str | None = FMNIST_DIR, cache_dir: str | None = CACHE_DIR, threads: int = THREADS) -> None:
        """UDA from clean scenes to a target domain: MinEnt (EM replaced by the objective) and AdvEnt (the
        objective added), ADVENT's two methods; `entmin report --store` writes the target mIoU table."""
        from ..bench.store import ResultStore
        from ..errors import UsageError
        from ..seg import SceneData
        from ..seg.report import MAP_SCENES, pack_uint8, packed_maps
        from ..seg.train import evaluate, load_seg_model
        from ..seg.uda import UDAConfig, run_uda

        if any(s < 0 for s in seeds):
            raise UsageError("seeds must be >= 0")
        if min(tau) <= 0 or min(alpha) < 0:
            raise UsageError("--tau must be > 0 and --alpha >= 0")
        set_threads(threads)
        model, meta = load_seg_model(weights)
        data = SceneData(data_dir, cache_dir, **_scene_args(meta))
        data.split(target, "test")                      # an unknown target fails here, before any training
        common = {"target": target, "steps": steps, "batch_size": batch_size, "lambda_ent": lambda_ent,
                  "lambda_adv": lambda_adv, "checkpoint_every": checkpoint_every,
                  "weights_sha256": meta["sha256"], "scenes_fingerprint": data.fingerprint}
        configs = []
        for m in methods:
            objs = ["em"] if m == "source" else list(objectives) if m == "minent" else \
                ["none"] + [o for o in objectives if o != "em"]
            for o in objs:
                grid = [(("alpha", a), ("tau", t)) for t in tau for a in alpha] if o == "dem" else [()]
                configs += [UDAConfig(m, o, objective_options=opts, **common) for opts in grid]
        st = ResultStore(store)
        xe, ye = data.split(target, "test")
        base = evaluate(model, xe, ye)
        st.put_record("seg-uda-source", f"{meta['sha256']}/{data.fingerprint}/{target}",
                      {"target": target, "label": "source only (no adaptation)", "sha256": meta["sha256"],
                       "scenes_fingerprint": data.fingerprint,
                       "maps": packed_maps(model, xe), "truth": pack_uint8(ye[:MAP_SCENES]),
                       "scenes": pack_uint8((xe[:MAP_SCENES] * 255).round()), **base}, replace=True)
        with progress(len(configs) * len(seeds), "uda runs") as advance:
            for cfg in configs:
                for seed in seeds:
                    r = run_uda(cfg, seed, st, model, data)
                    advance(line=f"{cfg.label} seed {seed}: target mIoU {100 * r['miou']:.1f}")
        console.print(f"source only: target mIoU {100 * base['miou']:.1f}; results in {store}")


def _scene_args(meta: dict[str, Any]) -> dict[str, Any]:
    """The scene parameters the checkpoint was trained with, so that its target scenes match them."""
    scenes = meta.get("scenes", {})
    n = scenes.get("n", {})
    return {k: v for k, v in (("size", scenes.get("size")), ("seed", scenes.get("seed")),
                              ("n_train", n.get("train")), ("n_test", n.get("test")),
                              ("severity", scenes.get("severity"))) if v is not None}


def _figure(model, data, domain: str, lr: float, batch_size: int, path: Path) -> None:
    import torch

    from ..adapt import make_adapter
    from ..seg.report import seg_maps_figure
    from ..seg.scenes import NUM_SEG_CLASSES

    x, y = data.split(domain, "test")
    preds = {}
    for name, obj in (("source", None), ("tent + EM", "em"), ("tent + AdaDEM", "adadem")):
        if obj is None:
            with torch.no_grad():
                preds[name] = model.eval()(x[:6]).argmax(1)
            continue
        import copy
        ad = make_adapter("tent", copy.deepcopy(model), obj, num_classes=NUM_SEG_CLASSES,
                          optimizer={"name": "adam", "lr": lr})
        for i in range(6, len(x), batch_size):   # adapt on the domain, then predict the shown scenes
            ad(x[i:i + batch_size])
        with torch.no_grad():
            preds[name] = ad(x[:6]).argmax(1)
    seg_maps_figure(x[:6], y[:6], preds, path, title=f"{domain}, severity {data.severity}")
