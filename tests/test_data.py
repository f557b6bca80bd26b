"""IDX reader, Fashion-MNIST discovery, corruptions, the checksummed cache, other on-disk formats."""
import gzip
import hashlib
import struct

import numpy as np
import pytest
import torch

from entmin.data import CORRUPTIONS, FMNISTC, IDXError, corrupt, load_cifar10c, load_imagenetc, read_idx
from entmin.data import write_idx as library_write_idx
from entmin.data.fashion_mnist import find_data_dir, load_fashion_mnist


def write_idx(path, arr, *, gz=False, truncate=0, magic=None):
    header = magic if magic is not None else struct.pack(">HBB", 0, 0x08, arr.ndim)
    data = header + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()
    if truncate:
        data = data[:-truncate]
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_idx_roundtrip_and_errors(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", arr)), arr)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx.gz", arr, gz=True)), arr)
    # the library's writer (plain and gzip) is read back by the reader, and equals the hand-written bytes
    for name in ("lib.idx", "lib.idx.gz"):
        assert np.array_equal(read_idx(library_write_idx(tmp_path / name, arr)), arr)
    assert (tmp_path / "lib.idx").read_bytes() == (tmp_path / "a.idx").read_bytes()
    assert (tmp_path / "lib.idx.gz").read_bytes()[:2] == b"\x1f\x8b"          # .gz means gzip-compressed
    with pytest.raises(ValueError, match="uint8"):
        library_write_idx(tmp_path / "f.idx", arr.astype(np.float32))
    with pytest.raises(IDXError, match="truncated"):
        read_idx(write_idx(tmp_path / "t.idx", arr, truncate=5))
    with pytest.raises(IDXError, match="magic"):
        read_idx(write_idx(tmp_path / "m.idx", arr, magic=b"\x12\x34\x08\x03"))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(IDXError, match="gzip"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "short").write_bytes(b"\x00")
    with pytest.raises(IDXError, match="too short"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def test_missing_data_says_how_to_install_or_what_is_missing(tmp_path, monkeypatch):
    import entmin.data.fashion_mnist as fm

    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "DEFAULT_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        find_data_dir()                                   # nothing anywhere: how to install Fashion-MNIST
    with pytest.raises(FileNotFoundError, match="no IDX dataset in .*empty: missing train-images-idx3-ubyte"):
        find_data_dir(tmp_path / "empty")                 # the user's own folder: what is missing there


def test_fake_fashion_mnist_dir_and_label_check(tmp_path):
    imgs = np.zeros((5, 28, 28), np.uint8)
    for a, b in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.values():
        write_idx(tmp_path / a, imgs)
        write_idx(tmp_path / b, np.array([0, 1, 2, 3, 4], np.uint8))
    x, y = load_fashion_mnist("test", tmp_path)
    assert x.shape == (5, 1, 32, 32) and y.tolist() == [0, 1, 2, 3, 4]
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 40], np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_fashion_mnist("test", tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2], np.uint8))
    with pytest.raises(ValueError, match="inconsistent"):
        load_fashion_mnist("test", tmp_path)


def test_real_fashion_mnist(fmnist_test):
    x, y = fmnist_test
    assert x.shape == (10000, 1, 32, 32) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [1000] * 10
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_deterministic_in_range_and_monotone(name, fmnist_test):
    x = fmnist_test[0][:64]
    a, b = corrupt(x, name, 3, seed=1), corrupt(x, name, 3, seed=1)
    assert torch.equal(a, b)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    d1 = (corrupt(x, name, 1, seed=1) - x).abs().mean()
    d5 = (corrupt(x, name, 5, seed=1) - x).abs().mean()
    assert d5 > 0.0
    if name == "elastic_transform":  # CIFAR-10-C constants: severity 1 has the largest affine jitter
        return
    assert d5 >= d1 * 0.9, f"severity 5 should distort at least as much as severity 1 ({d5} vs {d1})"


def test_corruption_errors():
    x = torch.rand(2, 1, 32, 32)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "gaussian", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "fog", 6)
    with pytest.raises(ValueError, match="shape"):
        corrupt(torch.rand(2, 3, 32, 32), "fog", 1)


