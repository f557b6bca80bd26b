"""Why AdaDEM loses inside the filtering hosts on some models and streams (BENCHMARKS.md sections 22 and 23): the
size of each objective's gradient with respect to the logits, at the source model, split by ETA's entropy selection
(H < 0.4 ln C, the samples ETA and EATA train on, weighted up to e^{0.4 ln C}). EM's gradient vanishes as a
prediction becomes certain; AdaDEM divides each sample's reward gradient by its own size, so a confident sample
keeps a unit-size gradient. A model that is confident on most of a stream therefore gets a larger step from AdaDEM
than from EM exactly on the samples a filtering host keeps. Labels are used only for the accuracy columns.

--anchor prints the other half of AdaDEM instead: its MEC anchor a = bank[k] replaces EM's penalty p, so the
update on a sample's own pseudo-class logit is proportional to r_k - a_k (r = p (z + T + 1), the CADF reward), where
EM's is p_k (z_k + T) >= 0. Where a_k > r_k the update lowers the logit of the class the sample is predicted as.
The bank is run along the stream as AdaDEM runs it (pi = 0.1, updated with each batch before the loss), at the
source model; the table gives the share of samples pushed off their pseudo-class, and how often they were right.

The model sees batches of --batch images as in the hosts: a BatchNorm model normalises with each batch's own
statistics (every host configures it so). Without --mixed a batch holds one corruption (the continual stream);
with --mixed the first --n images of every corruption are shuffled together (the mixed stream).
Usage: python benchmarks/host_gradient_scale.py [--model vit|cnn] [--mixed] [--dataset idx --data-dir DIR
       --weights FILE] [--n 256]"""
import argparse
import math

import torch

from entmin.adapt import use_batch_statistics
from entmin.bench.sources import DataSource
from entmin.data import CORRUPTIONS
from entmin.models.zoo import load_model
from entmin.objectives import AdaDEM, entropy, get_objective


def batch_stats(model: torch.nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    """Logits with BatchNorm layers normalising by each batch's statistics, as every host configures them."""
    use_batch_statistics(model)
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def gradient_sizes(logits: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """Per-sample gradient norm of each objective's loss with respect to the logits."""
    out = {}
    for name in ("em", "adadem"):
        z = logits.clone().requires_grad_(True)
        g, = torch.autograd.grad(get_objective(name, num_classes=k)(z).sum(), z)
        out[name] = g.norm(dim=1)
    return out


def anchor_table(per: dict, order: torch.Tensor, k: int, batch: int) -> None:
    """Run AdaDEM's bank along the stream (``order`` indexes the concatenated logits) and report, per corruption,
    the share of samples whose pseudo-class logit the anchor pushes down (a_k > r_k) and their accuracy."""
    names = list(per)
    logits = torch.cat([per[c][0] for c in names])
    right = torch.cat([per[c][0].argmax(1) == per[c][1] for c in names])
    dom = torch.cat([torch.full((len(per[c][0]),), i) for i, c in enumerate(names)])
    ada, pushed = AdaDEM(k), torch.zeros(len(logits), dtype=torch.bool)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        z = logits[idx]
        ada(z)                                                   # the bank update, before the loss
        p = z.softmax(1)
        pk = p.argmax(1, keepdim=True)
        r = (p * (z - (p * z).sum(1, keepdim=True) + 1.0)).gather(1, pk)
        pushed[idx] = (ada.bank.index_select(0, pk.squeeze(1)).gather(1, pk) > r).squeeze(1)
    print("| corruption | accuracy | share pushed off its pseudo-class (a_k > r_k) | accuracy of those | "
          "accuracy of the others |")
    print("|---|---|---|---|---|")
    for i, c in enumerate([*names, "all"]):
        m = dom == i if c != "all" else torch.ones_like(pushed)
        acc = lambda s: f"{right[s].float().mean():.2f}" if s.any() else "–"
        print(f"| {c} | {acc(m)} | {pushed[m].float().mean():.2f} | {acc(m & pushed)} | {acc(m & ~pushed)} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit", choices=("vit", "cnn"))
    ap.add_argument("--dataset", default="fmnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--n", type=int, default=256, help="images per corruption (the first n)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mixed", action="store_true", help="batches drawn across all corruptions")
    ap.add_argument("--anchor", action="store_true", help="the MEC anchor's table instead of the gradient sizes")
    a = ap.parse_args()
    torch.set_num_threads(1)
    src = DataSource(a.dataset, a.data_dir)
    k = src.num_classes
    model = load_model(a.model, a.weights, num_classes=k).eval()
    e0 = 0.4 * math.log(k)
    data = [src.load(c, 5) for c in CORRUPTIONS]
    groups = {c: (x[:a.n], y[:a.n]) for c, (x, y) in zip(CORRUPTIONS, data)}
    if a.mixed:
        x, y = torch.cat([g[0] for g in groups.values()]), torch.cat([g[1] for g in groups.values()])
        dom = torch.arange(len(CORRUPTIONS)).repeat_interleave(a.n)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        logits = torch.empty(len(x), k)
        logits[perm] = batch_stats(model, x[perm], a.batch)
        per = {c: (logits[dom == i], y[dom == i]) for i, c in enumerate(CORRUPTIONS)}
    else:
        perm = torch.arange(a.n * len(CORRUPTIONS))
        per = {c: (batch_stats(model, x, a.batch), y) for c, (x, y) in groups.items()}
    print(f"{a.dataset} {a.model}, severity 5, first {a.n} images per corruption, batches of {a.batch}"
          f"{' mixed across corruptions' if a.mixed else ' within a corruption'}; ETA's E0 = 0.4 ln {k} = {e0:.2f}")
    if a.anchor:
        anchor_table(per, perm, k, a.batch)
        return
    print("| corruption | accuracy | share selected (H < E0) | accuracy, selected | EM grad, selected | "
          "AdaDEM grad, selected | ratio | EM grad, others | AdaDEM grad, others | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tot = {"sel": [0.0, 0.0, 0, 0], "oth": [0.0, 0.0, 0, 0]}
    for c, (logits, y) in per.items():
        sel, right = entropy(logits) < e0, logits.argmax(1) == y
        norms = gradient_sizes(logits, k)
        row = [c, f"{right.float().mean():.2f}", f"{sel.float().mean():.2f}",
               f"{right[sel].float().mean():.2f}" if sel.any() else "–"]
        for part, m in (("sel", sel), ("oth", ~sel)):
            em, ada = (float(norms[n][m].mean()) if m.any() else float("nan") for n in ("em", "adadem"))
            row += [f"{em:.3f}", f"{ada:.3f}", f"{ada / em:.1f}×" if m.any() else "–"]
            t = tot[part]
            t[0] += float(norms["em"][m].sum())
            t[1] += float(norms["adadem"][m].sum())
            t[2] += int(m.sum())
            t[3] += int(right[m].sum())
        print("| " + " | ".join(row) + " |")
    s, o = tot["sel"], tot["oth"]
    print(f"| all | {(s[3] + o[3]) / (s[2] + o[2]):.2f} | {s[2] / (s[2] + o[2]):.2f} | {s[3] / s[2]:.2f} | "
          f"{s[0] / s[2]:.3f} | {s[1] / s[2]:.3f} | {s[1] / s[0]:.1f}× | "
          f"{o[0] / o[2]:.3f} | {o[1] / o[2]:.3f} | {o[1] / o[0]:.1f}× |")


if __name__ == "__main__":
    main()
