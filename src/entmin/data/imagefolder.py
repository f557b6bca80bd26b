"""ImageNet-style folders (ImageNet-C ``<root>/<corruption>/<severity>/<wnid>/*.JPEG``, ImageNet-R/-A, your own):
an index of the files, labels from class identities, images decoded only when a stream needs them.

* Labels come from what a folder *is*, not where it sorts: a folder named by a WordNet id gets that id's
  position among the 1,000 ImageNet-1k classes (shipped in ``data/imagenet/imagenet1k.tsv``), whatever other
  folders are present (entmin 0.1 numbered the folders present, so any class subset read 0% accuracy). Folders
  that are not wnids are refused unless a class list names them.
* ``classes="imagenet-r"`` / ``"imagenet-a"`` (or a file of wnids) restricts the 1,000-way head to those
  classes (the standard output mask of those benchmarks): labels are positions in the list, and
  :func:`head_indices` gives the columns of the 1,000 logits to keep.
* Decoding: PIL, in DataLoader workers, one batch at a time; the images stay uint8 until the batch is formed,
  so memory does not depend on the size of a split. Images whose shorter side is the crop size (ImageNet-C's
  224 x 224) are centre-cropped only; larger ones are resized to 256 (shorter side) and centre-cropped to 224,
  as the hosts' ImageNet code does.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError
from .fingerprint import folder_fingerprint

__all__ = ["IMAGE_EXTENSIONS", "ClassList", "FolderDomain", "class_list", "decode_image", "imagenet_classes"]

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
NAMED_LISTS = ("imagenet", "imagenet-r", "imagenet-a")


@dataclass(frozen=True)
class ClassList:
    """Classes in label order (``ids``: folder names, ``names``: readable); ``head``: for each class its column
    of a 1,000-way ImageNet head, or None when labels index the model's outputs directly."""

    ids: tuple[str, ...]
    names: tuple[str, ...]
    head: tuple[int, ...] | None = None

    @property
    def label_of(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> ClassList:
    """The 1,000 ImageNet-1k classes in their standard order (sorted WordNet ids), with their lemmas."""
    text = resources.files("entmin.data").joinpath("imagenet/imagenet1k.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return ClassList(tuple(r[0] for r in rows), tuple(r[1] for r in rows))


def class_list(spec: str | Path | None = None) -> ClassList:
    """``None``/``"imagenet"``: the 1,000 classes; ``"imagenet-r"``/``"imagenet-a"``: their 200 classes with the
    1,000-way head mask; a file: one class per line (a wnid maps to its 1,000-way column, so a subset of ImageNet
    is masked; any other name is a class of its own, indexed by line)."""
    full = imagenet_classes()
    if spec in (None, "imagenet"):
        return full
    if spec in ("imagenet-r", "imagenet-a"):
        text = resources.files("entmin.data").joinpath(f"imagenet/{str(spec).replace('-', '_')}.txt").read_text()
        ids = [w for w in text.split() if not w.startswith("#") and w.startswith("n")]
    else:
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"class list {spec!r} is neither one of {list(NAMED_LISTS)} nor a file")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if len(set(ids)) != len(ids):
            raise UsageError(f"class list {path} names a class twice")
    col = full.label_of
    names = dict(zip(full.ids, full.names))
    if all(c in col for c in ids):
        return ClassList(tuple(ids), tuple(names[c] for c in ids), tuple(col[c] for c in ids))
    return ClassList(tuple(ids), tuple(ids), None)


def decode_image(path: str | Path, crop: int = 224, resize: int = 256) -> np.ndarray:
    """One RGB image as uint8 (3, crop, crop): centre crop, after resizing the shorter side to ``resize`` when it
    is not already ``crop``."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format == "JPEG" and min(im.size) > 2 * resize:
                im.draft("RGB", (resize, resize))  # let libjpeg decode at a fraction of the size: much faster
            im = im.convert("RGB")
            w, h = im.size
            if min(w, h) != crop:
                s = resize / min(w, h)
                im = im.resize((max(crop, round(w * s)), max(crop, round(h * s))), Image.BILINEAR)
                w, h = im.size
            if min(w, h) < crop:
                raise DataError(f"image {path} is {w} x {h}, smaller than the {crop}-pixel crop")
            left, top = (w - crop) // 2, (h - crop) // 2
            arr = np.asarray(im.crop((left, top, left + crop, top + crop)), dtype=np.uint8)
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class _Decode(torch.utils.data.Dataset):
    def __init__(self, files: Sequence[str], crop: int, resize: int) -> None:
        self.files, self.crop, self.resize = files, crop, resize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        return decode_image(self.files[i], self.crop, self.resize)


def _stack(items: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(items))


class FolderDomain:
    """One domain of an image-folder dataset (``<folder>/<class>/<image>``), indexed but not decoded."""

    def __init__(self, folder: str | Path, classes: ClassList | None = None, *, crop: int = 224, resize: int = 256,
                 workers: int | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.folder} (expected <root>/<corruption>/"
                                    "<severity>/<class>/*.JPEG)")
        self.classes = classes or imagenet_classes()
        self.crop, self.resize = crop, resize
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        label_of = self.classes.label_of
        files, labels, unknown = [], [], []
        for d in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if not d.is_dir():
                continue
            if d.name not in label_of:
                unknown.append(d.name)
                continue
            for f in sorted(os.scandir(d.path), key=lambda e: e.name):
                if f.name.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(f.path)
                    labels.append(label_of[d.name])
        if unknown:
            hint = ("they are not ImageNet WordNet ids; pass a class list naming them (--class-list FILE)"
                    if len(self.classes) == 1000 else "they are not in the class list")
            raise DataError(f"{self.folder}: class folders {unknown[:3]}{' ...' if len(unknown) > 3 else ''} "
                            f"cannot be labelled: {hint}")
        if not files:
            raise DataError(f"{self.folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders")
        self.files = files
        self.labels = torch.tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        return folder_fingerprint(self.folder, [Path(f) for f in self.files])

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """uint8 (len(idx), 3, crop, crop), decoded here."""
        return _stack([decode_image(self.files[int(i)], self.crop, self.resize) for i in idx])

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """uint8 batches, decoded ahead by ``workers`` DataLoader processes (2 batches each in flight)."""
        if self.workers == 0:
            for idx in index_batches:
                yield self.images(idx)
            return
        loader = torch.utils.data.DataLoader(
            _Decode(self.files, self.crop, self.resize), batch_sampler=[[int(i) for i in b] for b in index_batches],
            num_workers=self.workers, collate_fn=_stack, prefetch_factor=2, persistent_workers=False)
        yield from loader
