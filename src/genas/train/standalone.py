"""Stand-alone training of one architecture from scratch, and its final test evaluation.

The found cell is retrained with fresh weights on the official training set (both halves: the
search is over, so the search-validation half may be used for training, as in DARTS-style
evaluation) and measured once on the untouched official test set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import seeding
from ..data import Data
from ..errors import GenasError
from .cost import count_params
from .evaluate import evaluate
from .step import sgd_step


@dataclass
class StandaloneConfig:
    channels: int = 16
    cells_per_stage: int = 1
    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.05
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    max_train_images: int | None = 20000  # first K images of the (shuffled-once) training set
    train_on: str = "full"  # "full" training set, or "train-half" (keeps the search-validation half unseen)
    val_images: int | None = None  # search-validation images to evaluate (train-half only; None = all)
    seed: int = 0

    def validate(self) -> "StandaloneConfig":
        if self.train_on not in ("full", "train-half"):
            raise GenasError(f"train_on must be 'full' or 'train-half', got {self.train_on!r}")
        for name in ("channels", "cells_per_stage", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise GenasError(f"{name} must be >= 1, got {getattr(self, name)}")
        return self


def train_indices(data: Data, cfg: StandaloneConfig):
    import numpy as np

    if cfg.train_on == "train-half":
        idx = data.train_idx
    else:
        idx = seeding.derive_rng(data.split_seed, seeding.DATA, 7).permutation(len(data.train))
    idx = np.asarray(idx)
    return idx[: cfg.max_train_images] if cfg.max_train_images else idx


def train_standalone(space, genotype: Sequence[int], data: Data, cfg: StandaloneConfig,
                     device: torch.device | str = "cpu", progress: bool | None = None) -> dict:
    """Train ``genotype`` from scratch; return test (and, for train-half, search-val) metrics."""
    cfg.validate()
    device = torch.device(device)
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 1))
        net = space.build_network(genotype, channels=cfg.channels, cells_per_stage=cfg.cells_per_stage,
                                  num_classes=data.num_classes, in_channels=data.in_channels).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    idx = train_indices(data, cfg)
    history, t0 = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        batches = data.train.batches(idx, cfg.batch_size, train=True,
                                     seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch, 1))
        for x, y in tqdm(batches, total=len(idx) // cfg.batch_size, desc=f"retrain {epoch + 1}/{cfg.epochs}",
                         leave=False, disable=None if progress is None else not progress):
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            sgd_step(loss, opt, net.parameters(), cfg.grad_clip)
            loss_sum += loss.detach().double() * len(y)
            seen += len(y)
        sched.step()
        history.append(dict(epoch=epoch, train_loss=loss_sum.item() / max(seen, 1)))
    seconds = time.perf_counter() - t0
    net.eval()
    test = evaluate(net, data.test.batches(range(len(data.test)), 500, train=False), device)
    out = dict(test_accuracy=test["accuracy"], test_loss=test["loss"], params=count_params(net),
               train_seconds=round(seconds, 2), train_images=int(len(idx)), history=history)
    if cfg.train_on == "train-half":
        val_idx = data.val_idx if cfg.val_images is None else data.val_idx[: cfg.val_images]
        val = evaluate(net, data.train.batches(val_idx, 500, train=False), device)
        out.update(val_accuracy=val["accuracy"], val_loss=val["loss"])
    out["network"] = net
    return out
