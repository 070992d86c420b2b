"""Read datasets from local files into uint8 tensors (no downloads, no unrestricted unpickling)."""
from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import GenasError

FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),
                      Path.home() / ".cache" / "genas" / "fashion-mnist")
FASHION_MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
FASHION_MNIST_FIX = ("install it with `apt-get install dataset-fashion-mnist` (Debian), run `make setup`, "
                     "or pass --data-dir")


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Parse an IDX (MNIST-format) file, gzipped or not, checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise GenasError(f"cannot read {path}: {exc}") from None
    if len(raw) < 4 + 4 * expected_dims or raw[0:3] != b"\x00\x00\x08" or raw[3] != expected_dims:
        raise GenasError(f"malformed IDX file {path}: bad header (expected unsigned-byte, {expected_dims}-D)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_dims)]
    body = raw[4 + 4 * expected_dims:]
    if len(body) != int(np.prod(dims)):
        raise GenasError(f"malformed IDX file {path}: header says {dims} but holds {len(body)} bytes")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(dirs, stem: str) -> Path | None:
    for d in dirs:
        for sub in ("", "FashionMNIST/raw"):
            for name in (stem + ".gz", stem):
                p = Path(d) / sub / name
                if p.is_file():
                    return p
    return None


def load_fashion_mnist(data_dir: str | None):
    dirs = [Path(data_dir)] if data_dir else list(FASHION_MNIST_DIRS)
    arrays = {}
    for key, stem in FASHION_MNIST_FILES.items():
        path = _find(dirs, stem)
        if path is None:
            where = " or ".join(str(d) for d in dirs)
            raise GenasError(f"Fashion-MNIST not found: no {stem}[.gz] in {where}; {FASHION_MNIST_FIX}")
        arrays[key] = _read_idx(path, 3 if key.endswith("x") else 1)
    for split in ("train", "test"):
        if len(arrays[f"{split}_x"]) != len(arrays[f"{split}_y"]):
            raise GenasError(f"malformed Fashion-MNIST in {dirs[0]}: {split} images and labels differ in count")
    return (torch.from_numpy(arrays["train_x"].copy()).unsqueeze(1), torch.from_numpy(arrays["train_y"].astype(np.int64)),
            torch.from_numpy(arrays["test_x"].copy()).unsqueeze(1), torch.from_numpy(arrays["test_y"].astype(np.int64)))


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds the numpy arrays, lists and dicts a CIFAR batch holds."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
               ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _read_cifar_batch(path: Path, label_key: str):
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(d[label_key.encode()], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise GenasError(f"malformed CIFAR batch {path}: {exc}") from None
    if len(data) != len(labels):
        raise GenasError(f"malformed CIFAR batch {path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def load_cifar(name: str, data_dir: str | None):
    """CIFAR-10/100 in the python format (``cifar-10-batches-py`` / ``cifar-100-python``)."""
    if not data_dir:
        raise GenasError(f"{name} needs --data-dir pointing at the extracted python-format folder "
                         f"(e.g. cifar-10-batches-py); genas never downloads data")
    root = Path(data_dir)
    if name == "cifar10":
        train_files, test_files, key = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"
    else:
        train_files, test_files, key = ["train"], ["test"], "fine_labels"
    for sub in ("", "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"):
        if all((root / sub / f).is_file() for f in train_files + test_files):
            root = root / sub
            break
    else:
        raise GenasError(f"{name} not found in {data_dir}: expected files {', '.join(train_files + test_files)} "
                         f"(python format); extract the official archive there")
    parts = [[_read_cifar_batch(root / f, key) for f in files] for files in (train_files, test_files)]
    out = []
    for batches in parts:
        out.append(torch.from_numpy(np.concatenate([b[0] for b in batches])))
        out.append(torch.from_numpy(np.concatenate([b[1] for b in batches])))
    return tuple(out)


def make_synthetic(num_classes: int = 10, size: int = 16, n_train: int = 640, n_test: int = 320, seed: int = 0):
    """A tiny learnable dataset for tests: a fixed random template per class plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.rand(num_classes, 1, size, size, generator=g)

    def draw(n):
        y = torch.arange(n) % num_classes
        x = templates[y] * 0.6 + torch.rand(n, 1, size, size, generator=g) * 0.4
        return (x * 255).round().to(torch.uint8), y

    return (*draw(n_train), *draw(n_test))


def check_dir(path: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise GenasError(f"data directory {path} does not exist or is not a directory")
    if not os.access(p, os.R_OK):
        raise GenasError(f"data directory {path} is not readable")
    return p
