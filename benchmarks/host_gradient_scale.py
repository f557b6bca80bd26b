"""Why AdaDEM loses inside the filtering hosts on some models (BENCHMARKS.md section 22): the size of each objective's
gradient with respect to the logits, at the source model, split by ETA's entropy selection (H < 0.4 ln C, the
samples ETA and EATA train on, weighted up to e^{0.4 ln C}). EM's gradient vanishes as a prediction becomes
certain; AdaDEM divides each sample's reward gradient by its own size, so a confident sample keeps a unit-size
gradient. A model that is confident on most of a stream therefore gets a larger step from AdaDEM than from EM
exactly on the samples a filtering host keeps. No labels are used.
Usage: python benchmarks/host_gradient_scale.py [--dataset idx --data-dir DIR --weights FILE] [--n 512]"""
import argparse
import math

import torch

from entmin.bench.sources import DataSource
from entmin.data import CORRUPTIONS
from entmin.models.zoo import load_model
from entmin.objectives import entropy, get_objective


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fmnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n", type=int, default=512, help="images per corruption (the first n)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    src = DataSource(a.dataset, a.data_dir)
    k = src.num_classes
    model = load_model("vit", a.weights, num_classes=k)
    e0 = 0.4 * math.log(k)
    print(f"{a.dataset} ViT, severity 5, first {a.n} images per corruption; ETA's E0 = 0.4 ln {k} = {e0:.2f}")
    print("| corruption | share selected (H < E0) | EM grad, selected | AdaDEM grad, selected | ratio | "
          "EM grad, others | AdaDEM grad, others | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    tot = {"sel": [0.0, 0.0, 0], "oth": [0.0, 0.0, 0]}
    for c in CORRUPTIONS:
        x, _ = src.load(c, 5)
        with torch.no_grad():
            logits = model(x[:a.n])
        sel = entropy(logits) < e0
        norms = {}
        for name in ("em", "adadem"):
            z = logits.clone().requires_grad_(True)
            g, = torch.autograd.grad(get_objective(name, num_classes=k)(z).sum(), z)
            norms[name] = g.norm(dim=1)                          # per-sample gradient size w.r.t. the logits
        row = [c, f"{sel.float().mean():.2f}"]
        for part, m in (("sel", sel), ("oth", ~sel)):
            em, ada = (float(norms[n][m].mean()) if m.any() else float("nan") for n in ("em", "adadem"))
            row += [f"{em:.3f}", f"{ada:.3f}", f"{ada / em:.1f}×" if m.any() else "–"]
            tot[part][0] += float(norms["em"][m].sum())
            tot[part][1] += float(norms["adadem"][m].sum())
            tot[part][2] += int(m.sum())
        print("| " + " | ".join(row) + " |")
    s, o = tot["sel"], tot["oth"]
    print(f"| all | {s[2] / (s[2] + o[2]):.2f} | {s[0] / s[2]:.3f} | {s[1] / s[2]:.3f} | {s[1] / s[0]:.1f}× | "
          f"{o[0] / o[2]:.3f} | {o[1] / o[2]:.3f} | {o[1] / o[0]:.1f}× |")


if __name__ == "__main__":
    main()
