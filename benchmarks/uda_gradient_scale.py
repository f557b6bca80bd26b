"""Why MinEnt+AdaDEM trails MinEnt at the same lambda (BENCHMARKS.md section 16): the size and the placement of
each objective's gradient with respect to the segmenter's logits, at the committed source model, on one batch of
unlabelled target scenes (train split, no labels used). Usage: python benchmarks/uda_gradient_scale.py [target]"""
import math
import sys

import torch

from entmin.cli.seg import _scene_args
from entmin.objectives import get_objective
from entmin.seg import SceneData
from entmin.seg.scenes import BACKGROUND, NUM_SEG_CLASSES
from entmin.seg.train import load_seg_model


def main(target: str = "snow") -> None:
    torch.set_num_threads(1)
    model, meta = load_seg_model(None)
    x, _ = SceneData(None, None, **_scene_args(meta)).split(target, "train")
    model.train()                                   # as in UDA training: BatchNorm on the batch
    with torch.no_grad():
        logits = model(x[:16])
    pred = logits.argmax(1).flatten()
    print(f"target {target}: {int((pred == BACKGROUND).sum())} of {pred.numel()} pixels predicted background")
    for name in ("em", "adadem"):
        z = logits.clone().requires_grad_(True)
        loss = get_objective(name, num_classes=NUM_SEG_CLASSES)(z).mean() / math.log(NUM_SEG_CLASSES)
        g, = torch.autograd.grad(loss, z)
        per_pixel = g.norm(dim=1).flatten() ** 2
        print(f"{name:7s} gradient norm {g.norm():.3e}; share on background-predicted pixels "
              f"{per_pixel[pred == BACKGROUND].sum() / per_pixel.sum():.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
