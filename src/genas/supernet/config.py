"""The SPOS supernet training config and its presets (a base plus differences).

A run folder stores the fully resolved config as ``config.json``; a resumed run reads it back, so
the same seed and config always give the same result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import options
from ..data import DATASETS
from ..engine import channels_last_option, deterministic_option, precision_option
from ..errors import GenasError
from ..options import option
from ..spaces import SPACES


@dataclass
class SupernetConfig:
    """Everything that determines a SPOS supernet training run."""

    preset: str = option("default", "preset the other values start from", cli=False)
    space: str = option("nb201", "search space", choices=SPACES.names)
    dataset: str = option("fashion-mnist", "dataset", choices=DATASETS.names)
    data_dir: str | None = option(None, "folder with the dataset files (fashion-mnist default: "
                                        "/usr/share/datasets/fashion-mnist)", resume_may_change=True)
    split_seed: int = option(0, "seed of the supernet-train / search-validation split of the training set")
    val_fraction: float = option(0.5, "share of the training set held out for search validation", gt=0, lt=1)
    channels: int = option(16, "channels C of the first stage", min=1)
    cells_per_stage: int = option(2, "NB201: cells N per stage (NB201 uses 5)", min=1)
    layers: int = option(8, "DARTS: cells in the supernet, 2 of them reductions (GeNAS: 8)", min=1)
    affine: bool = option(False, "learn affine parameters in the supernet's cell BatchNorms (NB201 search nets "
                                 "do not)")
    epochs: int = option(30, "training epochs", min=1)
    batch_size: int = option(64, "global batch size (split across torchrun ranks)", min=1)
    lr: float = option(0.025, "initial SGD learning rate (cosine-annealed)", gt=0)
    lr_min: float = option(0.001, "final learning rate of the cosine schedule", min=0)
    momentum: float = option(0.9, "SGD momentum", min=0)
    nesterov: bool = option(False, "Nesterov momentum")
    weight_decay: float | None = option(None, "weight decay (default: the space's, 5e-4 for nb201, 3e-4 for darts)", min=0)
    grad_clip: float = option(5.0, "gradient-norm clip; 0 disables", min=0)
    seed: int = option(0, "run seed: initial weights, data order, sampled paths")
    max_train_images: int | None = option(None, "use only the first K images of the supernet-train half", min=1)
    val_images: int = option(2000, "search-validation images for the per-epoch sampled-subnet accuracy", min=1)
    save_every: int = option(5, "keep a weights snapshot every K epochs", min=1)
    workers: int = option(2, "data-loading processes (image folders only)", min=0, resume_may_change=True)
    precision: str = precision_option("scoring always runs in fp32")
    channels_last: bool = channels_last_option()
    deterministic: bool = deterministic_option()

    def resolved(self) -> "SupernetConfig":
        out = dataclasses.replace(self)
        if out.weight_decay is None:
            out.weight_decay = SPACES.get(out.space).supernet_weight_decay
        return out

    def validate(self) -> "SupernetConfig":
        options.validate(self)
        if self.lr_min > self.lr:
            raise GenasError(f"need 0 <= lr-min <= lr and lr > 0, got lr={self.lr}, lr-min={self.lr_min}")
        return self


# `quick` is a few CPU minutes; `default` is the size our recorded studies use; `paper` is the GeNAS
# recipe (SGD 0.025 cosine -> 0.001, momentum 0.9, wd 5e-4 on NB201, clip 5, batch 64, 250 epochs) on
# the full NB201 skeleton (C=16, N=5). Each preset lists its differences from the defaults above.
SUPERNET_PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(channels=8, cells_per_stage=1, epochs=5, max_train_images=10000, val_images=1000, save_every=1),
    "default": dict(),
    "paper": dict(cells_per_stage=5, epochs=250, val_images=25000),
}

# Per-space differences from a preset (DARTS: the official 8-cell supernet at C=16; smaller for quick).
SPACE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "darts": {"quick": dict(channels=8, layers=5, epochs=3)},
}


def supernet_config(preset: str = "default", **overrides) -> SupernetConfig:
    """The resolved, validated config of ``preset`` with ``overrides`` (``None`` values ignored)."""
    space = overrides.get("space") or SupernetConfig.space
    cfg = options.resolve(SupernetConfig, preset, SUPERNET_PRESETS, {**overrides, "preset": preset},
                          extra=[SPACE_PRESETS.get(space, {}).get(preset, {})])
    return cfg.resolved().validate()


__all__ = ["SupernetConfig", "SUPERNET_PRESETS", "SPACE_PRESETS", "supernet_config"]
