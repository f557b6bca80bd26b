"""Decode throughput of the ImageNet-style folder loader: images per second with 0, 1, 2 DataLoader workers, on
ImageNet-C-like files (224 x 224 JPEG, quality 85, photo content with noise) and on ImageNet-val-like files
(500 x 375 JPEG, resized to 256 and centre-cropped to 224). Usage: python benchmarks/bench_decode.py [N]"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from entmin.data.imagefolder import FolderDomain, imagenet_classes

PHOTO = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos" / "coffee.jpg"


def make(root: Path, n: int, size: tuple[int, int]) -> Path:
    base = np.asarray(Image.open(PHOTO).convert("RGB").resize(size), dtype=np.float32)
    rng = np.random.default_rng(0)
    wnids = imagenet_classes().ids
    for i in range(n):
        d = root / wnids[i % 100]
        d.mkdir(parents=True, exist_ok=True)
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i}.JPEG", quality=85)
    return root


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("ImageNet-C-like 224x224", (224, 224)), ("val-like 500x375", (500, 375))):
            root = make(Path(tmp) / name.split()[0], n, size)
            for workers in (0, 1, 2):
                dom = FolderDomain(root, workers=workers)
                idx = torch.randperm(len(dom), generator=torch.Generator().manual_seed(0))
                batches = [idx[i:i + 64] for i in range(0, len(idx), 64)]
                t0 = time.perf_counter()
                count = sum(len(x) for x in dom.batches(batches))
                dt = time.perf_counter() - t0
                print(f"| {name} | {workers} | {count} | {count / dt:.0f} |", flush=True)


if __name__ == "__main__":
    main()
