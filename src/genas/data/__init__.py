"""Datasets by name, or from a user's own arrays, with the GeNAS split of the training set.

The official training set is split once, by a recorded seed, into a *supernet-train* half (SPOS
training, BN recalibration) and a *search-validation* half (proxy scoring), as the paper splits
CIFAR's 50k into 25k/25k. The official test set is never touched by training or search.

* :func:`load_data` reads a named dataset (:data:`DATASETS`) from local files;
* :func:`from_tensors` / :func:`from_dataset` (:mod:`.arrays`) wrap arrays or a torch ``Dataset``
  that are already in memory, so every step runs without a named dataset.

Every :class:`Data` has a content ``fingerprint`` (sha256 over its images and labels), recorded
with its normalisation in :meth:`Data.describe` (a supernet run's ``data.json``); a run refuses to
continue or be scored on data with another fingerprint. Importing this package does not import
torch; loading data does.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GenasError
from ..registry import Registry
from .arrays import from_dataset, from_tensors

if TYPE_CHECKING:
    from .images import FolderImageSet, TensorImageSet

# mean/std of the training set (0-1 scale), and the standard crop padding / flip per dataset
_STATS = {
    "fashion-mnist": dict(mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True),
    "cifar10": dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True),
    "cifar100": dict(mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), crop_padding=4, flip=True),
    "synthetic": dict(mean=(0.5,), std=(0.25,), crop_padding=1, flip=False),
}
SOURCES = ("named", "arrays")  # Data.source: load_data(name), or from_tensors / from_dataset


def named_normalisation(name: str) -> dict | None:
    """``{"mean": [...], "std": [...]}`` (0-1 scale) of a named in-memory dataset, or None (image
    folders use ImageNet's; a user's arrays record their own in ``describe()``)."""
    stats = _STATS.get(name)
    return None if stats is None else dict(mean=list(stats["mean"]), std=list(stats["std"]))


@dataclass
class Data:
    name: str
    num_classes: int
    in_channels: int
    image_size: int
    train: TensorImageSet | FolderImageSet  # the official training set (both halves)
    test: TensorImageSet | FolderImageSet  # the official test set, for final evaluation only
    train_idx: np.ndarray  # supernet-train half (indices into ``train``)
    val_idx: np.ndarray  # search-validation half (indices into ``train``)
    split_seed: int
    source: str = "named"  # "named" (load_data) or "arrays" (from_tensors / from_dataset)
    _fingerprint: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) over the train and test images and labels; computed once, on first use.

        In-memory sets hash their pixels (about 0.05 s for Fashion-MNIST); image folders hash their
        relative file paths and labels, not the files' contents.
        """
        if self._fingerprint is None:
            h = hashlib.sha256(b"genas-data-v1;")
            for part, images in (("train", self.train), ("test", self.test)):
                h.update(f"{part};".encode())
                images.update_digest(h)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def describe(self) -> dict:
        """The facts a run records (``data.json``): sizes, split, normalisation and fingerprint."""
        return dict(dataset=self.name, source=self.source, num_classes=self.num_classes,
                    in_channels=self.in_channels, image_size=self.image_size, n_supernet_train=len(self.train_idx),
                    n_search_val=len(self.val_idx), n_test=len(self.test), split_seed=self.split_seed,
                    mean=[float(m) for m in self.train.mean], std=[float(s) for s in self.train.std],
                    fingerprint=self.fingerprint)


def check_same_data(recorded: dict, data: "Data", where) -> None:
    """Refuse ``data`` if it is not what ``recorded`` (a run's ``data.json``) describes: another
    fingerprint, or another supernet-train / search-validation split of the same images."""
    fingerprint = recorded.get("fingerprint")
    if fingerprint is None:  # recorded before fingerprints existed
        return
    mine = data.describe()
    if fingerprint != mine["fingerprint"]:
        raise GenasError(f"{where} was made with other data (fingerprint {fingerprint[:12]}, given "
                         f"{mine['fingerprint'][:12]}); pass the same data or use another folder")
    for key in ("split_seed", "n_supernet_train", "n_search_val"):
        if key in recorded and recorded[key] != mine[key]:
            raise GenasError(f"{where} was made with another split of this data ({key} {recorded[key]}, given "
                             f"{mine[key]}); pass the same split_seed and val_fraction")


