"""Stand-alone re-training of one found cell from scratch: the recipe behind ``genas retrain``.

The recipe (GENAS_SPEC.md section 6; DARTS ``train.py`` for CIFAR; GeNAS
``retrain_architecture/retrain.py`` for ImageNet): SGD with momentum, a per-epoch cosine or
"linear" learning rate with optional linear warm-up, label smoothing in the training loss only
(validation is plain cross-entropy), an auxiliary head weighted 0.4, cutout, drop path with the
DARTS schedule ``drop_path_prob = drop_path * epoch / epochs``, and gradient-norm clipping.

Presets (:func:`retrain_config`):

* ``quick``: Fashion-MNIST, minutes on a CPU (DARTS C=8, 5 cells; NB201 C=16, N=1; 4 epochs on
  10k images; no auxiliary head -- 28x28 inputs are too small for it -- no cutout, no drop path).
* ``cifar``: the DARTS CIFAR protocol (600 epochs, C=36, 20 cells, batch 96, lr 0.025 cosine to 0,
  wd 3e-4, cutout 16, drop path 0.2, auxiliary 0.4, clip 5). For the NB201 space it is the
  NAS-Bench-201 protocol instead (200 epochs, C=16, N=5, batch 256, lr 0.1 Nesterov cosine,
  wd 5e-4; NB201 networks have no auxiliary head and no drop path).
* ``imagenet``: the GeNAS ImageNet protocol (250 epochs, C=48 or the published per-architecture
  width, 14 cells, batch 1024, lr 0.5 linear with 5 warm-up epochs, wd 3e-5, label smoothing 0.1,
  auxiliary 0.4, clip 5, no cutout, drop path 0). DARTS space only.

The linear schedule, generalised from the GeNAS one (E = 250, T = 5): with T = min(5, E // 2)
tail epochs, ``lr(e) = lr * (E - T - e) / (E - T)`` for ``e < E - T`` and
``lr(e) = lr * (E - e) / ((E - T) * T)`` for the last T epochs; E = 250 gives exactly the spec's
``0.5 (245 - e) / 245`` and ``0.5 (250 - e) / (245 * 5)``. The cosine schedule is
``lr_min + (lr - lr_min) (1 + cos(pi e / E)) / 2`` (epoch 0 uses ``lr``). Warm-up multiplies
either by ``(e + 1) / warmup_epochs`` for ``e < warmup_epochs``. The rate is set once at the start
of each epoch, a pure function of the epoch (nothing to restore on resume).

Run folder (only rank 0 writes):

* ``config.json``  the resolved :class:`RetrainConfig`
* ``log.jsonl``    one line per epoch: lr, drop-path probability, train loss/acc, test loss and
                   top-1/top-5 (when evaluated), seconds, images/s
* ``last.pt``      full state after the last finished epoch (model, optimizer, epoch, RNG, best
                   so far), for ``--resume``
* ``best.pt``      the model ``state_dict`` of the epoch with the best test top-1
* ``weights_epoch_K.pt``  optional snapshots every ``save_every`` epochs
* ``result.json``  written last: best and final top-1/top-5, params (auxiliary head excluded),
                   MACs, genotype, seconds

Randomness per epoch (data order, cutout squares, drop-path masks) is derived from
(seed, epoch, rank), so a run resumed from ``last.pt`` ends with the same weights as an
uninterrupted one (bitwise on CPU). Under ``torchrun`` the global batch is split across ranks
(DDP; ``find_unused_parameters`` only when a probe finds parameters without gradient) and the
test set is evaluated in shards whose counts are summed, so every rank reports the same numbers.

Differences from the official code, on purpose: data augmentation is the dataset's own (random
crop + flip for the in-memory sets; torchvision ``RandomResizedCrop`` + flip + mean/std
normalisation for image folders, not the GeNAS cv2 crop + PCA lighting without normalisation);
epoch e uses the cosine value at e (DARTS calls ``scheduler.step()`` at the start of the epoch,
which gives the same under the PyTorch of its time but skips the first value on current PyTorch);
cutout of odd length ``L`` covers L x L pixels (DARTS: (L-1) x (L-1)). Finding parameters without
gradient (``probe_unused``) matters for NB201 cells with dead edges; valid DARTS cells use every op.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import seeding
from ..checkpoint import append_jsonl, load_torch, read_jsonl, save_json, save_torch, write_jsonl
from ..config import from_dict, load_json, to_dict
from ..data import DATASETS, load_data
from ..distributed import DistContext, setup, teardown
from ..errors import GenasError
from ..spaces import get_space, list_spaces
from .cost import count_macs, count_params
from .standalone import train_indices
from .step import sgd_step

CONFIG, LOG, LAST, BEST, RESULT = "config.json", "log.jsonl", "last.pt", "best.pt", "result.json"
LINEAR_TAIL = 5  # GeNAS: the last 5 epochs decay from lr/245 towards 0
STYLES = ("cifar", "imagenet")
SCHEDULES = ("cosine", "linear")
# config fields that may differ when resuming (they do not change what is computed)
RESUME_MAY_CHANGE = ("data_dir", "workers")


@dataclass
class RetrainConfig:
    """Everything that determines a stand-alone re-training run (defaults: the DARTS CIFAR protocol)."""

    preset: str = "cifar"
    space: str = "darts"
    genotype: str = ""  # canonical string: DARTS ``Genotype(...)`` or NB201 ``|op~0|+...``
    dataset: str = "cifar10"
    data_dir: str | None = None
    split_seed: int = 0  # seed of the supernet-train / search-validation split (train_on="train-half")
    image_size: int | None = None  # image folders only (default 224)
    style: str = "cifar"  # DARTS: "cifar" (NetworkCIFAR) or "imagenet" (NetworkImageNet); NB201 ignores it
    channels: int = 36
    layers: int = 20  # DARTS: cells (two of them reductions)
    cells_per_stage: int = 5  # NB201: cells per stage
    auxiliary: bool = True  # DARTS auxiliary head (after the second reduction cell)
    aux_weight: float = 0.4
    drop_path: float = 0.2  # final drop-path probability; epoch e uses drop_path * e / epochs
    epochs: int = 600
    batch_size: int = 96  # global; divided across distributed ranks
    lr: float = 0.025
    lr_min: float = 0.0  # cosine schedule only
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = False
    schedule: str = "cosine"  # "cosine" or "linear" (GeNAS ImageNet)
    warmup_epochs: int = 0
    label_smoothing: float = 0.0  # training loss only
    cutout: int = 16  # side of the cutout square in pixels; 0 = off
    grad_clip: float = 5.0  # 0 disables
    train_on: str = "full"  # the whole official training set, or "train-half" (the supernet-train half)
    max_train_images: int | None = None  # first K images of the (shuffled-once) training images
    test_images: int | None = None  # evaluate on the first K test images (None = all)
    eval_every: int = 1  # evaluate every K epochs (and always after the last)
    seed: int = 0
    save_every: int = 0  # keep weights_epoch_K.pt every K epochs (0 = none; last.pt is written every epoch)
    workers: int = 2  # data-loading processes (image folders only)

    def validate(self) -> "RetrainConfig":
        if self.space not in list_spaces():
            raise GenasError(f"unknown search space {self.space!r}; available: {', '.join(list_spaces())}")
        if self.dataset not in DATASETS:
            raise GenasError(f"unknown dataset {self.dataset!r}; available: {', '.join(DATASETS)}")
        if self.style not in STYLES:
            raise GenasError(f"--style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.schedule not in SCHEDULES:
            raise GenasError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.train_on not in ("full", "train-half"):
            raise GenasError(f"--train-on must be 'full' or 'train-half', got {self.train_on!r}")
        for name in ("channels", "layers", "cells_per_stage", "epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise GenasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_epochs", "cutout", "save_every", "workers"):
            if getattr(self, name) < 0:
                raise GenasError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for name in ("max_train_images", "test_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise GenasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.lr_min < 0 or self.lr_min > self.lr:
            raise GenasError(f"need 0 <= lr-min <= lr and lr > 0, got lr={self.lr}, lr-min={self.lr_min}")
        if self.momentum < 0 or self.weight_decay < 0 or self.grad_clip < 0 or self.aux_weight < 0:
            raise GenasError("--momentum, --weight-decay, --grad-clip and --aux-weight must be >= 0")
        if self.nesterov and self.momentum <= 0:
            raise GenasError("--nesterov needs a positive --momentum")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise GenasError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.drop_path < 1.0:
            raise GenasError(f"--drop-path must be in [0, 1), got {self.drop_path}")
        if self.space == "nb201" and (self.auxiliary or self.drop_path > 0):
            raise GenasError("NB201 networks have no auxiliary head and no drop path; "
                             "retrain them with auxiliary off and --drop-path 0")
        return self


# --- presets ----------------------------------------------------------------------------------------

RETRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # a few CPU minutes on Fashion-MNIST
    "quick": dict(dataset="fashion-mnist", style="cifar", channels=8, layers=5, cells_per_stage=1,
                  auxiliary=False, drop_path=0.0, epochs=4, batch_size=128, lr=0.05, lr_min=0.0,
                  weight_decay=3e-4, schedule="cosine", warmup_epochs=0, label_smoothing=0.0, cutout=0,
                  grad_clip=5.0, max_train_images=10000),
    # DARTS CIFAR protocol (DARTS train.py; GENAS_SPEC section 6, unverified for GeNAS itself)
    "cifar": dict(dataset="cifar10", style="cifar", channels=36, layers=20, auxiliary=True, aux_weight=0.4,
                  drop_path=0.2, epochs=600, batch_size=96, lr=0.025, lr_min=0.0, momentum=0.9,
                  weight_decay=3e-4, nesterov=False, schedule="cosine", warmup_epochs=0, label_smoothing=0.0,
                  cutout=16, grad_clip=5.0),
    # GeNAS ImageNet protocol (GENAS_SPEC section 6)
    "imagenet": dict(dataset="imagefolder", image_size=224, style="imagenet", channels=48, layers=14,
                     auxiliary=True, aux_weight=0.4, drop_path=0.0, epochs=250, batch_size=1024, lr=0.5,
                     lr_min=0.0, momentum=0.9, weight_decay=3e-5, nesterov=False, schedule="linear",
                     warmup_epochs=5, label_smoothing=0.1, cutout=0, grad_clip=5.0),
}

# per-space changes (NB201: no auxiliary head / drop path; the NAS-Bench-201 protocol for "cifar")
SPACE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "nb201": {
        "quick": dict(channels=16, cells_per_stage=1, weight_decay=5e-4),
        "cifar": dict(channels=16, cells_per_stage=5, auxiliary=False, drop_path=0.0, epochs=200,
                      batch_size=256, lr=0.1, lr_min=0.0, nesterov=True, weight_decay=5e-4, cutout=0),
    },
}


def published_name(genotype: Sequence[int]) -> str | None:
    """The name of a published DARTS-space architecture equal to ``genotype``, if any."""
    from ..spaces.darts_genotypes import GENOTYPES

    g = tuple(genotype)
    return next((name for name, value in GENOTYPES.items() if value == g), None)


def resolve_genotype(space_name: str, text: str) -> tuple[int, ...]:
    """Genotype of a canonical string (or, for DARTS, a published name such as ``DARTS_V2``)."""
    if not isinstance(text, str) or not text.strip():
        raise GenasError(f"retraining needs a {space_name} genotype string (--genotype)")
    space = get_space(space_name)
    if space_name == "darts" and "(" not in text:
        from ..spaces.darts_genotypes import GENOTYPES

        if text.strip().upper() in GENOTYPES:
            return GENOTYPES[text.strip().upper()]
    try:
        return space.parse(text)
    except ValueError as exc:
        extra = ""
        if space_name == "darts" and "(" not in text:
            from ..spaces.darts_genotypes import GENOTYPES

            extra = f" (or a published name: {', '.join(GENOTYPES)})"
        raise GenasError(f"bad {space_name} genotype: {exc}{extra}") from None


def retrain_config(preset: str = "quick", **overrides) -> RetrainConfig:
    """The config of a named preset with ``overrides`` (``None`` values are ignored).

    The genotype is stored in canonical form. For DARTS under the ``imagenet`` preset, ``channels``
    defaults to the published width of the architecture (``darts_genotypes.IMAGENET_CHANNELS``).
    """
    if preset not in RETRAIN_PRESETS:
        raise GenasError(f"unknown retrain preset {preset!r}; available: {', '.join(RETRAIN_PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(RetrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise GenasError(f"unknown retrain option(s) {sorted(unknown)}")
    space = overrides.get("space", RetrainConfig.space)
    if space not in list_spaces():
        raise GenasError(f"unknown search space {space!r}; available: {', '.join(list_spaces())}")
    if preset == "imagenet" and space != "darts":
        raise GenasError("the imagenet preset is the GeNAS DARTS-space protocol; use --space darts")
    values = dict(RETRAIN_PRESETS[preset], **SPACE_PRESETS.get(space, {}).get(preset, {}), preset=preset)
    values.update(overrides)
    if values.get("genotype"):
        genotype = resolve_genotype(space, values["genotype"])
        values["genotype"] = get_space(space).format(genotype)
        if preset == "imagenet" and "channels" not in overrides:
            from ..spaces.darts_genotypes import IMAGENET_CHANNELS

            values["channels"] = IMAGENET_CHANNELS.get(published_name(genotype) or "", values["channels"])
    return RetrainConfig(**values).validate()


def load_retrain_config(out_dir: str | Path) -> RetrainConfig:
    """The resolved config stored in a retrain folder."""
    return from_dict(RetrainConfig, load_json(Path(out_dir) / CONFIG))


# --- recipe pieces ----------------------------------------------------------------------------------

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


@torch.no_grad()
def eval_sums(net: torch.nn.Module, batches, device: torch.device) -> dict:
    """Summed plain cross-entropy, top-1 and top-5 hits and the image count over ``batches``."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    hits = torch.zeros(2, dtype=torch.int64, device=device)
    n = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        logits = net(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        match = top == y[:, None]
        hits[0] += match[:, 0].sum()
        hits[1] += match.any(1).sum()
        n += len(y)
    return dict(loss=loss_sum.item(), top1=int(hits[0].item()), top5=int(hits[1].item()), n=n)


def build_network(cfg: RetrainConfig, num_classes: int, in_channels: int) -> torch.nn.Module:
    """The stand-alone network of ``cfg.genotype``, with deterministic initial weights."""
    genotype = resolve_genotype(cfg.space, cfg.genotype)
    space = get_space(cfg.space)
    if cfg.space == "darts":
        kwargs = dict(C=cfg.channels, num_classes=num_classes, layers=cfg.layers, auxiliary=cfg.auxiliary,
                      in_channels=in_channels, drop_path_prob=0.0)
        kwargs.update(style=cfg.style)
    else:
        kwargs = dict(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, num_classes=num_classes,
                      in_channels=in_channels)
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 1))
        try:
            return space.build_network(genotype, **kwargs)
        except ValueError as exc:
            raise GenasError(f"cannot build the {cfg.space} network: {exc}") from None


