"""Data layer: the supernet-train / search-validation split, seeded batches and augmentation,
the file readers (Fashion-MNIST IDX, CIFAR python pickles, image folders) and their errors, and
the CLI's one-line errors for bad data input."""
from __future__ import annotations

import argparse
import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genas.data import DATASETS, Data, load_data, split_train
from genas.data.images import TensorImageSet
from genas.errors import GenasError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def assert_one_line_naming(exc_info, *needles) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg, msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


# --- split -----------------------------------------------------------------------------------------

def test_split_deterministic_disjoint_complete():
    tr, va = split_train(1000, seed=3)
    tr2, va2 = split_train(1000, seed=3)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    assert len(tr) == len(va) == 500
    assert not set(tr.tolist()) & set(va.tolist())
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(1000))
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)  # sorted, no repeats
    assert tr.dtype.kind == "i" and va.dtype.kind == "i"


def test_split_seeds_differ_and_mix():
    tr0, va0 = split_train(1000, seed=0)
    tr1, va1 = split_train(1000, seed=1)
    assert not np.array_equal(va0, va1)
    # a random split, not a contiguous block
    assert va0.min() < 50 and va0.max() > 950
    assert 0.3 < len(set(va0.tolist()) & set(va1.tolist())) / 500 < 0.7


@pytest.mark.parametrize("n, frac, n_val", [(1000, 0.5, 500), (60000, 0.5, 30000), (1000, 0.2, 200), (10, 0.3, 3)])
def test_split_fraction(n, frac, n_val):
    tr, va = split_train(n, seed=0, val_fraction=frac)
    assert len(va) == n_val and len(tr) == n - n_val


@pytest.mark.parametrize("frac", [0.0, 1.0, -0.1, 1.5])
def test_split_bad_fraction(frac):
    with pytest.raises(GenasError) as exc:
        split_train(100, seed=0, val_fraction=frac)
    assert_one_line_naming(exc, frac)


# --- synthetic and Data ----------------------------------------------------------------------------

def test_load_synthetic():
    d = load_data("synthetic")
    assert isinstance(d, Data)
    assert (d.name, d.num_classes, d.in_channels, d.image_size) == ("synthetic", 10, 1, 16)
    assert d.train.x.shape == (640, 1, 16, 16) and d.test.x.shape == (320, 1, 16, 16)
    assert d.train.x.dtype == torch.uint8 and d.train.y.dtype == torch.int64
    assert torch.equal(torch.bincount(d.train.y), torch.full((10,), 64))
    assert len(d.train_idx) == len(d.val_idx) == 320
    x, y = next(d.train.batches(d.train_idx, 32, train=True, seed=0))
    assert x.shape == (32, 1, 16, 16) and x.dtype == torch.float32 and y.shape == (32,)
    # same data twice
    assert torch.equal(load_data("synthetic").train.x, d.train.x)


def test_describe_records_split_seed():
    d = load_data("synthetic", split_seed=17, val_fraction=0.25)
    desc = d.describe()
    fingerprint = desc.pop("fingerprint")
    assert desc == dict(dataset="synthetic", source="named", num_classes=10, in_channels=1, image_size=16,
                        n_supernet_train=480, n_search_val=160, n_test=320, split_seed=17, mean=[0.5], std=[0.25])
    assert len(fingerprint) == 64 and fingerprint == load_data("synthetic").describe()["fingerprint"]
    tr, va = split_train(640, 17, 0.25)
    assert np.array_equal(d.train_idx, tr) and np.array_equal(d.val_idx, va)
    assert not np.array_equal(load_data("synthetic", split_seed=18).val_idx, load_data("synthetic", split_seed=17).val_idx)


def test_synthetic_wrong_image_size():
    with pytest.raises(GenasError) as exc:
        load_data("synthetic", image_size=32)
    assert_one_line_naming(exc, "32")


# --- TensorImageSet batches ------------------------------------------------------------------------

