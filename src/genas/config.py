"""Configs as dataclasses, named presets, and JSON round-trip.

A run folder stores the fully resolved config as ``config.json``; a resumed run reads it back, so
the same seed and config always give the same result.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import GenasError


@dataclass
class SupernetConfig:
    """Everything that determines a SPOS supernet training run."""

    preset: str = "default"
    space: str = "nb201"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    split_seed: int = 0  # seed of the supernet-train / search-validation split
    val_fraction: float = 0.5  # share of the official training set held out for search validation
    channels: int = 16
    cells_per_stage: int = 2  # NB201: cells per stage
    layers: int = 8  # DARTS: cells in the supernet (2 of them reductions)
    affine: bool = False  # learn affine parameters in the supernet's cell BatchNorms
    epochs: int = 30
    batch_size: int = 64  # global batch; divided across distributed ranks
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None  # None: 5e-4 for nb201, 3e-4 otherwise (GeNAS recipe)
    grad_clip: float = 5.0
    seed: int = 0
    max_train_images: int | None = None  # use only the first K images of the supernet-train half
    val_images: int = 2000  # search-validation images for the per-epoch sampled-subnet accuracy
    save_every: int = 5  # keep a weights snapshot every K epochs (plus init and final)
    workers: int = 2  # data loader processes (image folders only)

    def resolved(self) -> "SupernetConfig":
        out = dataclasses.replace(self)
        if out.weight_decay is None:
            out.weight_decay = 5e-4 if out.space == "nb201" else 3e-4
        return out

    def validate(self) -> "SupernetConfig":
        positive = ("channels", "cells_per_stage", "layers", "epochs", "batch_size", "val_images", "save_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise GenasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_train_images is not None and self.max_train_images < 1:
            raise GenasError(f"--max-train-images must be >= 1, got {self.max_train_images}")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise GenasError(f"need 0 <= lr-min <= lr and lr > 0, got lr={self.lr}, lr-min={self.lr_min}")
        return self


# Presets: `quick` is a few CPU minutes; `default` is the size our recorded studies use;
# `paper` is the GeNAS recipe (SGD 0.025 cosine -> 0.001, momentum 0.9, wd 5e-4 on NB201,
# clip 5, batch 64, 250 epochs) on the full NB201 skeleton (C=16, N=5).
SUPERNET_PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(channels=8, cells_per_stage=1, epochs=5, max_train_images=10000, val_images=1000, save_every=1),
    "default": dict(channels=16, cells_per_stage=2, epochs=30),
    "paper": dict(channels=16, cells_per_stage=5, epochs=250, val_images=25000),
}


# Per-space changes to the presets (DARTS: the official 8-cell supernet at C=16; smaller for quick).
SPACE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "darts": {"quick": dict(channels=8, layers=5, epochs=3), "default": dict(channels=16, layers=8),
              "paper": dict(channels=16, layers=8)},
}


def supernet_config(preset: str = "default", **overrides) -> SupernetConfig:
    if preset not in SUPERNET_PRESETS:
        raise GenasError(f"unknown preset {preset!r}; available: {', '.join(SUPERNET_PRESETS)}")
    space = overrides.get("space") or SupernetConfig.space
    values = dict(SUPERNET_PRESETS[preset], **SPACE_PRESETS.get(space, {}).get(preset, {}), preset=preset)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SupernetConfig(**values).resolved().validate()


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, values: dict):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise GenasError(f"config has unknown keys {sorted(unknown)}")
    return cls(**values)


def load_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GenasError(f"{path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GenasError(f"{path} is not valid JSON: {exc}") from None


__all__ = ["SupernetConfig", "SUPERNET_PRESETS", "supernet_config", "to_dict", "from_dict", "load_json", "field"]