def _forward(net, x: torch.Tensor, darts: bool):
    """(logits, aux logits or None) in training mode."""
    if darts:
        return net(x, return_aux=True)
    return net(x), None


def probe_unused(net: torch.nn.Module, input_shape: tuple[int, ...], darts: bool) -> list[str]:
    """One training-mode forward/backward of a copy on two blank images: the names of parameters
    that get no gradient (DDP then needs ``find_unused_parameters``). Inputs too small for the
    network (e.g. the auxiliary head on 28x28 images) become a :class:`GenasError`."""
    probe = copy.deepcopy(net).train()
    x = torch.zeros(2, *input_shape)
    with torch.random.fork_rng():
        try:
            logits, aux = _forward(probe, x, darts)
        except (RuntimeError, ValueError) as exc:
            size = "x".join(str(s) for s in input_shape)
            hint = ""
            if darts and getattr(net, "auxiliary", False):
                try:
                    probe(x)
                    hint = ("; the auxiliary head needs feature maps of 8x8 or more after the second reduction "
                            "cell (CIFAR-size 32x32 inputs); retrain with the auxiliary head off")
                except (RuntimeError, ValueError):
                    pass
            raise GenasError(f"the {'DARTS' if darts else 'NB201'} network cannot run on {size} images: "
                             f"{str(exc).splitlines()[0]}{hint}") from None
        loss = logits.sum() + (aux.sum() if aux is not None else 0.0)
        loss.backward()
    return [name for name, p in probe.named_parameters() if p.requires_grad and p.grad is None]