def test_cache_builds_verifies_and_rebuilds(tmp_path, fmnist_test):
    ds = FMNISTC(cache_dir=tmp_path)
    x, y = ds.load("contrast", 2)
    assert x.shape == (10000, 1, 32, 32) and torch.equal(y, fmnist_test[1])
    p = ds.path("contrast", 2)
    assert ds.is_valid("contrast", 2)
    x_again, _ = ds.load("contrast", 2)
    assert torch.equal(x, x_again)
    arr = np.load(p)
    arr[0, 0, 0] ^= 0xFF  # corrupt one byte on disk
    np.save(p, arr)
    assert not ds.is_valid("contrast", 2)
    x_rebuilt, _ = ds.load("contrast", 2)
    assert torch.equal(x, x_rebuilt) and ds.is_valid("contrast", 2)
    assert ds.checksum_path("contrast", 2).read_text().strip() == hashlib.sha256(p.read_bytes()).hexdigest()
    ds.checksum_path("contrast", 2).write_text("0" * 64)  # a wrong recorded checksum also forces a rebuild
    assert not ds.is_valid("contrast", 2)


def test_cache_builds_in_parallel_workers(tmp_path):
    ds = FMNISTC(cache_dir=tmp_path)
    seen = []
    ds.build_all(["fog", "pixelate"], [1, 5], progress=lambda c, s: seen.append((c, s)), workers=2)
    assert sorted(seen) == [("fog", 1), ("fog", 5), ("pixelate", 1), ("pixelate", 5)]
    serial = FMNISTC(cache_dir=tmp_path / "serial")
    for c, s in seen:  # same bytes as a serial build, so parallel building cannot change any result
        assert ds.is_valid(c, s)
        assert torch.equal(ds.load(c, s)[0], serial.load(c, s)[0])


