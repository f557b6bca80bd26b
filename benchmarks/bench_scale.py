"""Scale: per-step time and peak memory of every host x {EM, AdaDEM} on ResNet-50 (torchvision, BatchNorm) and
ViT-B/16 (timm, LayerNorm) at 224 px, next to the official code on the same weights and inputs, predictions
compared step by step; and the opt-in speed options (bf16 autocast, channels-last, torch.compile).

Every measurement runs in a fresh process (its peak RSS is its own), one thread, interleaved: entmin, then the
official code, per configuration. Weights are random (no ImageNet weights offline) with the head scaled up so
that predictions are confident and every host's filters keep samples (a host that selects nothing skips its
backward pass and would time as inference). The official files go in $ENTMIN_OFFICIAL_DIR (see
benchmarks/side_by_side.py); without them only entmin is measured.

    python benchmarks/bench_scale.py --model resnet50 --batch 16 --out results/scale.jsonl
    python benchmarks/bench_scale.py --model vit_b16 --batch 64 --steps 1 --out results/scale.jsonl
    python benchmarks/bench_scale.py --table results/scale.jsonl     # Markdown for BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import types

HOSTS = ("tent", "eta", "eata", "sar", "deyo")
LR = {"resnet50": 2.5e-4, "vit_b16": 1e-3}


def build(model_name: str):
    import torch

    from entmin.models.zoo import add_input_normalization, import_vision_library

    torch.manual_seed(0)
    if model_name == "resnet50":
        m = import_vision_library("torchvision").models.get_model("resnet50", weights=None)
        head, mean, std = m.fc, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    else:
        m = import_vision_library("timm").create_model("vit_base_patch16_224", pretrained=False)
        head, mean, std = m.head, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    with torch.no_grad():
        head.weight.mul_(60.0)  # confident predictions: the hosts' filters keep samples
    return add_input_normalization(m, mean, std).eval()


def official_adapter(host: str, model, model_name: str, fisher_batches, d_margin: float = 0.05):
    import torch

    from entmin.adapt.eata import compute_fisher
    from entmin.models.zoo import import_vision_library

    import_vision_library("torchvision")  # official DeYO imports torchvision: through entmin's CPU shim
    sys.path.insert(0, os.environ.get("ENTMIN_OFFICIAL_DIR", "official"))
    lr, e0 = LR[model_name], 0.4 * math.log(1000)
    if host == "tent":
        import tent_official as t

        m = t.configure_model(model)
        return t.Tent(m, torch.optim.SGD(t.collect_params(m)[0], lr, momentum=0.9))
    if host in ("eta", "eata"):
        import eata_official as t

        m = t.configure_model(model)
        fishers = None
        if host == "eata":
            named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
            f = compute_fisher(m, named, fisher_batches, torch.device("cpu"))
            fishers = {n: [f[n], p.detach().clone()] for n, p in named}
        return t.EATA(m, torch.optim.SGD(t.collect_params(m)[0], lr, momentum=0.9), fishers, 2000.0, e_margin=e0,
                      d_margin=d_margin)
    if host == "sar":
        import sar_official as t
        from sam import SAM

        m = t.configure_model(model)
        return t.SAR(m, SAM(t.collect_params(m)[0], torch.optim.SGD, lr=lr, momentum=0.9), margin_e0=e0)
    import deyo_official as t

    m = t.configure_model(model)
    args = types.SimpleNamespace(wandb_log=False, filter_ent=True, filter_plpd=True, plpd_threshold=0.2,
                                 aug_type="patch", patch_len=4, reweight_ent=True, reweight_plpd=True)
    a = t.DeYO(m, args, torch.optim.SGD(t.collect_params(m)[0], lr, momentum=0.9))
    return lambda x: a(x, 0)[0]


def child(spec: dict) -> dict:
    import torch

    from entmin.adapt import make_adapter

    torch.set_num_threads(1)
    dev = torch.device(spec.get("device", "cpu"))
    g = torch.Generator().manual_seed(1)
    xs = [torch.rand(spec["batch"], 3, 224, 224, generator=g).to(dev) for _ in range(spec["steps"] + 1)]
    fisher = [torch.rand(8, 3, 224, 224, generator=g).to(dev) for _ in range(2)]
    model = build(spec["model"]).to(dev)
    opts = spec.get("options", {})
    if spec["impl"] == "inference":
        ad = make_adapter("source", model, **opts)
    elif spec["impl"] == "official":
        ad = official_adapter(spec["host"], model, spec["model"], fisher, spec.get("d_margin", 0.05))
        torch.manual_seed(1)
    else:
        kw = {"optimizer": {"lr": LR[spec["model"]]}, "seed": 1, **opts}
        if spec["host"] in ("eta", "eata"):
            kw["d_margin"] = spec.get("d_margin", 0.05)  # 0.05: the official constant at C = 1000
        if spec["host"] == "eata":
            kw["fisher_loader"] = fisher
        ad = make_adapter(spec["host"], model, spec["objective"], **kw)
    times, preds, selected = [], [], []
    for i, x in enumerate(xs):
        t0 = time.perf_counter()
        out = ad(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i:  # the first step warms up (allocations, oneDNN primitives, compilation)
            times.append(dt)
        preds.append(out.argmax(1).tolist())
        selected.append(getattr(ad, "last_step", {}).get("selected") if hasattr(ad, "last_step") else None)
    peak_gpu = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
    return {**spec, "step_s": sum(times) / len(times), "step_times": times, "preds": preds, "selected": selected,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "peak_gpu_gb": peak_gpu,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                         check=False)
    if out.returncode:
        return {**spec, "error": out.stderr.strip().splitlines()[-1][:300] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--model", choices=sorted(LR))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--hosts", default=",".join(HOSTS))
    ap.add_argument("--objectives", default="em,adadem")
    ap.add_argument("--speed", default="", help="comma list of speed options measured with Tent+EM: "
                                                 "bf16,fp16,channels_last,compile (fp16: for a GPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (peak GPU memory is recorded too)")
    ap.add_argument("--out")
    ap.add_argument("--table")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return
    if a.table:
        with open(a.table) as f:
            print(table([json.loads(line) for line in f]))
        return
    official = os.path.isdir(os.environ.get("ENTMIN_OFFICIAL_DIR", "official"))
    base = {"model": a.model, "batch": a.batch, "steps": a.steps, "device": a.device, "code": code_digest()}
    jobs = [{**base, "impl": "inference", "host": "source", "objective": "-"}]
    for host in a.hosts.split(","):
        # ETA/EATA: the redundancy filter off (d_margin 2 > any |cosine|), for entmin and the official code
        # alike. A random-weights model predicts nearly one class, so with the official 0.05 every batch after
        # the first is "redundant" and the step times as inference (the filter's cosine is still computed).
        extra = {"d_margin": 2.0} if host in ("eta", "eata") else {}
        for obj in a.objectives.split(","):
            jobs.append({**base, **extra, "impl": "entmin", "host": host, "objective": obj})
            if obj == "em" and official and not (a.model == "vit_b16" and host in ("tent", "eta", "eata")):
                jobs.append({**base, **extra, "impl": "official", "host": host, "objective": "em"})
    speed = {"bf16": {"precision": "bf16"}, "fp16": {"precision": "fp16"}, "channels_last": {"channels_last": True},
             "compile": {"compile": True}}
    for name in filter(None, a.speed.split(",")):
        jobs.append({**base, "impl": "entmin", "host": "tent", "objective": "em", "variant": name,
                     "options": speed[name]})
    done = set()
    if a.out and os.path.exists(a.out):  # resumable: a rerun skips the measurements already in --out
        with open(a.out) as f:
            done = {_spec_key(r) for r in map(json.loads, f) if "error" not in r}
    for spec in jobs:
        if _spec_key(spec) in done:
            continue
        r = run_child(spec)
        with open(a.out, "a") as f:
            f.write(json.dumps(r) + "\n")
        print({k: r.get(k) for k in ("model", "batch", "impl", "host", "objective", "variant", "step_s",
                                      "peak_rss_gb", "error")}, flush=True)


def code_digest() -> str:
    """What produced a measurement: entmin's sources, this script, the official files and torch's version. A
    resumed run skips only measurements with the same digest (other code is measured again)."""
    import hashlib
    from pathlib import Path

    import torch

    import entmin
    from entmin.data.fingerprint import file_sha256

    official = Path(os.environ.get("ENTMIN_OFFICIAL_DIR", "official"))
    files = sorted(Path(entmin.__file__).parent.rglob("*.py")) + [Path(__file__).resolve()]
    files += sorted(official.glob("*.py")) if official.is_dir() else []
    h = hashlib.sha256(torch.__version__.encode())
    for f in files:
        h.update(f"{f.name}:{file_sha256(f)}".encode())
    return h.hexdigest()[:16]


def _spec_key(r: dict) -> tuple:
    return tuple(str(r.get(k)) for k in ("model", "batch", "steps", "device", "impl", "host", "objective", "variant",
                                         "d_margin", "code"))


def table(rows: list[dict]) -> str:
    """Markdown: one row per (model, batch, host, objective, option); images/s; the official code's time and
    agreement where measured (a speed option's row is compared with the official fp32 step of its host, and
    with entmin's own fp32 step)."""
    key = lambda r: (r["model"], r["batch"], r["host"], r["objective"], r.get("variant"))
    ours = {key(r): r for r in rows if r["impl"] in ("entmin", "inference") and "error" not in r}
    off = {key(r): r for r in rows if r["impl"] == "official" and "error" not in r}

    def agree(a: dict, b: dict) -> str:
        n = sum(len(p) for p in a["preds"])
        return f"{sum(x == y for p, q in zip(a['preds'], b['preds']) for x, y in zip(p, q))}/{n}"

    def kept(r: dict) -> str:  # samples the host's filters kept per timed step (a step keeping none skips backward)
        sel = [s for s in r["selected"][1:] if s is not None]
        return "/".join(str(s) for s in sel) if sel else ""

    lines = [("| model | batch | host | objective | option | s / step | images / s | kept / step | peak RSS (GB) | "
              "x entmin fp32 | official s / step | entmin / official | same predictions as official |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in sorted(ours, key=lambda k: (k[0], k[1], (["source", *HOSTS].index(k[2])), k[3], k[4] or "")):
        r = ours[k]
        base = ours.get(k[:4] + (None,)) if k[4] else None
        o = off.get((k[0], k[1], k[2], "em", None)) if k[3] == "em" else None
        cells = [k[0], str(k[1]), k[2], k[3], k[4] or "-", f"{r['step_s']:.2f}", f"{k[1] / r['step_s']:.1f}", kept(r),
                 f"{r['peak_rss_gb']:.2f}", f"{r['step_s'] / base['step_s']:.2f}" if base else "",
                 f"{o['step_s']:.2f}" if o else "", f"{r['step_s'] / o['step_s']:.2f}" if o else "",
                 agree(r, o) if o else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