def _image_set(n=50, c=1, h=6, w=6, **kw) -> TensorImageSet:
    """Images with all pixels in 1..255 (zero padding is visible) and label == index."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    kw.setdefault("mean", (0.0,) * c)
    kw.setdefault("std", (1.0,) * c)
    return TensorImageSet(x, torch.arange(n), **kw)


def _raw(x: torch.Tensor) -> torch.Tensor:
    """Undo the /255 scaling of a set with mean 0, std 1."""
    return (x * 255).round().to(torch.uint8)


def _collect(batches):
    xs, ys = zip(*batches)
    return list(xs), list(ys)


def test_eval_batches_preserve_order_and_yield_all():
    s = _image_set(n=50, crop_padding=2, flip=True)
    idx = [7, 3, 49, 0, 12, 5, 5, 30, 8, 1, 44]
    xs, ys = _collect(s.batches(idx, 4, train=False, seed=123))
    assert [len(y) for y in ys] == [4, 4, 3]  # the last partial batch is kept
    assert torch.cat(ys).tolist() == idx
    # no augmentation at eval
    assert torch.equal(torch.cat(xs), s.x[idx].float() / 255)
    xs2, _ = _collect(s.batches(idx, 4, train=False, seed=999))
    assert all(torch.equal(a, b) for a, b in zip(xs, xs2))


def test_normalization_per_channel():
    s = _image_set(n=8, c=3, mean=(0.1, 0.5, 0.9), std=(0.2, 0.3, 0.4))
    (x, _), = list(s.batches(range(8), 8, train=False))
    expected = (s.x.float() / 255 - torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.3, 0.4]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)


def test_train_batches_same_seed_identical_other_seed_differs():
    s = _image_set(n=50, crop_padding=2, flip=True)
    idx = list(range(50))
    a_x, a_y = _collect(s.batches(idx, 8, train=True, seed=5))
    b_x, b_y = _collect(s.batches(idx, 8, train=True, seed=5))
    c_x, c_y = _collect(s.batches(idx, 8, train=True, seed=6))
    assert all(torch.equal(p, q) for p, q in zip(a_x, b_x)) and len(a_x) == len(b_x)
    assert all(torch.equal(p, q) for p, q in zip(a_y, b_y))
    assert torch.cat(a_y).tolist() != torch.cat(c_y).tolist()
    assert torch.cat(a_y).tolist() != sorted(torch.cat(a_y).tolist())  # really shuffled
    # the seed is per call: an intervening call does not change the next one
    torch.manual_seed(12345)
    d_x, _ = _collect(s.batches(idx, 8, train=True, seed=5))
    assert all(torch.equal(p, q) for p, q in zip(a_x, d_x))


def test_drop_last():
    s = _image_set(n=50)
    idx = list(range(50))
    _, ys = _collect(s.batches(idx, 8, train=True, seed=0))  # train drops the partial batch by default
    assert [len(y) for y in ys] == [8] * 6
    assert len(set(torch.cat(ys).tolist())) == 48
    _, ys = _collect(s.batches(idx, 8, train=True, seed=0, drop_last=False))
    assert [len(y) for y in ys] == [8] * 6 + [2]
    assert sorted(torch.cat(ys).tolist()) == idx  # a permutation of the indices
    _, ys = _collect(s.batches(idx, 8, train=False, drop_last=True))
    assert [len(y) for y in ys] == [8] * 6 and torch.cat(ys).tolist() == idx[:48]
    _, ys = _collect(s.batches(idx, 10, train=True, seed=0))  # exact multiple: nothing dropped
    assert [len(y) for y in ys] == [10] * 5


@pytest.mark.parametrize("n", [50, 51])
@pytest.mark.parametrize("train", [True, False])
def test_shards_disjoint_equal(n, train):
    s = _image_set(n=60)
    idx = list(range(3, 3 + n))
    shards = []
    for rank in range(2):
        _, ys = _collect(s.batches(idx, 5, train=train, seed=4, shard=(rank, 2), drop_last=False))
        shards.append(torch.cat(ys).tolist())
    a, b = shards
    assert len(a) == len(b) == n // 2
    assert not set(a) & set(b)
    assert set(a) | set(b) <= set(idx)
    assert len(set(a)) == len(a)
    # with drop_last, both ranks run the same number of batches
    counts = [len(list(s.batches(idx, 4, train=train, seed=4, shard=(r, 2), drop_last=True))) for r in range(2)]
    assert counts[0] == counts[1] == (n // 2) // 4


def test_crop_is_a_real_shift():
    p = 2
    s = _image_set(n=60, c=3, h=7, w=7, crop_padding=p, flip=False)
    xs, ys = _collect(s.batches(range(60), 20, train=True, seed=1))
    shifts = []
    for x, y in zip(torch.cat(xs), torch.cat(ys)):
        assert x.shape == (3, 7, 7) and x.dtype == torch.float32
        orig = s.x[int(y)]
        padded = torch.nn.functional.pad(orig, (p, p, p, p))
        found = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                 if torch.equal(_raw(x), padded[:, dy:dy + 7, dx:dx + 7])]
        assert len(found) == 1, "augmented image is not a zero-padded shift of its source"
        shifts.append(found[0])
    assert len(set(shifts)) >= 10  # offsets vary over the 25 possible
    assert any(sh != (p, p) for sh in shifts)
    # zero padding shows up in shifted images
    assert any((_raw(x) == 0).any() for x in torch.cat(xs))


def test_no_padding_no_flip_leaves_images_unchanged():
    s = _image_set(n=30, c=2, crop_padding=0, flip=False)
    xs, ys = _collect(s.batches(range(30), 7, train=True, seed=3))
    for x, y in zip(torch.cat(xs), torch.cat(ys)):
        assert torch.equal(_raw(x), s.x[int(y)])


def test_flip_only():
    s = _image_set(n=60, crop_padding=0, flip=True)
    xs, ys = _collect(s.batches(range(60), 20, train=True, seed=2))
    flipped = 0
    for x, y in zip(torch.cat(xs), torch.cat(ys)):
        orig = s.x[int(y)]
        if torch.equal(_raw(x), orig):
            continue
        assert torch.equal(_raw(x), orig.flip(-1))
        flipped += 1
    assert 15 < flipped < 45


# --- Fashion-MNIST ---------------------------------------------------------------------------------

@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"Fashion-MNIST not installed at {FASHION_DIR}")
def test_fashion_mnist_real():
    d = load_data("fashion-mnist")
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 28)
    assert d.train.x.shape == (60000, 1, 28, 28) and d.test.x.shape == (10000, 1, 28, 28)
    assert d.train.x.dtype == torch.uint8
    assert len(d.train_idx) == len(d.val_idx) == 30000
    assert torch.equal(torch.bincount(d.train.y), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(d.test.y), torch.full((10,), 1000))
    assert d.describe()["n_test"] == 10000
    d2 = load_data("fashion-mnist", data_dir=str(FASHION_DIR), split_seed=1)
    assert torch.equal(d2.train.x[:100], d.train.x[:100])
    assert not np.array_equal(d2.val_idx, d.val_idx)


def _idx(arr: np.ndarray) -> bytes:
    header = b"\x00\x00\x08" + bytes([arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


FM_NAMES = dict(train_x="train-images-idx3-ubyte", train_y="train-labels-idx1-ubyte",
                test_x="t10k-images-idx3-ubyte", test_y="t10k-labels-idx1-ubyte")


def _fake_fashion(root: Path, n_train=20, n_test=10, gz=True, labels_max=9) -> dict:
    rng = np.random.default_rng(0)
    arrays = dict(train_x=rng.integers(0, 256, (n_train, 28, 28)), train_y=rng.integers(0, labels_max + 1, n_train),
                  test_x=rng.integers(0, 256, (n_test, 28, 28)), test_y=rng.integers(0, labels_max + 1, n_test))
    root.mkdir(parents=True, exist_ok=True)
    for key, stem in FM_NAMES.items():
        data = _idx(arrays[key])
        if gz:
            (root / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz, sub", [(True, ""), (False, ""), (True, "FashionMNIST/raw")])
def test_fashion_mnist_tiny_valid(tmp_path, gz, sub):
    arrays = _fake_fashion(tmp_path / sub if sub else tmp_path, gz=gz)
    d = load_data("fashion-mnist", data_dir=str(tmp_path))
    assert d.train.x.shape == (20, 1, 28, 28) and d.test.x.shape == (10, 1, 28, 28)
    assert np.array_equal(d.train.x[:, 0].numpy(), arrays["train_x"].astype(np.uint8))
    assert d.test.y.tolist() == arrays["test_y"].tolist()
    assert len(d.train_idx) == len(d.val_idx) == 10


def test_fashion_mnist_empty_dir(tmp_path):
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, "train-images-idx3-ubyte")


@pytest.mark.parametrize("key", list(FM_NAMES))
def test_fashion_mnist_missing_one_file(tmp_path, key):
    _fake_fashion(tmp_path)
    (tmp_path / (FM_NAMES[key] + ".gz")).unlink()
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, FM_NAMES[key])


def _corrupt(kind: str, arr: np.ndarray) -> bytes:
    good = _idx(arr)
    if kind == "bad_magic":
        return gzip.compress(b"\x08\x08\x08" + good[3:])
    if kind == "wrong_type":  # signed int32 data type code 0x0C
        return gzip.compress(b"\x00\x00\x0c" + good[3:])
    if kind == "wrong_ndim":
        return gzip.compress(good[:3] + bytes([good[3] + 1]) + good[4:])
    if kind == "truncated_body":
        return gzip.compress(good[:-5])
    if kind == "extra_bytes":
        return gzip.compress(good + b"\x00")
    if kind == "truncated_header":
        return gzip.compress(good[:6])
    if kind == "empty":
        return gzip.compress(b"")
    if kind == "not_gzip":
        return good
    if kind == "truncated_gzip":
        z = gzip.compress(good)
        return z[: len(z) // 2]
    raise AssertionError(kind)


@pytest.mark.parametrize("key", ["train_x", "test_y"])
@pytest.mark.parametrize("kind", ["bad_magic", "wrong_type", "wrong_ndim", "truncated_body", "extra_bytes",
                                  "truncated_header", "empty", "not_gzip", "truncated_gzip"])
def test_fashion_mnist_malformed_idx(tmp_path, kind, key):
    arrays = _fake_fashion(tmp_path)
    path = tmp_path / (FM_NAMES[key] + ".gz")
    path.write_bytes(_corrupt(kind, arrays[key]))
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, path)


def test_fashion_mnist_count_mismatch(tmp_path):
    arrays = _fake_fashion(tmp_path)
    (tmp_path / (FM_NAMES["train_y"] + ".gz")).write_bytes(gzip.compress(_idx(arrays["train_y"][:-1])))
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, "train")


@pytest.mark.parametrize("empty", ["train", "test"])
def test_fashion_mnist_empty_set(tmp_path, empty):
    """Well-formed IDX files that hold zero images are bad input, not a crash."""
    _fake_fashion(tmp_path, **{f"n_{empty}": 0})
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path)


def test_fashion_mnist_labels_out_of_range(tmp_path):
    _fake_fashion(tmp_path, labels_max=12)
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, "labels")


# --- CIFAR ------------------------------------------------------------------------------------------

def _batch(n: int, seed: int, label_key=b"labels", num_classes=10) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"fake batch", label_key: [int(v) for v in rng.integers(0, num_classes, n)],
            b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
            b"filenames": [b"img_%d.png" % i for i in range(n)]}


def _write(path: Path, obj, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _fake_cifar10(root: Path, protocol: int = 2, n=4, n_test=3) -> list[dict]:
    root.mkdir(parents=True, exist_ok=True)
    batches = []
    for i, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        b = _batch(n_test if name == "test_batch" else n, seed=i)
        _write(root / name, b, protocol)
        batches.append(b)
    return batches


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar10_tiny_valid(tmp_path, protocol):
    batches = _fake_cifar10(tmp_path, protocol)
    d = load_data("cifar10", data_dir=str(tmp_path))
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 3, 32)
    assert d.train.x.shape == (20, 3, 32, 32) and d.test.x.shape == (3, 3, 32, 32)
    assert d.train.x.dtype == torch.uint8 and d.train.y.dtype == torch.int64
    expected = np.concatenate([b[b"data"] for b in batches[:5]]).reshape(-1, 3, 32, 32)
    assert np.array_equal(d.train.x.numpy(), expected)
    assert d.train.y.tolist() == sum((b[b"labels"] for b in batches[:5]), [])
    assert d.test.y.tolist() == batches[5][b"labels"]
    assert len(d.train_idx) == len(d.val_idx) == 10


def test_cifar10_official_numpy_core_pickle(tmp_path):
    """The official files (Python 2, numpy 1.x) name numpy.core.multiarray._reconstruct."""
    _fake_cifar10(tmp_path / "cifar-10-batches-py")
    for f in (tmp_path / "cifar-10-batches-py").iterdir():
        raw = f.read_bytes()
        assert b"numpy._core.multiarray" in raw or b"numpy.core.multiarray" in raw
        f.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    d = load_data("cifar10", data_dir=str(tmp_path))  # found in the cifar-10-batches-py subfolder
    assert d.train.x.shape == (20, 3, 32, 32)


def test_cifar100_tiny_valid(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    train = _batch(6, 0, label_key=b"fine_labels", num_classes=100)
    train[b"fine_labels"][0] = 99
    test = _batch(2, 1, label_key=b"fine_labels", num_classes=100)
    _write(root / "train", train)
    _write(root / "test", test)
    d = load_data("cifar100", data_dir=str(tmp_path))
    assert d.num_classes == 100 and d.train.x.shape == (6, 3, 32, 32) and d.test.x.shape == (2, 3, 32, 32)
    assert d.train.y.tolist() == train[b"fine_labels"]


def test_cifar_needs_data_dir():
    for name in ("cifar10", "cifar100"):
        with pytest.raises(GenasError) as exc:
            load_data(name)
        assert_one_line_naming(exc, name, "--data-dir")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_empty_dir(tmp_path, name):
    with pytest.raises(GenasError) as exc:
        load_data(name, data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path)


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


class _EvilEval:
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return eval, (self.code,)


@pytest.mark.parametrize("variant", ["reduce_system", "nested_system", "reference", "eval"])
def test_cifar_pickle_with_forbidden_global_is_refused(tmp_path, variant):
    _fake_cifar10(tmp_path)
    marker = tmp_path / "PWNED"
    cmd = f"touch {marker}"
    if variant == "reduce_system":
        obj = _Evil(cmd)
    elif variant == "nested_system":
        obj = _batch(4, 0)
        obj[b"labels"] = _Evil(cmd)
    elif variant == "reference":
        obj = {b"data": os.system, b"labels": []}
    else:
        obj = _EvilEval(f"__import__('os').system({cmd!r})")
    target = tmp_path / "data_batch_3"
    _write(target, obj)
    with pytest.raises(GenasError) as exc:
        load_data("cifar10", data_dir=str(tmp_path))
    assert_one_line_naming(exc, target)
    assert not marker.exists(), "the forbidden code ran"


@pytest.mark.parametrize("kind", ["garbage", "truncated", "no_labels", "count_mismatch", "bad_size", "not_dict"])
def test_cifar_malformed_batch(tmp_path, kind):
    _fake_cifar10(tmp_path)
    target = tmp_path / "test_batch"
    if kind == "garbage":
        target.write_bytes(b"this is not a pickle at all")
    elif kind == "truncated":
        target.write_bytes(target.read_bytes()[:100])
    elif kind == "no_labels":
        b = _batch(3, 0)
        del b[b"labels"]
        _write(target, b)
    elif kind == "count_mismatch":
        b = _batch(3, 0)
        b[b"labels"] = b[b"labels"][:2]
        _write(target, b)
    elif kind == "bad_size":
        b = _batch(3, 0)
        b[b"data"] = b[b"data"][:, :3000]
        _write(target, b)
    else:
        _write(target, [1, 2, 3])
    with pytest.raises(GenasError) as exc:
        load_data("cifar10", data_dir=str(tmp_path))
    assert_one_line_naming(exc, target)


def test_cifar_empty_test_batch(tmp_path):
    _fake_cifar10(tmp_path, protocol=4, n_test=0)
    with pytest.raises(GenasError) as exc:
        load_data("cifar10", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path)


def test_cifar_labels_out_of_range(tmp_path):
    _fake_cifar10(tmp_path)
    b = _batch(4, 0)
    b[b"labels"][1] = 10
    _write(tmp_path / "data_batch_2", b)
    with pytest.raises(GenasError) as exc:
        load_data("cifar10", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, "labels")


# --- image folders, names, paths --------------------------------------------------------------------

def test_imagefolder_without_train(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    with pytest.raises(GenasError) as exc:
        load_data("imagefolder", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path, "train/")


def test_imagefolder_without_val(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(GenasError) as exc:
        load_data("imagefolder", data_dir=str(tmp_path))
    assert_one_line_naming(exc, tmp_path)


def test_imagefolder_needs_data_dir():
    with pytest.raises(GenasError) as exc:
        load_data("imagefolder")
    assert_one_line_naming(exc, "--data-dir")


def test_imagefolder_tiny_valid(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pytest.importorskip("torchvision")
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(
                    tmp_path / split / cls / f"{i}.png")
    d = load_data("imagefolder", data_dir=str(tmp_path), image_size=8, workers=0)
    assert (d.num_classes, d.in_channels, d.image_size) == (2, 3, 8)
    assert len(d.train) == 6 and len(d.test) == 4 and len(d.train_idx) == len(d.val_idx) == 3
    (x, y), = list(d.test.batches(range(4), 4, train=False))
    assert x.shape == (4, 3, 8, 8) and y.tolist() == [0, 0, 1, 1]


def test_imagefolder_class_mismatch(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pytest.importorskip("torchvision")
    for split, cls in (("train", "a"), ("train", "b"), ("val", "a"), ("val", "c")):
        (tmp_path / split / cls).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / split / cls / "0.png")
    with pytest.raises(GenasError) as exc:
        load_data("imagefolder", data_dir=str(tmp_path), image_size=4, workers=0)
    assert_one_line_naming(exc, tmp_path)


def test_unknown_dataset_lists_names():
    with pytest.raises(GenasError) as exc:
        load_data("imagenet-22k")
    assert_one_line_naming(exc, "imagenet-22k", *DATASETS)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "imagefolder", "synthetic"])
def test_nonexistent_data_dir(tmp_path, name):
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(GenasError) as exc:
        load_data(name, data_dir=str(missing))
    assert_one_line_naming(exc, missing)


def test_data_dir_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(GenasError) as exc:
        load_data("fashion-mnist", data_dir=str(f))
    assert_one_line_naming(exc, f)


# --- CLI bad input ----------------------------------------------------------------------------------

def _genas(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genas", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def _assert_cli_error(out, *needles):
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    lines = out.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("genas: error:"), out.stderr
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])


def test_cli_fashion_mnist_empty_data_dir(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    out = _genas("train-supernet", "-o", str(run), "--dataset", "fashion-mnist", "--data-dir", str(empty),
                 "--no-progress", cwd=tmp_path)
    _assert_cli_error(out, empty)
    # a failed start leaves no config behind that would block the corrected rerun
    assert not (run / "config.json").exists()


def test_cli_unknown_dataset(tmp_path):
    out = _genas("train-supernet", "-o", str(tmp_path / "run"), "--dataset", "nope", "--no-progress",
                 cwd=tmp_path)
    _assert_cli_error(out, "nope", "fashion-mnist")


def test_cli_help(tmp_path):
    from genas.cli import build_parser

    top = _genas("--help", cwd=tmp_path)
    assert top.returncode == 0 and "train-supernet" in top.stdout
    sub = _genas("train-supernet", "--help", cwd=tmp_path)
    assert sub.returncode == 0
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert subparsers and "train-supernet" in subparsers[0].choices
    n_options = 0
    for name, p in subparsers[0].choices.items():
        text = p.format_help()
        for action in p._actions:
            assert action.help and action.help.strip(), f"{name}: {action.option_strings} has no help"
            for opt in action.option_strings:
                assert opt in text, (name, opt)
                if opt.startswith("--"):
                    n_options += 1
                if name == "train-supernet":
                    assert opt in sub.stdout, opt
    assert n_options >= 25
    # top level: every option and every command has a help string
    for action in parser._actions:
        if action.option_strings:
            assert action.help and action.help.strip(), action.option_strings
    for choice in subparsers[0]._choices_actions:
        assert choice.help and choice.help.strip(), choice.dest
        assert choice.dest in top.stdout
