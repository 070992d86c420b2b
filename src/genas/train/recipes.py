"""The retraining recipe behind ``genas retrain``: its config, presets and per-epoch pieces.

The recipe (DARTS ``train.py`` for CIFAR; the official GeNAS ``retrain_architecture/retrain.py``
for ImageNet): SGD with momentum, a per-epoch cosine or "linear" learning rate with optional
linear warm-up, label smoothing in the training loss only (validation is plain cross-entropy), an
auxiliary head weighted 0.4, cutout, drop path with the DARTS schedule
``drop_path_prob = drop_path * epoch / epochs``, and gradient-norm clipping.

Presets (:func:`retrain_config`), each the differences from :class:`RetrainConfig`'s defaults
(the DARTS CIFAR protocol):

* ``quick``: Fashion-MNIST, minutes on a CPU (DARTS C=8, 5 cells; NB201 C=16, N=1; 4 epochs on
  10k images; no auxiliary head -- 28x28 inputs are too small for it -- no cutout, no drop path;
  best.pt selected on 5 % of the training set held out, not on the test set).
* ``cifar``: the DARTS CIFAR protocol (600 epochs, C=36, 20 cells, batch 96, lr 0.025 cosine to 0,
  wd 3e-4, cutout 16, drop path 0.2, auxiliary 0.4, clip 5). For the NB201 space it is the
  NAS-Bench-201 protocol instead (200 epochs, C=16, N=5, batch 256, lr 0.1 Nesterov cosine,
  wd 5e-4; NB201 networks have no auxiliary head and no drop path).
* ``imagenet``: the GeNAS ImageNet protocol (250 epochs, C=48 or the published per-architecture
  width, 14 cells, batch 1024, lr 0.5 linear with 5 warm-up epochs, wd 3e-5, label smoothing 0.1,
  auxiliary 0.4, clip 5, no cutout, drop path 0). Spaces with ImageNet-style networks only.

``cifar`` and ``imagenet`` train on the whole training set, as their protocols do, so their
best.pt is the best *test* epoch ("best on test — optimistic"); the honest number is the final
epoch's, which is reported first. ``--holdout-fraction`` holds out part of the training set instead.

The linear schedule, generalised from the GeNAS one (E = 250, T = 5): with T = min(5, E // 2)
tail epochs, ``lr(e) = lr * (E - T - e) / (E - T)`` for ``e < E - T`` and
``lr(e) = lr * (E - e) / ((E - T) * T)`` for the last T epochs; E = 250 gives exactly GeNAS's
``0.5 (245 - e) / 245`` and ``0.5 (250 - e) / (245 * 5)``. The cosine schedule is
``lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2`` (epoch 0 uses ``lr``). Warm-up multiplies
either by ``(e + 1) / warmup_epochs`` for ``e < warmup_epochs``. The rate is set once at the start
of each epoch, a pure function of the epoch (nothing to restore on resume).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import options
from ..data import DATASETS
from ..engine import channels_last_option, deterministic_option, precision_option
from .. import spaces
from ..errors import GenasError
from ..io import load_json
from ..options import from_dict, option
from ..spaces import SPACES, get_space

CONFIG, DATA, LOG, LAST, BEST, RESULT = "config.json", "data.json", "log.jsonl", "last.pt", "best.pt", "result.json"
LINEAR_TAIL = 5  # GeNAS: the last 5 epochs decay from lr/245 towards 0
STYLES = ("cifar", "imagenet")
SCHEDULES = ("cosine", "linear")


@dataclass
class RetrainConfig:
    """Everything that determines a stand-alone re-training run (defaults: the DARTS CIFAR protocol)."""

    preset: str = option("cifar", "recipe preset", cli=False)
    space: str = option("darts", "search space of the genotype", choices=SPACES.names, cli=False)
    genotype: str = option("", "canonical genotype string", cli=False)
    dataset: str = option("cifar10", "dataset (preset default: quick fashion-mnist, cifar cifar10, imagenet "
                                     "imagefolder)", choices=DATASETS.names)
    data_dir: str | None = option(None, "folder with the dataset files", resume_may_change=True)
    split_seed: int = option(0, "seed of the supernet-train / search-validation split (train_on=train-half)",
                             cli=False)
    image_size: int | None = option(None, "image folders only (default 224)", min=1, cli=False)
    style: str = option("cifar", "network style: cifar or imagenet (spaces that have it)", choices=STYLES, cli=False)
    channels: int = option(36, "initial channels C", min=1)
    layers: int = option(20, "DARTS: number of cells", min=1)
    cells_per_stage: int = option(5, "NB201: cells per stage", min=1)
    auxiliary: bool = option(True, "use the auxiliary head (DARTS)", cli=False)
    aux_weight: float = option(0.4, "weight of the auxiliary head's loss (DARTS)", min=0)
    drop_path: float = option(0.2, "final drop-path probability, increased linearly over epochs (DARTS)",
                              min=0, lt=1)
    epochs: int = option(600, "training epochs", min=1)
    batch_size: int = option(96, "global batch size (split across torchrun ranks)", min=1)
    lr: float = option(0.025, "initial learning rate", gt=0)
    lr_min: float = option(0.0, "final learning rate of the cosine schedule", min=0, cli=False)
    momentum: float = option(0.9, "SGD momentum", min=0, cli=False)
    weight_decay: float = option(3e-4, "weight decay", min=0)
    nesterov: bool = option(False, "Nesterov momentum", cli=False)
    schedule: str = option("cosine", "cosine or linear (GeNAS ImageNet) learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: int = option(0, "linear warm-up epochs", min=0)
    label_smoothing: float = option(0.0, "label smoothing of the training loss", min=0, lt=1)
    cutout: int = option(16, "cutout square side in pixels (0 = off)", min=0)
    grad_clip: float = option(5.0, "gradient-norm clip; 0 disables", min=0, cli=False)
    train_on: str = option("full", "the whole official training set, or train-half (the supernet-train half)",
                           choices=("full", "train-half"), cli=False)
    max_train_images: int | None = option(None, "use only this many training images", min=1)
    holdout_fraction: float = option(0.0, "share of the training set held out (never trained on) to select best.pt; "
                                          "0: best.pt is the best epoch on the test set, labelled optimistic",
                                     min=0, lt=1)
    init_from_supernet: str | None = option(None, "a train-supernet (or genas run) folder: fine-tune the subnet "
                                                  "from its supernet weights, at the supernet's size (without "
                                                  "--genotype/--result: the winner of the run's one search)",
                                            resume_may_change=True)
    supernet_digest: str | None = option(None, "sha256 of the inherited supernet's final.pt", cli=False)
    supernet_affine: bool = option(False, "the inherited supernet's cell BNs are affine (NB201)", cli=False)
    test_images: int | None = option(None, "evaluate on the first K test images (all by default)", min=1, cli=False)
    eval_every: int = option(1, "evaluate every K epochs (and always after the last)", min=1, cli=False)
    seed: int = option(0, "training seed")
    save_every: int = option(0, "keep weights_epoch_K.pt every K epochs (0 = none)", min=0, cli=False)
    workers: int = option(2, "data-loading processes (image folders only)", min=0, cli=False, resume_may_change=True)
    precision: str = precision_option("evaluation stays fp32")
    channels_last: bool = channels_last_option()
    deterministic: bool = deterministic_option()

    def validate(self) -> "RetrainConfig":
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise GenasError(f"need 0 <= lr-min <= lr and lr > 0, got lr={self.lr}, lr-min={self.lr_min}")
        options.validate(self)
        if self.nesterov and self.momentum <= 0:
            raise GenasError("--nesterov needs a positive --momentum")
        space = get_space(self.space)
        if self.style not in space.network_styles:
            raise GenasError(f"the {self.space} space has no {self.style}-style networks; "
                             f"available: {', '.join(space.network_styles)}")
        if (self.auxiliary and not space.has_auxiliary) or (self.drop_path > 0 and not space.has_drop_path):
            raise GenasError(f"{self.space} networks have no auxiliary head and no drop path; "
                             "retrain them with auxiliary off and --drop-path 0")
        return self


# Each preset lists its differences from RetrainConfig's defaults (the DARTS CIFAR protocol).
RETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # a few CPU minutes on Fashion-MNIST
    "quick": dict(dataset="fashion-mnist", channels=8, layers=5, cells_per_stage=1, auxiliary=False, drop_path=0.0,
                  epochs=4, batch_size=128, lr=0.05, cutout=0, max_train_images=10000, holdout_fraction=0.05),
    # the DARTS CIFAR protocol (DARTS train.py)
    "cifar": dict(),
    # the GeNAS ImageNet protocol (official retrain_architecture/retrain.py)
    "imagenet": dict(dataset="imagefolder", image_size=224, style="imagenet", channels=48, layers=14, drop_path=0.0,
                     epochs=250, batch_size=1024, lr=0.5, weight_decay=3e-5, schedule="linear", warmup_epochs=5,
                     label_smoothing=0.1, cutout=0),
}

# per-space differences (NB201: no auxiliary head / drop path; the NAS-Bench-201 protocol for "cifar")
SPACE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "nb201": {
        "quick": dict(channels=16, cells_per_stage=1, weight_decay=5e-4),
        "cifar": dict(channels=16, cells_per_stage=5, auxiliary=False, drop_path=0.0, epochs=200,
                      batch_size=256, lr=0.1, lr_min=0.0, nesterov=True, weight_decay=5e-4, cutout=0),
    },
}


def resolve_genotype(space_name: str, text: str) -> tuple[int, ...]:
    """Genotype of a canonical string, or of a published name of the space (e.g. ``DARTS_V2``)."""
    return spaces.resolve_genotype(space_name, text, "retraining")


def retrain_config(preset: str = "quick", **overrides) -> RetrainConfig:
    """The config of a named preset with ``overrides`` (``None`` values are ignored).

    The genotype is stored in canonical form. Under the ``imagenet`` preset, ``channels`` defaults
    to the published width of a published architecture (``darts_genotypes.IMAGENET_CHANNELS``).
    """
    if preset not in RETRAIN_PRESETS:
        raise GenasError(f"unknown retrain preset {preset!r}; available: {', '.join(RETRAIN_PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(RetrainConfig)}
    if unknown:
        raise GenasError(f"unknown retrain option(s) {sorted(unknown)}")
    if overrides.get("init_from_supernet"):  # the supernet's size, data and digest (genas.train.finetune)
        from .finetune import supernet_settings

        overrides = supernet_settings(overrides["init_from_supernet"], overrides)
    space_name = SPACES.check(overrides.get("space", RetrainConfig.space))
    space = get_space(space_name)
    if preset == "imagenet" and "imagenet" not in space.network_styles:
        raise GenasError(f"the imagenet preset needs ImageNet-style networks, which the {space_name} space lacks; "
                         f"use --space darts")
    if overrides.get("genotype"):
        genotype = resolve_genotype(space_name, overrides["genotype"])
        overrides["genotype"] = space.format(genotype)
        if preset == "imagenet" and "channels" not in overrides:
            from ..spaces.darts_genotypes import IMAGENET_CHANNELS, published_name

            width = IMAGENET_CHANNELS.get(published_name(genotype) or "")
            overrides["channels"] = width
    return options.resolve(RetrainConfig, preset, RETRAIN_PRESETS, {**overrides, "preset": preset},
                           extra=[SPACE_PRESETS.get(space_name, {}).get(preset, {})],
                           what="retrain preset").validate()


def load_retrain_config(out_dir: str | Path) -> RetrainConfig:
    """The resolved config stored in a retrain folder."""
    return from_dict(RetrainConfig, load_json(Path(out_dir) / CONFIG))


def lr_at(cfg: RetrainConfig, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based): cosine or GeNAS-linear, times the warm-up factor."""
    E, e = cfg.epochs, epoch
    if cfg.schedule == "cosine":
        lr = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * e / E))
    elif cfg.schedule == "linear":
        tail = min(LINEAR_TAIL, E // 2)
        main = E - tail
        lr = cfg.lr * (main - e) / main if e < main else cfg.lr * (E - e) / (main * tail)
    else:
        raise GenasError(f"unknown schedule {cfg.schedule!r}")
    if e < cfg.warmup_epochs:
        lr *= (e + 1) / cfg.warmup_epochs
    return lr


def drop_path_at(cfg: RetrainConfig, epoch: int) -> float:
    """DARTS schedule: ``drop_path * epoch / epochs``."""
    return cfg.drop_path * epoch / cfg.epochs


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """DARTS Cutout on a batch (N, C, H, W): per image, zero a ``length`` x ``length`` square
    (clipped at the border) centred on a uniformly drawn pixel, in every channel."""
    if length <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator)
    cx = torch.randint(0, w, (b,), generator=generator)
    y0, x0 = (cy - length // 2)[:, None], (cx - length // 2)[:, None]
    rows, cols = torch.arange(h)[None], torch.arange(w)[None]
    in_rows = (rows >= y0) & (rows < y0 + length)  # N x H
    in_cols = (cols >= x0) & (cols < x0 + length)  # N x W
    mask = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # N x 1 x H x W
    return x.masked_fill(mask.to(x.device), 0.0)


def train_loss(logits: torch.Tensor, logits_aux: torch.Tensor | None, y: torch.Tensor,
               cfg: RetrainConfig) -> torch.Tensor:
    """Label-smoothed cross-entropy, plus ``aux_weight`` times that of the auxiliary logits."""
    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if logits_aux is not None:
        loss = loss + cfg.aux_weight * F.cross_entropy(logits_aux, y, label_smoothing=cfg.label_smoothing)
    return loss


__all__ = ["BEST", "CONFIG", "DATA", "LAST", "LOG", "RESULT", "RETRAIN_PRESETS", "RetrainConfig", "cutout", "drop_path_at",
           "load_retrain_config", "lr_at", "resolve_genotype", "retrain_config", "train_loss"]