# --- the run ----------------------------------------------------------------------------------------

def _prepare(out: Path, cfg: RetrainConfig | None, resume: bool) -> tuple[RetrainConfig, int]:
    """Check the folder against ``resume``; return the config to use and the epoch to start from."""
    has_config = (out / CONFIG).exists()
    if not resume:
        if cfg is None:
            raise GenasError("retrain needs a config (or --resume to continue an existing run)")
        if has_config:
            raise GenasError(f"{out} already holds a retrain run; pass --resume to continue it or choose another -o")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise GenasError(f"{out} exists and is not an empty folder; choose another -o "
                             f"(or pass --resume to continue a retrain run)")
        return cfg, 0
    if not has_config:
        raise GenasError(f"cannot resume: {out} has no {CONFIG} (start a new run without --resume)")
    saved = load_retrain_config(out)
    if cfg is not None:
        mine, theirs = to_dict(cfg), to_dict(saved)
        diff = [k for k in mine if k not in RESUME_MAY_CHANGE and mine[k] != theirs[k]]
        if diff:
            k = diff[0]
            raise GenasError(f"{out} was started with {k}={theirs[k]!r}; cannot resume with {k}={mine[k]!r}")
        saved = dataclasses.replace(saved, **{k: getattr(cfg, k) for k in RESUME_MAY_CHANGE})
    if not (out / LAST).exists():
        return saved, 0  # killed before the first epoch finished: start over (initial weights are seeded)
    return saved, int(load_torch(out / LAST)["epoch"]) + 1


