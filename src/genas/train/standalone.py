"""Stand-alone training of one architecture from scratch with a short fixed recipe, and its final
test evaluation: what the ground-truth bench trains (``genas bench``).

It reuses the retraining pieces (the network builder and the shared epoch loop); its own recipe is
plain cross-entropy, SGD with Nesterov momentum and PyTorch's cosine scheduler, kept as it was
when the recorded ground truth (``results/correlation/bench``) was made so that it reproduces.
The cell is trained with fresh weights on the official training set (``full``) or on the
supernet-train half only (``train-half``, which keeps the search-validation half unseen).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import options, seeding
from ..data import Data
from ..engine.cost import count_params
from ..engine.evaluate import evaluate
from ..engine.loop import bar_disabled, train_one_epoch
from ..engine import PRECISIONS
from ..engine.precision import TrainPrecision
from ..options import option
from ..spaces import NetworkSpec


@dataclass
class StandaloneConfig:
    channels: int = option(16, "channels C", min=1)
    cells_per_stage: int = option(1, "cells N per stage", min=1)
    layers: int = option(5, "cells (spaces counted in cells)", min=1)
    epochs: int = option(4, "training epochs", min=1)
    batch_size: int = option(128, "batch size", min=1)
    lr: float = option(0.05, "initial learning rate", gt=0)
    lr_min: float = option(0.0, "final learning rate", min=0)
    momentum: float = option(0.9, "SGD momentum (Nesterov when > 0)", min=0)
    weight_decay: float = option(5e-4, "weight decay", min=0)
    grad_clip: float = option(5.0, "gradient-norm clip", min=0)
    max_train_images: int | None = option(20000, "first K images of the (shuffled-once) training set", min=1)
    train_on: str = option("full", "full training set, or train-half", choices=("full", "train-half"))
    val_images: int | None = option(None, "search-validation images to evaluate (train-half only)", min=1)
    seed: int = option(0, "training seed")
    precision: str = option("fp32", "training arithmetic (evaluation stays fp32)", choices=PRECISIONS)
    channels_last: bool = option(False, "train in NHWC memory format")

    def validate(self) -> "StandaloneConfig":
        return options.validate(self)


def train_indices(data: Data, cfg) -> np.ndarray:
    """The training images of a recipe: the supernet-train half, or the whole training set in a
    fixed shuffled order (so a prefix is a random subset); the first ``max_train_images``."""
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
    spec = NetworkSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, layers=cfg.layers,
                       num_classes=data.num_classes, in_channels=data.in_channels)
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 1))
        net = space.build_network(genotype, spec).to(device)
    amp = TrainPrecision.make(cfg.precision, device, cfg.channels_last)
    amp.prepare(net)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    idx = train_indices(data, cfg)

    def step(x, y):
        logits = net(x)
        return F.cross_entropy(logits, y), logits

    history, seconds = [], 0.0
    for epoch in range(cfg.epochs):
        net.train()
        batches = data.train.batches(idx, cfg.batch_size, train=True,
                                     seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch, 1))
        stats = train_one_epoch(step, batches, opt, net.parameters(), cfg.grad_clip, device,
                                total=len(idx) // cfg.batch_size, desc=f"retrain {epoch + 1}/{cfg.epochs}",
                                disable=bar_disabled(progress), precision=amp)
        sched.step()
        seconds += stats.seconds
        history.append(dict(epoch=epoch, train_loss=stats.loss, train_acc=stats.accuracy))
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


__all__ = ["StandaloneConfig", "train_indices", "train_standalone"]
