"""The ``entmin`` command: train-source, corrupt, contact-sheet, run, compare, report, rewards."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="entmin: entropy minimisation toolkit (objectives, test-time adaptation, benchmarks).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)

DEFAULT_STORE = Path("results/entmin.sqlite")
# shared by run, compare, sweep and search (one definition, one help text)
DATASET_OPTION = typer.Option("fmnist", help="fmnist (built-in), cifar10c or imagenetc (with --data-dir)")
WEIGHTS_OPTION = typer.Option(None, help="model weights file, or 'pretrained' (timm:/torchvision: models)")


def _split(s: str) -> list[str]:
    return [p.strip() for p in s.split(",") if p.strip()]


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(2)


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(n)


@app.command("train-source")
def train_source_cmd(model: str = typer.Option("cnn", help="cnn or vit"), seed: int = 0,
                     epochs: int | None = typer.Option(None, help="override the recipe's epochs"),
                     out: Path | None = typer.Option(None, help="checkpoint path (default: the committed one)"),
                     data_dir: str | None = None, device: str = "cpu") -> None:
    """Train a built-in source model on clean Fashion-MNIST and write the checkpoint + metadata JSON."""
    from .models.checkpoints import CHECKPOINT_DIR
    from .training.source import train_source

    path = out or CHECKPOINT_DIR / f"fmnist_{model}.pt"
    cmd = "entmin " + " ".join(sys.argv[1:])
    try:
        meta = train_source(model, path, seed=seed, epochs=epochs, data_dir=data_dir, device=device,
                            progress=console.print, command=cmd)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print(f"saved {path}: clean test accuracy {meta['clean_test_accuracy']:.4f}")


@app.command()
def corrupt(data_dir: str | None = None, cache_dir: str | None = None,
            severities: str = typer.Option("1,2,3,4,5"), corruptions: str = typer.Option("all"),
            workers: int = typer.Option(0, help="parallel build processes (0 = one per CPU core)")) -> None:
    """Build (or verify) the Fashion-MNIST-C cache: 15 corruptions x 5 severities of the 10,000 test images."""
    from .data.cache import FMNISTC
    from .data.corruptions import CORRUPTIONS

    names = list(CORRUPTIONS) if corruptions == "all" else _split(corruptions)
    sev = [int(s) for s in _split(severities)]
    ds = FMNISTC(data_dir, cache_dir)
    try:
        with _progress() as prog:
            task = prog.add_task("corrupting", total=len(names) * len(sev))
            ds.build_all(names, sev, progress=lambda c, s: prog.update(task, advance=1, description=f"{c}-{s}"),
                         workers=workers or os.cpu_count() or 1)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print(f"cache ready at {ds.root}")


@app.command("contact-sheet")
def contact_sheet(out: Path = Path("results/contact_sheet.png"), index: int = 0, data_dir: str | None = None,
                  cache_dir: str | None = None) -> None:
    """PNG grid of one test image: rows = corruptions, columns = severities 1-5 (plus the clean image)."""
    from .plots import contact_sheet as draw

    draw(out, index=index, data_dir=data_dir, cache_dir=cache_dir)
    console.print(f"wrote {out}")


@app.command()
def rewards(out: Path = Path("results/reward_curves.png"), num_classes: int = 10) -> None:
    """Draw the reward-collapse curves of EM, CADF, DEM(tau, alpha) and AdaDEM (paper Fig. 2-4 left)."""
    from .plots import reward_figure

    reward_figure(out, num_classes)
    console.print(f"wrote {out}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _run_grid(configs, seeds, store_path, data_dir, cache_dir, device):
    from .bench.runner import run_experiment
    from .bench.store import ResultStore
    from .utils import resolve_device

    store = ResultStore(store_path)
    dev = resolve_device(device)
    total = sum(len(c.corruptions) for c in configs) * len(seeds)
    with _progress() as prog:
        task = prog.add_task("benchmark", total=total)
        for cfg in configs:
            done = sum(len(store.done(cfg.hash, s) & set(cfg.corruptions)) for s in seeds)
            prog.update(task, advance=done)
            run_experiment(cfg, seeds, store, data_dir=data_dir, cache_dir=cache_dir, device=dev,
                           progress=lambda label, seed, dom, acc: prog.update(
                               task, advance=1, description=f"{label} seed {seed} {dom}: {100 * acc:.1f}%"))
    return store


def _run_distributed(configs, seeds, store_path, data_dir, cache_dir, device, ray_address):
    """Run configurations as Ray tasks; the driver writes every finished run to the store."""
    from .bench.store import ResultStore
    from .executors import RayExecutor

    store = ResultStore(store_path)
    ex = RayExecutor(ray_address)
    kwargs = {"data_dir": data_dir, "cache_dir": cache_dir, "device": "cpu" if device == "auto" else device}
    failed = []
    with _progress() as prog:
        task = prog.add_task("ray tasks", total=len(configs))
        for res in ex.run(configs, seeds, store, kwargs):
            prog.update(task, advance=1, description=f"{res.config.label} lr {res.config.effective_lr:g}")
            if res.rows is None:
                failed.append(f"{res.config.label} (lr {res.config.effective_lr:g}): {res.error}")
    for f in failed:
        console.print(f"[yellow]failed after retries:[/] {f}")
    return store


def _configs(methods, objectives, protocols, models, store_path=None, **common):
    """Configurations of a grid; objective ``dem*`` takes the (tau, alpha) stored by `entmin search`."""
    from .bench.config import RunConfig

    out = []
    for model in models:
        for protocol in protocols:
            for method in methods:
                objs = ["em"] if method in ("source", "bn") else objectives
                for obj in objs:
                    if obj.lower() in ("dem*", "demstar"):
                        from .bench.store import ResultStore
                        from .search import best_dem_params

                        base = RunConfig(method=method, protocol=protocol, model=model, **common)
                        best = best_dem_params(ResultStore(store_path or DEFAULT_STORE), base)
                        if best is None:
                            raise ValueError(f"no DEM* parameters stored for {method}/{model}/{protocol}; run "
                                             f"`entmin search --method {method} --model {model} --protocol {protocol}`")
                        out.append(RunConfig(method=method, objective="dem", protocol=protocol, model=model,
                                             objective_options=(("alpha", best["alpha"]), ("tau", best["tau"])),
                                             **common))
                    else:
                        out.append(RunConfig(method=method, objective=obj, protocol=protocol, model=model, **common))
    return out


@app.command()
def run(method: str = "tent", objective: str = "em", model: str = "cnn", protocol: str = "single",
        seeds: str = "1", severity: int = 5, batch_size: int = 64, lr: float | None = None,
        n_per_domain: int | None = None, corruptions: str = "all", tau: float | None = None,
        alpha: float | None = None, config: Path | None = typer.Option(None, help="TOML experiment file"),
        store: Path = DEFAULT_STORE, data_dir: str | None = None, cache_dir: str | None = None,
        device: str = "auto", threads: int | None = None, dataset: str = DATASET_OPTION,
        weights: str | None = WEIGHTS_OPTION) -> None:
    """Run one method with one objective on one protocol; prints its per-corruption table."""
    from .bench.config import RunConfig, load_config_file
    from .bench.report import build_table, table_markdown
    from .data.corruptions import CORRUPTIONS

    _threads(threads)
    try:
        if config:
            cfg = load_config_file(config)
        else:
            opts = tuple(sorted({k: v for k, v in (("tau", tau), ("alpha", alpha)) if v is not None}.items()))
            cfg = RunConfig(method=method, objective=objective, objective_options=opts, model=model,
                            dataset=dataset, weights=weights, protocol=protocol, severity=severity,
                            batch_size=batch_size, lr=lr, n_per_domain=n_per_domain,
                            corruptions=tuple(CORRUPTIONS) if corruptions == "all" else tuple(_split(corruptions)))
        st = _run_grid([cfg], [int(s) for s in _split(seeds)], store, data_dir, cache_dir, device)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    print(table_markdown(build_table(st.cells(cfg.hash))))


@app.command()
def compare(methods: str = "source,tent", objectives: str = "em,adadem", protocols: str = "single,continual",
            models: str = "cnn", seeds: str = "1,2,3", severity: int = 5, batch_size: int = 64,
            lr: float | None = None, optimizer: str = "sgd", momentum: float = 0.9,
            n_per_domain: int | None = None, corruptions: str = "all",
            store: Path = DEFAULT_STORE, out: Path = Path("results"), data_dir: str | None = None,
            cache_dir: str | None = None, device: str = "auto", threads: int | None = None,
            dataset: str = DATASET_OPTION,
            weights: str | None = WEIGHTS_OPTION) -> None:
    """Grid of methods x objectives x protocols x models x seeds; writes the paper-style table and plots."""
    from .data.corruptions import CORRUPTIONS

    _threads(threads)
    try:
        cfgs = _configs(_split(methods), _split(objectives), _split(protocols), _split(models), store_path=store,
                        severity=severity,
                        batch_size=batch_size, lr=lr, n_per_domain=n_per_domain, optimizer=optimizer,
                        momentum=momentum, dataset=dataset, weights=weights,
                        corruptions=tuple(CORRUPTIONS) if corruptions == "all" else tuple(_split(corruptions)))
        st = _run_grid(cfgs, [int(s) for s in _split(seeds)], store, data_dir, cache_dir, device)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    _report(st, out, {c.hash for c in cfgs})


@app.command()
def sweep(methods: str = "tent", objectives: str = "em,adadem_norm,adadem_mec,adadem",
          lrs: str = typer.Option("1e-4,2.5e-4,5e-4,1e-3,2.5e-3,5e-3,0.01,0.025,0.05,0.1",
                                  help="learning-rate grid (the paper's Table 14 grid by default)"),
          protocols: str = "single,continual", models: str = "cnn", seeds: str = "1", severity: int = 5,
          batch_size: int = 64, optimizer: str = "sgd", momentum: float = 0.9,
          n_per_domain: int | None = None, corruptions: str = "all", store: Path = DEFAULT_STORE,
          out: Path = Path("results/sweep"), data_dir: str | None = None, cache_dir: str | None = None,
          device: str = "auto", threads: int | None = None,
          dataset: str = DATASET_OPTION,
          weights: str | None = WEIGHTS_OPTION,
          ray_address: str | None = typer.Option(None, envvar="ENTMIN_RAY_ADDRESS",
                                                 help="run the grid as tasks on this Ray cluster")) -> None:
    """Learning-rate grid for several methods and objectives, into the same store as `compare`; writes the
    accuracy-vs-lr table and plot (the paper's Table 14 / Fig. 9 analog)."""
    from .bench.config import RunConfig
    from .bench.report import build_table, lr_table_markdown, plot_lr_sweep
    from .data.corruptions import CORRUPTIONS

    _threads(threads)
    try:
        grid = [float(v) for v in _split(lrs)]
        cfgs = [RunConfig(method=m, objective=o, protocol=p, model=md, lr=lr, severity=severity,
                          batch_size=batch_size, optimizer=optimizer, momentum=momentum, n_per_domain=n_per_domain,
                          dataset=dataset, weights=weights,
                          corruptions=tuple(CORRUPTIONS) if corruptions == "all" else tuple(_split(corruptions)))
                for md in _split(models) for p in _split(protocols) for m in _split(methods)
                for o in _split(objectives) for lr in grid]
        if ray_address:
            st = _run_distributed(cfgs, [int(s) for s in _split(seeds)], store, data_dir, cache_dir, device,
                                  ray_address)
        else:
            st = _run_grid(cfgs, [int(s) for s in _split(seeds)], store, data_dir, cache_dir, device)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    hashes = {c.hash for c in cfgs}
    entries = build_table([r for r in st.cells() if r["config_hash"] in hashes])
    out.mkdir(parents=True, exist_ok=True)
    md = lr_table_markdown(entries)
    (out / "lr_table.md").write_text(md)
    for model, protocol in sorted({(e["model"], e["protocol"]) for e in entries}):
        plot_lr_sweep([e for e in entries if e["model"] == model and e["protocol"] == protocol],
                      out / f"lr_sweep_{model}_{protocol}.png", f"{model}, {protocol}")
    print(md)


@app.command()
def search(method: str = "tent", model: str = "cnn", protocol: str = "single", trials: int = 30,
           seeds: str = "1", constrain: bool = typer.Option(True, help="restrict tau <= 2/alpha (Prop. A.1)"),
           lr: float | None = None, n_per_domain: int | None = None, corruptions: str = "all", severity: int = 5,
           batch_size: int = 64, store: Path = DEFAULT_STORE, study: Path = Path("results/search.sqlite"),
           data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto",
           threads: int | None = None, parallel: int = 4,
           startup_trials: int = typer.Option(10, help="random trials before TPE models the results"),
           dataset: str = DATASET_OPTION,
           weights: str | None = WEIGHTS_OPTION,
           ray_address: str | None = typer.Option(None, envvar="ENTMIN_RAY_ADDRESS",
                                                  help="run trials as tasks on this Ray cluster")) -> None:
    """DEM*: TPE search of (tau, alpha) on a labelled 20% of each target stream (resumable Optuna study);
    reports accuracy on the other 80% for DEM*, EM and AdaDEM. `compare --objectives dem*` then uses it."""
    from .bench.config import RunConfig
    from .bench.store import ResultStore
    from .data.corruptions import CORRUPTIONS
    from .search import search_dem
    from .utils import resolve_device

    _threads(threads)
    try:
        base = RunConfig(method=method, model=model, dataset=dataset, weights=weights, protocol=protocol, lr=lr,
                         n_per_domain=n_per_domain,
                         severity=severity, batch_size=batch_size,
                         corruptions=tuple(CORRUPTIONS) if corruptions == "all" else tuple(_split(corruptions)))
        from .executors import make_executor

        dev = "cpu" if ray_address and device == "auto" else resolve_device(device)
        res = search_dem(base, ResultStore(store), trials=trials, seeds=tuple(int(s) for s in _split(seeds)),
                         constrain=constrain, study_path=study, progress=console.print,
                         run_kwargs={"data_dir": data_dir, "cache_dir": cache_dir, "device": dev},
                         executor=make_executor(ray_address), parallel=parallel,
                         startup_trials=startup_trials)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    print(json.dumps(res, indent=2))


def _report(store, out: Path, hashes: set | None = None) -> None:
    from .bench.report import (
        build_table,
        dem_star_table_markdown,
        plot_class_distribution,
        plot_continual_stream,
        plot_per_corruption,
        table_markdown,
        write_csv,
    )
    from .search import DEM_STAR_KIND

    rows = [r for r in store.cells() if hashes is None or r["config_hash"] in hashes]
    out.mkdir(parents=True, exist_ok=True)
    if hashes is None and _report_training(store, out) and not rows:
        return
    if not rows:
        _fail(f"no results in {store.path}")
    entries = build_table(rows)
    md = table_markdown(entries)
    (out / "table.md").write_text(md)
    write_csv(entries, out / "table.csv")
    for (model, protocol) in sorted({(e["model"], e["protocol"]) for e in entries}):
        es = [e for e in entries if e["model"] == model and e["protocol"] == protocol]
        plot_per_corruption(es, out / f"per_corruption_{model}_{protocol}.png", f"{model}, {protocol}")
        hists = {}
        for e in es:
            if e["method"] in ("source", "tent") or e["objective"] in ("em", "adadem"):
                first = [r for r in rows if r["config_hash"] == e["hash"] and r["position"] == 0]
                if first:
                    hists[f"{e['method']}+{e['objective']}"] = first[0]["metrics"]["pred_hist"]
        if hists:
            dom = es[0]["config"]["corruptions"][0]
            plot_class_distribution(hists, out / f"class_distribution_{model}_{protocol}.png",
                                    f"predicted classes on {dom} ({model}, {protocol})")
    cont = [r for r in rows if r["config"]["protocol"] == "continual"]
    for model in sorted({r["config"]["model"] for r in cont}):
        plot_continual_stream([r for r in cont if r["config"]["model"] == model],
                              out / f"continual_stream_{model}.png", title=f"{model}, continual")
    print(md)
    if stars := store.get_records(DEM_STAR_KIND):
        dem_md = dem_star_table_markdown(stars)
        (out / "dem_star.md").write_text(dem_md)
        print("DEM* (TPE search of tau, alpha on a labelled 20%; accuracy on the other 80%)\n\n" + dem_md)
    console.print(f"tables and plots written to {out}/")


def _report_training(store, out: Path) -> bool:
    """Tables of the `entmin train` records in ``store`` (one per task); True if there were any."""
    from .training.report import training_table_markdown

    found = False
    for task in ("supervised", "semi", "imbalanced"):
        if recs := store.get_records(f"train:{task}"):
            md = training_table_markdown(recs)
            (out / f"train_{task}_table.md").write_text(md)
            print(md)
            found = True
    return found


@app.command()
def report(store: Path = DEFAULT_STORE, out: Path = Path("results")) -> None:
    """Rebuild tables (Markdown, CSV) and plots (PNG) from a results store."""
    from .bench.store import ResultStore

    if not store.is_file():
        _fail(f"results store not found: {store}")
    _report(ResultStore(store), out)


@app.command()
def train(task: str = typer.Option("supervised", help="supervised | semi | imbalanced"),
          losses: str = typer.Option("ce,min_ent,mix_ent,label_smoothing",
                                     help="supervised: ce,min_ent,mix_ent,label_smoothing; semi/imbalanced: "
                                          "supervised,entmin,entmin_adadem,fixmatch,fixmatch_adadem"),
          model: str = "cnn", seeds: str = "1,2,3", steps: int = 1500, lr: float = 0.05,
          labels_per_class: str = "25", imbalance_ratios: str = "10,100", n_train: int | None = None,
          n_test: int | None = typer.Option(None, help="evaluate on the first n test images (default all)"),
          store: Path = Path("results/train.sqlite"), out: Path = Path("results/train"),
          data_dir: str | None = None, device: str = "auto", threads: int | None = None,
          save_checkpoints: bool = typer.Option(True, help="save each trained model under <out>/checkpoints")
          ) -> None:
    """Train with entropy objectives: supervised MIN-ENT/MIX-ENT, semi-supervised EM vs AdaDEM (+FixMatch),
    long-tailed data; several seeds, results in a store (finished runs are skipped), a table and plots."""
    from .bench.store import ResultStore
    from .training.entropy_training import TrainConfig, run_training
    from .training.report import plot_per_class_f1, training_table_markdown
    from .utils import resolve_device

    _threads(threads)
    try:
        dev = resolve_device(device)
        st = ResultStore(store)
        if task == "semi":
            settings = [{"labels_per_class": int(v)} for v in _split(labels_per_class)]
        elif task == "imbalanced":
            settings = [{"imbalance_ratio": float(v)} for v in _split(imbalance_ratios)]
        else:
            settings = [{"n_train": n_train}]
        cfgs = [TrainConfig(task=task, loss=loss, model=model, steps=steps, lr=lr, n_test=n_test, **extra)
                for extra in settings for loss in _split(losses)]
        keys = set()
        for cfg in cfgs:
            for seed in [int(s) for s in _split(seeds)]:
                run_training(cfg, seed, data_dir=data_dir, device=dev, store=st, progress=console.print,
                             checkpoint_dir=out / "checkpoints" if save_checkpoints else None)
                keys.add(f"{cfg.key}|seed={seed}")
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    records = {k: v for k, v in st.get_records(f"train:{task}").items() if k in keys}
    out.mkdir(parents=True, exist_ok=True)
    md = training_table_markdown(records)
    (out / f"{task}_table.md").write_text(md)
    if task != "supervised":
        for setting in settings:
            sel = {k: v for k, v in records.items() if all(v["config"][a] == b for a, b in setting.items())}
            tag = "_".join(f"{a}{b:g}" for a, b in setting.items())
            plot_per_class_f1(sel, out / f"{task}_per_class_f1_{tag}.png", f"{task}, {tag}")
    print(md)


@app.command("estimate-eval")
def estimate_eval(models: str = "cnn,vit", store: Path = Path("results/estimate.sqlite"),
                  out: Path = Path("results/estimate"), probe_size: int = 1000, steps: int = 300, lr: float = 1e-3,
                  severities: str = "1,2,3,4,5", corruptions: str = "all", data_dir: str | None = None,
                  cache_dir: str | None = None, device: str = "auto", threads: int | None = None) -> None:
    """MAE of Weighted Flips and the AC/DoC/ATC/COT baselines over Fashion-MNIST-C (leave-one-corruption-out
    calibration), a scatter plot per model, and the fitted maps (for `entmin estimate`)."""
    from .bench.store import ResultStore
    from .data.cache import FMNISTC
    from .data.corruptions import CORRUPTIONS
    from .estimate.evaluate import (
        FLIP_METHODS,
        collect_records,
        leave_one_corruption_out,
        mae_table_markdown,
        scatter_plot,
    )
    from .estimate.flips import FlipsConfig, PolynomialMap
    from .utils import resolve_device

    _threads(threads)
    try:
        cfg = FlipsConfig(probe_size=probe_size, steps=steps, lr=lr)
        st = ResultStore(store)
        data = FMNISTC(data_dir, cache_dir)
        names = list(CORRUPTIONS) if corruptions == "all" else _split(corruptions)
        sev = tuple(int(v) for v in _split(severities))
        per_model = {}
        out.mkdir(parents=True, exist_ok=True)
        for model in _split(models):
            recs = collect_records(model, st, cfg, data=data, severities=sev, corruptions=tuple(names),
                                   device=resolve_device(device), progress=console.print)
            per_model[model] = leave_one_corruption_out(recs)
            scatter_plot(per_model[model], out / f"scatter_{model}.png", f"{model}: estimated vs true accuracy")
            vals = list(recs.values())
            maps = {name: PolynomialMap(deg).fit([r[stat] for r in vals], [r["accuracy"] for r in vals]).coef.tolist()
                    for name, (stat, deg) in FLIP_METHODS.items()}
            (out / f"maps_{model}.json").write_text(json.dumps(
                {"model": model, "flips_config": cfg.__dict__, "maps": maps,
                 "statistics": {n: s for n, (s, _) in FLIP_METHODS.items()}}, indent=2))
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    md = mae_table_markdown(per_model)
    (out / "mae_table.md").write_text(md)
    print(md)


@app.command()
def estimate(model: str = "cnn", corruption: str = "gaussian_noise", severity: int = 5,
             images: Path | None = typer.Option(None, help=".npy of (N, 32, 32) uint8 or (N, 1, 32, 32) float"),
             maps: Path | None = typer.Option(None, help="maps JSON written by estimate-eval"),
             data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto") -> None:
    """Estimate the source model's accuracy on unlabelled data (Weighted Flips + AC/DoC/ATC baselines)."""
    import numpy as np
    import torch

    from .data.cache import FMNISTC
    from .estimate.baselines import BASELINES
    from .estimate.evaluate import predict_logits
    from .estimate.flips import FlipsConfig, PolynomialMap, measure_flips
    from .models.checkpoints import load_source_model
    from .utils import resolve_device

    try:
        dev = resolve_device(device)
        data = FMNISTC(data_dir, cache_dir)
        if images is not None:
            arr = np.load(images, allow_pickle=False)
            x = torch.from_numpy(arr).float()
            x = x / 255.0 if arr.dtype == np.uint8 else x
            x = x.unsqueeze(1) if x.dim() == 3 else x
            if x.dim() != 4 or x.shape[1:] != (1, 32, 32):
                raise ValueError(f"{images}: expected (N, 32, 32) or (N, 1, 32, 32) images, got {tuple(arr.shape)}")
        else:
            x, _ = data.load(corruption, severity)
        maps_path = maps or Path("results/estimate") / f"maps_{model}.json"
        if not maps_path.is_file():
            raise FileNotFoundError(f"no fitted maps at {maps_path}; run `entmin estimate-eval --models {model}`")
        spec = json.loads(maps_path.read_text())
        cfg = FlipsConfig(**spec["flips_config"])
        src = load_source_model(model).to(dev)
        logits = predict_logits(src, x, dev)
        xi, yi = data.load("clean", 0)
        id_logits = predict_logits(src, xi, dev)
        result = {name: make().fit(id_logits, yi).estimate(logits) for name, make in BASELINES.items()}
        stats = measure_flips(lambda: load_source_model(model), x, cfg, dev)
        for name, coef in spec["maps"].items():
            result[name] = float(PolynomialMap(len(coef) - 1, coef)(stats[spec["statistics"][name]]))
        result.update(stats)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    print(json.dumps(result, indent=2))


@app.command()
def phases(model: str = "cnn", corruption: str = "gaussian_noise", severity: int = 5, steps: int = 600,
           every: int = 20, lr: float = 1e-2, objectives: str = "em,adadem", out: Path = Path("results/phases"),
           data_dir: str | None = None, cache_dir: str | None = None, device: str = "auto") -> None:
    """The two phases of EM (clustering, then collapse): accuracy, distance to source class means and cluster
    quality along a long adaptation run, for EM vs AdaDEM; writes a PNG and a JSON."""
    from .data.cache import FMNISTC
    from .estimate.phases import plot_phases, two_phase_run
    from .models.checkpoints import load_source_model
    from .utils import resolve_device

    try:
        data = FMNISTC(data_dir, cache_dir)
        runs = {o: two_phase_run(lambda: load_source_model(model), data.load("clean", 0), data.load(corruption, severity),
                                 objective=o, steps=steps, every=every, lr=lr, device=resolve_device(device))
                for o in _split(objectives)}
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    out.mkdir(parents=True, exist_ok=True)
    plot_phases(runs, out / f"phases_{model}_{corruption}.png", f"{model}, {corruption}-{severity}, Tent lr {lr}")
    (out / f"phases_{model}_{corruption}.json").write_text(json.dumps(runs, indent=1))
    console.print(f"wrote {out}/phases_{model}_{corruption}.png")


@app.command()
def info() -> None:
    """Versions, device, data location and committed checkpoints."""
    import torch

    from . import __version__
    from .models.checkpoints import CHECKPOINT_DIR

    d = {"entmin": __version__, "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    try:
        from .data.fashion_mnist import find_data_dir

        d["fashion_mnist"] = str(find_data_dir())
    except FileNotFoundError as e:
        d["fashion_mnist"] = f"missing: {e}"
    d["checkpoints"] = {p.name: json.loads(p.read_text()).get("clean_test_accuracy")
                        for p in sorted(CHECKPOINT_DIR.glob("*.json"))}
    from importlib.metadata import PackageNotFoundError, version

    def installed(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    # optional extras: which model specs (timm:/torchvision:), search and cluster backends can be used here
    d["optional"] = {pkg: installed(pkg) for pkg in ("optuna", "ray", "timm", "torchvision")}
    print(json.dumps(d, indent=2))


if __name__ == "__main__":
    app()