def retrain(cfg: RetrainConfig | None, out_dir: str | Path, resume: bool = False, device: str = "auto",
            progress: bool | None = None) -> dict:
    """Re-train ``cfg.genotype`` from scratch into ``out_dir`` (or continue it with ``resume``; then
    ``cfg`` may be ``None`` to use the stored config). Returns the result dict (``result.json``)."""
    out = Path(out_dir)
    ctx = setup(device)
    try:
        forks = [ctx.device.index or 0] if ctx.device.type == "cuda" else []
        with torch.random.fork_rng(devices=forks):  # per-epoch reseeding must not leak to the caller
            return _retrain(cfg, out, resume, ctx, progress)
    finally:
        teardown(ctx)


def _all_sum(ctx: DistContext, values: list[float]) -> list[float]:
    return [sum(col) for col in zip(*ctx.all_gather(values))]


def _metrics(sums: list[float], num_classes: int) -> dict:
    loss, top1, top5, n = sums
    if n == 0:
        return dict(test_loss=None, top1=None, top5=None)
    return dict(test_loss=loss / n, top1=top1 / n, top5=top5 / n if num_classes >= 5 else None)


def _retrain(cfg: RetrainConfig | None, out: Path, resume: bool, ctx: DistContext, progress: bool | None) -> dict:
    if resume and (out / RESULT).exists():
        return load_json(out / RESULT)
    cfg, start_epoch = _prepare(out, cfg, resume)
    cfg.validate()
    resolve_genotype(cfg.space, cfg.genotype)  # a clear error before any data is loaded
    darts = cfg.space == "darts"
    if cfg.batch_size % ctx.world:
        raise GenasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} distributed ranks")
    data = load_data(cfg.dataset, cfg.data_dir, cfg.split_seed, image_size=cfg.image_size, workers=cfg.workers)
    model = build_network(cfg, data.num_classes, data.in_channels)
    input_shape = (data.in_channels, data.image_size, data.image_size)
    unused = probe_unused(model, input_shape, darts)
    opt = torch.optim.SGD(model.parameters(), lr=lr_at(cfg, 0), momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    best = dict(top1=-1.0, top5=None, epoch=None)
    last_eval: dict = {}
    if start_epoch > 0:
        state = load_torch(out / LAST)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        best, last_eval = dict(state["best"]), dict(state["last_eval"])
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if start_epoch == 0 and not (out / CONFIG).exists():
            save_json(to_dict(cfg), out / CONFIG)
        if resume:  # drop log lines of epochs that the checkpoint does not contain
            write_jsonl([r for r in read_jsonl(out / LOG) if r.get("epoch", -1) < start_epoch], out / LOG)
    ctx.barrier()

    train_idx = train_indices(data, cfg)
    per_rank_batch = cfg.batch_size // ctx.world
    n_steps = (len(train_idx) // ctx.world) // per_rank_batch
    if n_steps == 0:
        raise GenasError(f"{len(train_idx)} training images are fewer than one batch of {cfg.batch_size}; "
                         f"lower --batch-size or raise --max-train-images")
    test_idx = list(range(len(data.test)))[: cfg.test_images]
    my_test_idx = test_idx[ctx.rank::ctx.world]

    model.to(ctx.device)
    if ctx.distributed:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=bool(unused))
    else:
        ddp = model
    hide_bar = True if (not ctx.is_main or progress is False) else (None if progress is None else False)
    session_seconds = 0.0

    for epoch in range(start_epoch, cfg.epochs):
        lr = lr_at(cfg, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        if darts:
            model.drop_path_prob = drop_path_at(cfg, epoch)
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.NOISE, epoch, ctx.rank, 2))  # drop-path masks
        cut_gen = torch.Generator().manual_seed(seeding.derive_seed(cfg.seed, seeding.NOISE, epoch, ctx.rank, 1))
        batches = data.train.batches(train_idx, per_rank_batch, train=True,
                                     seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch),
                                     shard=(ctx.rank, ctx.world))
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(batches, total=n_steps, desc=f"retrain {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=hide_bar, dynamic_ncols=True)
        for x, y in bar:
            if cfg.cutout > 0:
                x = cutout(x, cfg.cutout, cut_gen)
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            logits, logits_aux = _forward(ddp, x, darts)
            loss = train_loss(logits, logits_aux, y, cfg)
            sgd_step(loss, opt, model.parameters(), cfg.grad_clip)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        train_seconds = time.perf_counter() - t0
        ctx.broadcast_buffers(model)
        train_sums = _all_sum(ctx, [loss_sum.item(), correct.item(), seen])

        record = dict(epoch=epoch, lr=lr, drop_path_prob=drop_path_at(cfg, epoch) if darts else 0.0,
                      train_loss=train_sums[0] / max(train_sums[2], 1),
                      train_acc=train_sums[1] / max(train_sums[2], 1),
                      test_loss=None, top1=None, top5=None)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            model.eval()
            sums = eval_sums(model, data.test.batches(my_test_idx, 256, train=False), ctx.device)
            last_eval = _metrics(_all_sum(ctx, [sums["loss"], sums["top1"], sums["top5"], sums["n"]]),
                                 data.num_classes)
            record.update(last_eval)
            last_eval["epoch"] = epoch
        elapsed = time.perf_counter() - t0
        session_seconds += elapsed
        record.update(seconds=round(elapsed, 3), train_seconds=round(train_seconds, 3),
                      images_per_s=round(train_sums[2] / max(train_seconds, 1e-9), 1))
        improved = record["top1"] is not None and record["top1"] > best["top1"]
        if improved:
            best = dict(top1=record["top1"], top5=record["top5"], epoch=epoch)
        if ctx.is_main:
            if improved:
                save_torch(model.state_dict(), out / BEST)
            if cfg.save_every and (epoch + 1) % cfg.save_every == 0:
                save_torch(model.state_dict(), out / f"weights_epoch_{epoch + 1}.pt")
            save_torch(dict(model=model.state_dict(), optimizer=opt.state_dict(), epoch=epoch, lr=lr,
                            torch_rng=torch.get_rng_state(), best=best, last_eval=last_eval), out / LAST)
            append_jsonl(record, out / LOG)
            msg = f"retrain {epoch + 1}/{cfg.epochs}  lr {lr:.5f}  loss {record['train_loss']:.4f}"
            if record["top1"] is not None:
                msg += f"  top1 {record['top1']:.4f}" + (f"  top5 {record['top5']:.4f}" if record["top5"] is not None
                                                          else "")
            if progress is not False:
                tqdm.write(msg)
        ctx.barrier()

    final_state = model.state_dict()
    digests = ctx.agreed_digests(final_state)
    log = read_jsonl(out / LOG) if ctx.is_main else []
    model.eval()
    result = dict(
        space=cfg.space, genotype=cfg.genotype, style=cfg.style if darts else None, preset=cfg.preset,
        dataset=data.describe(), epochs=cfg.epochs,
        best_top1=best["top1"] if best["epoch"] is not None else None, best_top5=best["top5"],
        best_epoch=best["epoch"],
        final_top1=last_eval.get("top1"), final_top5=last_eval.get("top5"), final_test_loss=last_eval.get("test_loss"),
        test_images=len(test_idx), train_images=int(len(train_idx)),
        params=count_params(model, exclude="auxiliary"), params_total=count_params(model),
        macs=count_macs(model, input_shape),
        seconds=round(sum(r.get("seconds", 0.0) for r in log), 2) if ctx.is_main else None,
        seconds_this_session=round(session_seconds, 2),
        world_size=ctx.world, device=str(ctx.device), find_unused_parameters=bool(unused) and ctx.distributed,
        final_digest=digests[0], rank_digests=digests)
    if ctx.is_main:
        save_json(result, out / RESULT)
    ctx.barrier()
    return result


__all__ = ["RETRAIN_PRESETS", "RetrainConfig", "build_network", "cutout", "drop_path_at", "eval_sums",
           "load_retrain_config", "lr_at", "probe_unused", "resolve_genotype", "retrain", "retrain_config",
           "train_loss"]