def split_train(n: int, seed: int, val_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``range(n)`` into (supernet-train, search-validation) index arrays."""
    if not 0.0 < val_fraction < 1.0:
        raise GenasError(f"val fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _in_memory(name: str, arrays, data_dir: str | None):
    """Tensor image sets of an in-memory dataset (uint8 N x C x H x W images, int64 labels), checked."""
    from .images import TensorImageSet

    train_x, train_y, test_x, test_y = arrays
    stats = _STATS[name]
    train = TensorImageSet(train_x, train_y, **stats)
    test = TensorImageSet(test_x, test_y, **stats)
    num_classes = 100 if name == "cifar100" else 10
    where = data_dir or "the default location"
    if len(train_y) == 0 or len(test_y) == 0:
        raise GenasError(f"malformed {name} data in {where}: the train or test set is empty")
    labels = train_y.max().item(), test_y.max().item()
    if max(labels) >= num_classes or min(train_y.min().item(), test_y.min().item()) < 0:
        raise GenasError(f"malformed {name} data in {where}: labels outside 0..{num_classes - 1}")
    return train, test, num_classes, train_x.shape[1], train_x.shape[-1]


def _image_folder(name: str, data_dir: str | None, image_size: int | None, workers: int):
    from .images import FolderImageSet

    if not data_dir:
        raise GenasError("imagefolder needs --data-dir with train/ and val/ (or test/) class folders")
    root = Path(data_dir)
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise GenasError(f"imagefolder {data_dir} must contain train/ and val/ (or test/) class folders")
    size = image_size or 224
    try:
        train = FolderImageSet(str(root / "train"), size, workers=workers)
        test = FolderImageSet(str(test_dir), size, workers=workers)
    except (FileNotFoundError, OSError) as exc:
        raise GenasError(f"malformed imagefolder {data_dir}: {exc}") from None
    if train.classes != test.classes:
        raise GenasError(f"imagefolder {data_dir}: train/ and {test_dir.name}/ have different class folders")
    return train, test, len(train.classes), 3, size


def _fixed_size(loader):
    """A loader of an in-memory dataset whose images have one size (``--image-size`` must match it)."""
    def load(name: str, data_dir: str | None, image_size: int | None, workers: int):
        out = _in_memory(name, loader(name, data_dir), data_dir)
        if image_size not in (None, out[4]):
            raise GenasError(f"{name} images are {out[4]}x{out[4]}; --image-size {image_size} is not supported for it")
        return out

    return load


# name -> loader(name, data_dir, image_size, workers) -> (train set, test set, classes, channels, size)
DATASETS: Registry = Registry("dataset")
def _source(fn: str):
    """A reader of :mod:`.sources`, imported when called (that module imports torch)."""
    def read(*args):
        from . import sources

        return getattr(sources, fn)(*args)

    return read


DATASETS.register("fashion-mnist", _fixed_size(lambda name, d: _source("load_fashion_mnist")(d)))
DATASETS.register("cifar10", _fixed_size(_source("load_cifar")))
DATASETS.register("cifar100", _fixed_size(_source("load_cifar")))
DATASETS.register("imagefolder", _image_folder)
DATASETS.register("synthetic", _fixed_size(lambda name, d: _source("make_synthetic")()))


def load_data(name: str = "fashion-mnist", data_dir: str | None = None, split_seed: int = 0,
              val_fraction: float = 0.5, image_size: int | None = None, workers: int = 2) -> Data:
    """Load a dataset by name from local files; errors name the path and the fix."""
    from .sources import check_dir

    loader = DATASETS.get(name)
    if data_dir is not None:
        check_dir(data_dir)
    train, test, num_classes, in_channels, size = loader(name, data_dir, image_size, workers)
    train_idx, val_idx = split_train(len(train), split_seed, val_fraction)
    return Data(name, num_classes, in_channels, size, train, test, train_idx, val_idx, split_seed)


def __getattr__(name: str):
    if name in ("TensorImageSet", "FolderImageSet"):  # the image sets, without importing torch up front
        from . import images

        return getattr(images, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["check_same_data", "DATASETS", "Data", "SOURCES", "from_dataset", "from_tensors", "load_data", "named_normalisation",
           "split_train"]
