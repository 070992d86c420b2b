"""Tiny supernet runs on the synthetic dataset, shared by the training and proxy tests."""
from __future__ import annotations

from pathlib import Path

from genas.supernet.config import supernet_config

TINY = dict(dataset="synthetic", channels=4, cells_per_stage=1, epochs=2, batch_size=32,
            max_train_images=192, val_images=64, save_every=1)


def tiny_config(**overrides):
    return supernet_config("quick", **{**TINY, **overrides})


def train_tiny(run: Path, **overrides) -> dict:
    from genas.supernet.train import train_supernet

    return train_supernet(tiny_config(**overrides), run, device="cpu", progress=False)
