"""A user's own data, already in memory, as a :class:`~genas.data.Data`: arrays
(:func:`from_tensors`) or a map-style ``torch.utils.data.Dataset`` of (image, label)
(:func:`from_dataset`).

Images are N x C x H x W (or N x H x W for one channel), square, as numpy arrays or torch tensors:
``uint8`` on the 0-255 scale, or floating point on the 0-1 scale. Labels are integers in
``0..num_classes-1``. The training set is split into the supernet-train and search-validation
halves by ``split_seed`` / ``val_fraction``, as for named datasets; the test set is for final
evaluation only. ``mean``/``std`` (0-1 scale, per channel) default to the training set's own.
Every input problem is a one-line :class:`~genas.errors.GenasError`.

The arrays are copied, so changing yours afterwards does not change the Data (nor its
fingerprint, which is computed once).
"""
from __future__ import annotations

import math
import operator
from typing import Any, Sequence

import numpy as np

from ..errors import GenasError


def _shape(a) -> str:
    return "x".join(str(int(s)) for s in a.shape)


def _dtype(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _to_torch(a, what: str):
    import torch

    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    if isinstance(a, np.ndarray):
        if a.dtype == object:
            raise GenasError(f"{what} is an object array; pass numeric images/labels")
        a = np.ascontiguousarray(a)
        return torch.from_numpy(a if a.flags.writeable else a.copy())
    raise GenasError(f"{what} must be a numpy array or a torch tensor, got {type(a).__name__}")


def _images(a, what: str):
    """N x C x H x W uint8 or float32 torch tensor (a copy), checked."""
    import torch

    x = _to_torch(a, what)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise GenasError(f"{what} must be N x C x H x W (or N x H x W) images, got shape {_shape(x)}")
    n, c, h, w = x.shape
    if n == 0:
        raise GenasError(f"{what} holds no images")
    if h != w:
        if c > 4 and w <= 4:
            raise GenasError(f"{what} looks channels-last ({_shape(x)}); pass N x C x H x W, e.g. "
                             f"x.permute(0, 3, 1, 2) or np.transpose(x, (0, 3, 1, 2))")
        raise GenasError(f"{what} images must be square, got {h}x{w}")
    if x.dtype == torch.uint8:
        return x.clone().contiguous()
    if not x.is_floating_point():
        raise GenasError(f"{what} must be uint8 (0-255) or floating point (0-1 scale), got {_dtype(x)}")
    x = x.to(torch.float32).clone().contiguous()
    if not torch.isfinite(x).all():
        raise GenasError(f"{what} holds NaN or infinite values")
    return x


def _labels(a, n: int, what: str):
    import torch

    y = _to_torch(a, what)
    if y.ndim != 1:
        raise GenasError(f"{what} must be a 1-D array of class indices, got shape {_shape(y)}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise GenasError(f"{what} must hold integer class indices, got {_dtype(y)}")
    if len(y) != n:
        raise GenasError(f"{what} has {len(y)} labels for {n} images")
    y = y.to(torch.int64).clone()
    if int(y.min()) < 0:
        raise GenasError(f"{what} holds negative labels (min {int(y.min())}); use class indices 0..K-1")
    return y


def _per_channel(value, channels: int, what: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    vals = [value] if isinstance(value, (int, float)) else list(value)
    try:
        vals = [float(v) for v in vals]
    except (TypeError, ValueError):
        raise GenasError(f"{what} must be a number or one number per channel, got {value!r}") from None
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise GenasError(f"{what} needs one value per channel ({channels}), got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise GenasError(f"{what} must be finite, got {value!r}")
    return tuple(vals)


def _channel_stats(x) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0-1 scale) of images, summed in float64 chunks (bounded memory)."""
    import torch

    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    for start in range(0, len(x), 4096):
        chunk = x[start:start + 4096].to(torch.float64) / scale
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant channel: leave its scale alone
    return tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)


def from_tensors(train_x, train_y, test_x, test_y, *, num_classes: int | None = None,
                 mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None,
                 name: str = "tensors", split_seed: int = 0, val_fraction: float = 0.5, crop_padding: int = 0,
                 flip: bool = False):
    """A :class:`~genas.data.Data` from in-memory train and test arrays (numpy or torch).

    ``train_x``/``test_x``: N x C x H x W (or N x H x W) square images, uint8 (0-255) or float
    (0-1 scale); ``train_y``/``test_y``: integer labels. ``num_classes`` defaults to the largest
    label + 1; ``mean``/``std`` (0-1 scale, one per channel or one for all) to the training set's.
    ``crop_padding``/``flip``: the training augmentation (random crop with zero padding, horizontal
    flip); off by default. ``name`` labels the data in run folders.
    """
    from . import Data, split_train
    from .images import TensorImageSet

    tx, vx = _images(train_x, "train_x"), _images(test_x, "test_x")
    if tx.shape[1:] != vx.shape[1:]:
        raise GenasError(f"train_x and test_x images differ in shape: {_shape(tx[0])} vs {_shape(vx[0])}")
    if tx.dtype != vx.dtype:
        raise GenasError(f"train_x is {_dtype(tx)} but test_x is {_dtype(vx)}; pass both on the same scale")
    ty, vy = _labels(train_y, len(tx), "train_y"), _labels(test_y, len(vx), "test_y")
    top = max(int(ty.max()), int(vy.max()))
    if num_classes is None:
        num_classes = top + 1
    try:
        num_classes = operator.index(num_classes)
    except TypeError:
        raise GenasError(f"num_classes must be an integer, got {num_classes!r}") from None
    if num_classes < 1:
        raise GenasError(f"num_classes must be >= 1, got {num_classes}")
    if top >= num_classes:
        raise GenasError(f"labels go up to {top} but num_classes is {num_classes}; labels must be 0..{num_classes - 1}")
    if not isinstance(crop_padding, int) or isinstance(crop_padding, bool) or crop_padding < 0:
        raise GenasError(f"crop_padding must be an integer >= 0, got {crop_padding!r}")
    if not isinstance(name, str) or not name.strip():
        raise GenasError(f"name must be a non-empty string, got {name!r}")
    channels = tx.shape[1]
    mean_t, std_t = _per_channel(mean, channels, "mean"), _per_channel(std, channels, "std")
    if std_t is not None and min(std_t) <= 0:
        raise GenasError(f"std must be > 0, got {std}")
    if mean_t is None or std_t is None:
        own_mean, own_std = _channel_stats(tx)
        mean_t, std_t = mean_t or own_mean, std_t or own_std
    train_idx, val_idx = split_train(len(tx), int(split_seed), val_fraction)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise GenasError(f"{len(tx)} training images are too few to split into supernet-train and "
                         f"search-validation halves (val_fraction {val_fraction})")
    aug = dict(mean=mean_t, std=std_t, crop_padding=crop_padding, flip=bool(flip))
    train, test = TensorImageSet(tx, ty, **aug), TensorImageSet(vx, vy, **aug)
    return Data(name, num_classes, channels, tx.shape[-1], train, test, train_idx, val_idx, int(split_seed),
                source="arrays")


def _item_image(img: Any, what: str):
    """One dataset image as a C x H x W tensor: a tensor or array (C x H x W or H x W) or a PIL image."""
    import torch

    if hasattr(img, "getbands") and hasattr(img, "size"):  # PIL image: H x W (x C), uint8
        arr = np.asarray(img)
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr.copy())
    x = _to_torch(img, what)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise GenasError(f"{what} must be a C x H x W image, got shape {_shape(x)}")
    return x


def _materialise(ds, what: str):
    import torch

    try:
        n = len(ds)
    except TypeError:
        raise GenasError(f"{what} must be a map-style dataset with len() (a torch.utils.data.Dataset)") from None
    if n == 0:
        raise GenasError(f"{what} is empty")
    images, labels = [], []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise GenasError(f"{what}[{i}] must be an (image, label) pair, got {type(item).__name__}")
        x = _item_image(item[0], f"{what}[{i}] image")
        if images and x.shape != images[0].shape:
            raise GenasError(f"{what}[{i}] image is {_shape(x)} but {what}[0] is {_shape(images[0])}; "
                             f"resize them to one size")
        if images and x.dtype != images[0].dtype:
            raise GenasError(f"{what}[{i}] image is {_dtype(x)} but {what}[0] is {_dtype(images[0])}")
        try:
            labels.append(operator.index(item[1]))
        except TypeError:
            raise GenasError(f"{what}[{i}] label must be an integer class index, got {item[1]!r}") from None
        images.append(x)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def from_dataset(train_ds, test_ds, *, name: str = "dataset", **options):
    """A :class:`~genas.data.Data` from map-style datasets of (image, label), read into memory.

    Images are C x H x W tensors (uint8, or float on the 0-1 scale as ``ToTensor`` gives) or PIL
    images; labels integers. ``options`` are those of :func:`from_tensors`. Meant for sets that
    fit in memory (every item is read once); stream large image collections with ``imagefolder``.
    """
    train_x, train_y = _materialise(train_ds, "train_ds")
    test_x, test_y = _materialise(test_ds, "test_ds")
    return from_tensors(train_x, train_y, test_x, test_y, name=name, **options)


__all__ = ["from_dataset", "from_tensors"]
