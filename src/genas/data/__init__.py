"""Datasets by name, with the GeNAS split of the training set.

The official training set is split once, by a recorded seed, into a *supernet-train* half (SPOS
training, BN recalibration) and a *search-validation* half (proxy scoring), as the paper splits
CIFAR's 50k into 25k/25k. The official test set is never touched by training or search.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GenasError
from .images import FolderImageSet, TensorImageSet
from .sources import check_dir, load_cifar, load_fashion_mnist, make_synthetic

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "imagefolder", "synthetic")

# mean/std of the training set (0-1 scale), and the standard crop padding / flip per dataset
_STATS = {
    "fashion-mnist": dict(mean=(0.2860,), std=(0.3530,), crop_padding=2, flip=True),
    "cifar10": dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), crop_padding=4, flip=True),
    "cifar100": dict(mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762), crop_padding=4, flip=True),
    "synthetic": dict(mean=(0.5,), std=(0.25,), crop_padding=1, flip=False),
}


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

    def describe(self) -> dict:
        return dict(dataset=self.name, num_classes=self.num_classes, in_channels=self.in_channels,
                    image_size=self.image_size, n_supernet_train=len(self.train_idx),
                    n_search_val=len(self.val_idx), n_test=len(self.test), split_seed=self.split_seed)


def split_train(n: int, seed: int, val_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic split of ``range(n)`` into (supernet-train, search-validation) index arrays."""
    if not 0.0 < val_fraction < 1.0:
        raise GenasError(f"val fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def load_data(name: str = "fashion-mnist", data_dir: str | None = None, split_seed: int = 0,
              val_fraction: float = 0.5, image_size: int | None = None, workers: int = 2) -> Data:
    """Load a dataset by name from local files; errors name the path and the fix."""
    if name not in DATASETS:
        raise GenasError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    if data_dir is not None:
        check_dir(data_dir)
    if name == "imagefolder":
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
        num_classes, in_channels = len(train.classes), 3
    else:
        if name == "fashion-mnist":
            arrays = load_fashion_mnist(data_dir)
        elif name in ("cifar10", "cifar100"):
            arrays = load_cifar(name, data_dir)
        else:
            arrays = make_synthetic()
        train_x, train_y, test_x, test_y = arrays
        stats = _STATS[name]
        train = TensorImageSet(train_x, train_y, **stats)
        test = TensorImageSet(test_x, test_y, **stats)
        num_classes = 100 if name == "cifar100" else 10
        in_channels, size = train_x.shape[1], train_x.shape[-1]
        if image_size not in (None, size):
            raise GenasError(f"{name} images are {size}x{size}; --image-size {image_size} is not supported for it")
        if len(train_y) == 0 or len(test_y) == 0:
            raise GenasError(f"malformed {name} data in {data_dir or 'the default location'}: the train or test set is empty")
        labels = train_y.max().item(), test_y.max().item()
        if max(labels) >= num_classes or min(train_y.min().item(), test_y.min().item()) < 0:
            raise GenasError(f"malformed {name} data in {data_dir or 'the default location'}: labels outside 0..{num_classes - 1}")
    train_idx, val_idx = split_train(len(train), split_seed, val_fraction)
    return Data(name, num_classes, in_channels, size, train, test, train_idx, val_idx, split_seed)


__all__ = ["DATASETS", "Data", "load_data", "split_train"]