def test_cifar10c_format(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 255, size=(50, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "fog.npy", imgs)
    np.save(tmp_path / "labels.npy", np.arange(50) % 10)
    x, y = load_cifar10c(tmp_path, "fog", 3)
    assert x.shape == (10, 3, 32, 32)
    assert torch.equal(x[0], torch.from_numpy(imgs[20]).permute(2, 0, 1).float() / 255)
    assert y.tolist() == list(range(10))
    with pytest.raises(FileNotFoundError, match="snow.npy"):
        load_cifar10c(tmp_path, "snow", 1)
    (tmp_path / "frost.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="corrupt"):
        load_cifar10c(tmp_path, "frost", 1)


def test_cifar10c_streams_rows_from_a_memory_map(tmp_path):
    """The runner's CIFAR-10-C domain reads only the rows a batch needs, as uint8 (entmin <= 0.2 copied the whole
    10,000-image severity block and kept it as float32); the images equal load_cifar10c's once made float."""
    import tracemalloc

    from entmin.bench.sources import DataSource

    big = np.lib.format.open_memmap(tmp_path / "fog.npy", mode="w+", dtype=np.uint8, shape=(50_000, 32, 32, 3))
    rng = np.random.default_rng(0)
    big[20_000:20_300] = rng.integers(0, 255, size=(300, 32, 32, 3), dtype=np.uint8)
    big.flush()
    del big
    np.save(tmp_path / "labels.npy", np.arange(50_000) % 10)
    dom = DataSource("cifar10c", tmp_path).domain("fog", 3)
    assert len(dom) == 10_000 and dom.labels[:3].tolist() == [0, 1, 2]
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:256]
    x = torch.cat(list(dom.batches([idx[:64], idx[64:]])))
    assert x.dtype == torch.uint8 and x.shape == (256, 3, 32, 32)
    ref, y = load_cifar10c(tmp_path, "fog", 3, n=300)
    assert torch.equal(x.float() / 255.0, ref[idx]) and torch.equal(dom.labels[idx], y[idx])
    whole, labels = DataSource("cifar10c", tmp_path).load("fog", 3)  # in memory: float like load_cifar10c
    assert whole.dtype == torch.float32 and torch.equal(whole[:300], ref) and torch.equal(labels[:300], y)
    tracemalloc.start()
    dom = DataSource("cifar10c", tmp_path).domain("fog", 3)
    for b in dom.batches(idx.split(64)):
        assert len(b) == 64
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB while streaming 256 of 10,000 images"
    np.save(tmp_path / "snow.npy", np.zeros((50, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):  # float files would be scaled by 1/255 a second time
        load_cifar10c(tmp_path, "snow", 1)


def test_imagenetc_folder_format(tmp_path):
    from PIL import Image

    for ci, cls in enumerate(["n01440764", "n01443537"]):  # wnids: ImageNet classes 0 and 1
        d = tmp_path / "fog" / "5" / cls
        d.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(np.full((230, 240, 3), 40 * ci + k, np.uint8)).save(d / f"{k}.JPEG")
    x, y = load_imagenetc(tmp_path, "fog", 5)
    assert x.shape == (6, 3, 224, 224) and y.tolist() == [0, 0, 0, 1, 1, 1]
    x2, _ = load_imagenetc(tmp_path, "fog", 5, n=4, seed=1)
    assert x2.shape[0] == 4
    with pytest.raises(FileNotFoundError, match="expected"):
        load_imagenetc(tmp_path, "snow", 5)
    (tmp_path / "fog" / "5" / "n01440764" / "bad.JPEG").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot read image"):
        load_imagenetc(tmp_path, "fog", 5)


@pytest.fixture
def fake_imagecorruptions(tmp_path, monkeypatch):
    """An installed `imagecorruptions` as far as entmin can tell: a package folder with frost photos and its
    distribution metadata (the real wheel's __init__ needs an old setuptools; entmin never imports it)."""
    import importlib

    from PIL import Image

    pkg = tmp_path / "site" / "imagecorruptions"
    (pkg / "frost").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('entmin must not import this package')\n")
    rng = np.random.default_rng(0)
    for name in ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg"):
        Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(pkg / "frost" / name)
    meta = tmp_path / "site" / "imagecorruptions-1.1.2.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: imagecorruptions\nVersion: 1.1.2\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    return pkg


def test_frost_uses_the_imagecorruptions_photos_when_installed(fake_imagecorruptions, monkeypatch, tmp_path,
                                                               fmnist_test):
    from entmin.data.corruptions import corruption_code, frost_source

    x = torch.rand(6, 1, 32, 32)
    assert frost_source() == "imagecorruptions-1.1.2"
    photo = corrupt(x, "frost", 3, seed=1)
    assert torch.equal(photo, corrupt(x, "frost", 3, seed=1))  # deterministic
    monkeypatch.setenv("ENTMIN_FROST", "procedural")
    assert frost_source() == "procedural" and corruption_code().endswith("frost-procedural")
    procedural = corrupt(x, "frost", 3, seed=1)
    assert not torch.allclose(photo, procedural)
    # the frost layer is part of the cache key: the two kinds of split never share a folder
    without = FMNISTC(cache_dir=tmp_path).root
    monkeypatch.delenv("ENTMIN_FROST")
    assert corruption_code() == "v1-frost-imagecorruptions-1.1.2"
    assert FMNISTC(cache_dir=tmp_path).root != without


def test_corruption_outputs_are_pinned_to_the_code_version(monkeypatch):
    """Every corruption's output on fixed images at severity 3, against values stored with the code version.
    A change of the corruption code that moves pixels fails here: bump CORRUPTION_VERSION (it keys the cache
    and the results) and re-pin with `python tests/test_data.py`."""
    from entmin.data.corruptions import CORRUPTION_VERSION

    monkeypatch.setenv("ENTMIN_FROST", "procedural")
    pinned = np.load(PINNED)
    assert int(pinned["version"]) == CORRUPTION_VERSION
    for name in CORRUPTIONS:
        out = np.uint8(np.round(corrupt(_pin_images(), name, 3, seed=11).numpy() * 255))
        diff = np.abs(out.astype(int) - pinned[name].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, name  # rounding noise only


PINNED = __import__("pathlib").Path(__file__).parent / "data" / "corruptions_v1.npz"


def _pin_images():
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 1, 32, 32, generator=g) * torch.linspace(0, 1, 32).view(1, 1, 1, 32)


if __name__ == "__main__":  # re-pin the corruption outputs after a deliberate change (and a version bump)
    import os

    from entmin.data.corruptions import CORRUPTION_VERSION

    os.environ["ENTMIN_FROST"] = "procedural"
    arrays = {n: np.uint8(np.round(corrupt(_pin_images(), n, 3, seed=11).numpy() * 255)) for n in CORRUPTIONS}
    np.savez_compressed(PINNED, version=CORRUPTION_VERSION, **arrays)
