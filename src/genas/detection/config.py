"""The detector recipe behind ``genas detect train``: its config and presets.

Presets (each the differences from :class:`DetectConfig`'s defaults, which are the ``quick`` recipe):

* ``tiny``: seconds on a CPU, for tests and CI (an NB201 C=4 backbone, 16 FPN channels, a handful
  of 64-px scenes); it checks the mechanics, its AP means nothing.
* ``quick``: a few CPU minutes on the embedded 128-px scenes: RetinaNet on a from-scratch NB201
  backbone (NAS-Bench-201's best CIFAR-10 cell, C=16, N=2, CIFAR-style with the stem brought to
  stride 8), a 3-level FPN (P3-P5) with 64 channels, a GroupNorm head, anchors of 2x the stride,
  AdamW 1e-3 with 100 linear warm-up steps and a cosine decay, batch 8, one pass over the 6,000
  train scenes (750 steps), horizontal flips, images kept at their size (``min_size = max_size =
  128``): AP 18.3 on the embedded scenes in about 5 CPU minutes. An ImageNet-style DARTS backbone
  (``--space darts --style imagenet --genotype NAME``, C=16, 8 cells) costs ~1.3x more per image
  on a CPU and reached AP 8.3 with the same schedule.
* ``coco``: Detectron2's RetinaNet 1x schedule and input sizes, for GPU users (documented, not run
  here): 90k iterations at batch 16 = 12 epochs of COCO train2017 (118k images), SGD 0.01, momentum
  0.9, wd 1e-4, 1000 linear warm-up iterations from 0.001x, x0.1 at 60k and 80k (2/3 and 8/9 of
  the run), shorter side 800 (longer at most 1333), flips, P3-P7 with 256 channels, P6 from C5,
  anchors 4x the stride at 3 scales x 3 ratios, no head normalisation, frozen BN and frozen stem +
  first stage (FREEZE_AT 2), a backbone loaded from a ``genas retrain --preset imagenet`` run
  (``--backbone-run``), score threshold 0.05, NMS 0.5, 1000 candidates per level, 100 detections.

Every rate is a pure function of the global step, so a resumed run continues exactly.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import options
from ..engine import channels_last_option, deterministic_option, precision_option
from .. import spaces
from ..errors import GenasError
from ..io import load_json
from ..options import from_dict, option
from ..spaces import SPACES, get_space

CONFIG, DATA, LOG, CHECKPOINT, FINAL, RESULT = ("config.json", "data.json", "log.jsonl", "checkpoint.pt", "final.pt",
                                                "result.json")
METRICS, PREDICTIONS = "metrics.json", "predictions.json"
DETECTORS = ("retinanet", "fcos")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")
STEP_DECAYS = (2 / 3, 8 / 9)  # Detectron2 1x: x0.1 at 60k and 80k of 90k iterations
# the quick preset's cell: NAS-Bench-201's best CIFAR-10 cell (3x3 convs on every path, one skip)
QUICK_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _floats(text: str) -> tuple[float, ...] | None:
    if text.strip().lower() in ("", "auto", "none"):
        return None
    return tuple(float(t) for t in text.split(",") if t.strip())


@dataclass
class DetectConfig:
    """Everything that determines a detector training run (defaults: the ``quick`` recipe)."""

    preset: str = option("quick", "recipe preset", cli=False)
    # backbone
    space: str = option("nb201", "search space of the backbone genotype", choices=SPACES.names)
    genotype: str = option(QUICK_CELL, "backbone genotype: a canonical string or a published name")
    style: str = option("cifar", "backbone network style: cifar or imagenet (spaces that have it)",
                        choices=("cifar", "imagenet"))
    channels: int = option(16, "backbone initial channels C", min=2)
    layers: int = option(8, "DARTS: backbone cells", min=3)
    cells_per_stage: int = option(2, "NB201: backbone cells per stage", min=1)
    cifar_stem_stride: int = option(8, "CIFAR-style backbones: stride reached after the stem (stem conv at "
                                       "stride 2 plus a max-pool), so the maps land at strides 8/16/32",
                                    min=1, max=8)
    backbone_run: str | None = option(None, "a `genas retrain` run folder whose final weights initialise the "
                                            "backbone (classifier and auxiliary head dropped); its architecture "
                                            "replaces the backbone options")
    frozen_stages: int = option(0, "no gradient for the stem (1) and the first K-1 stages (K up to 4)", min=0, max=4)
    frozen_bn: bool = option(False, "replace the backbone's BatchNorms by frozen ones (fine-tuning)")
    # detector
    detector: str = option("retinanet", "detector", choices=DETECTORS)
    fpn_channels: int = option(64, "FPN (and head) channels", min=1)
    fpn_levels: int = option(3, "FPN levels: 3 (P3-P5), 4 (+P6 by pooling) or 5 (+P6, P7)", min=3, max=5)
    p6_from: str = option("c5", "5 levels: P6 from the backbone's C5 (RetinaNet) or from P5", choices=("c5", "p5"))
    head_norm: str = option("group", "head normalisation: group (GroupNorm) or none (RetinaNet only)",
                            choices=("group", "none"))
    anchor_scale: float = option(2.0, "RetinaNet anchor size in units of the level's stride (paper: 4)", gt=0)
    min_size: int = option(128, "shorter image side after resizing (torchvision's default 800 upscales small "
                                "images)", min=1)
    max_size: int = option(128, "longest image side after resizing", min=1)
    image_mean: tuple[float, ...] | None = option(None, "per-channel mean (0-1); default: the backbone run's, else "
                                                        "estimated from 256 training images", parse=_floats)
    image_std: tuple[float, ...] | None = option(None, "per-channel std (0-1); default as --image-mean",
                                                 parse=_floats)
    score_thresh: float = option(0.05, "minimum score of a detection", min=0, lt=1)
    nms_thresh: float = option(0.5, "NMS IoU threshold", gt=0, max=1)
    detections_per_img: int = option(100, "detections kept per image (COCO scores at most 100)", min=1, max=100)
    topk_candidates: int = option(1000, "candidates per level before NMS", min=1)
    # data
    data: str | None = option(None, "a `genas detect make-data` folder (train/, train.json, val/, val.json)",
                              resume_may_change=True)
    train_images: str | None = option(None, "folder of the training images", resume_may_change=True)
    train_annotations: str | None = option(None, "COCO instances JSON of the training images",
                                           resume_may_change=True)
    val_images: str | None = option(None, "folder of the validation images", resume_may_change=True)
    val_annotations: str | None = option(None, "COCO instances JSON of the validation images",
                                         resume_may_change=True)
    max_train_images: int | None = option(None, "train on the first K training images only", min=1)
    max_val_images: int | None = option(None, "evaluate on the first K validation images only", min=1)
    hflip: bool = option(True, "random horizontal flips", cli=False)
    # optimisation
    epochs: int = option(1, "training epochs", min=1)
    batch_size: int = option(8, "global batch size (split across torchrun ranks)", min=1)
    optimizer: str = option("adamw", "optimizer", choices=OPTIMIZERS)
    lr: float = option(1e-3, "peak learning rate", gt=0)
    momentum: float = option(0.9, "SGD momentum", min=0, lt=1)
    weight_decay: float = option(1e-4, "weight decay", min=0)
    schedule: str = option("cosine", "after warm-up: cosine to 0, or step (x0.1 at 2/3 and 8/9 of the run)",
                           choices=SCHEDULES)
    warmup_steps: int = option(100, "linear warm-up steps", min=0)
    warmup_factor: float = option(0.001, "learning-rate factor at step 0 of the warm-up", gt=0, max=1)
    grad_clip: float = option(10.0, "gradient-norm clip; 0 disables", min=0)
    seed: int = option(0, "training seed (initial weights, data order, flips)")
    checkpoint_every: int = option(0, "also checkpoint every K steps inside an epoch (0 = after each epoch only)",
                                   min=0)
    eval_every: int = option(0, "evaluate every K epochs (0 = after the last only)", min=0)
    workers: int = option(0, "data-loading processes", min=0, resume_may_change=True)
    precision: str = precision_option("evaluation runs in fp32")
    channels_last: bool = channels_last_option()
    deterministic: bool = deterministic_option()

    def validate(self) -> "DetectConfig":
        options.validate(self)
        space = get_space(self.space)
        if self.style not in space.network_styles:
            raise GenasError(f"the {self.space} space has no {self.style}-style networks; "
                             f"available: {', '.join(space.network_styles)}")
        if self.cifar_stem_stride not in (1, 2, 4, 8):
            raise GenasError(f"--cifar-stem-stride must be 1, 2, 4 or 8, got {self.cifar_stem_stride}")
        if self.max_size < self.min_size:
            raise GenasError(f"--max-size {self.max_size} must be >= --min-size {self.min_size}")
        if self.detector == "fcos" and self.head_norm != "group":
            raise GenasError("FCOS heads always use GroupNorm; drop --head-norm none")
        if (self.image_mean is None) != (self.image_std is None):
            raise GenasError("give both --image-mean and --image-std, or neither")
        if self.image_mean is not None:
            if len(self.image_mean) != len(self.image_std) or len(self.image_mean) not in (1, 3):
                raise GenasError(f"--image-mean and --image-std need 1 (grayscale) or 3 (RGB) values each, got "
                                 f"{len(self.image_mean)} and {len(self.image_std)}")
            if min(self.image_std) <= 0 or not all(map(math.isfinite, self.image_mean + self.image_std)):
                raise GenasError("--image-std values must be positive and every value finite")
        explicit = [self.train_images, self.train_annotations, self.val_images, self.val_annotations]
        if self.data is not None and any(v is not None for v in explicit):
            raise GenasError("give either --data DIR or the four --train-images/--train-annotations/--val-images/"
                             "--val-annotations, not both")
        if self.data is None and not all(v is not None for v in explicit):
            raise GenasError("detection needs data: --data DIR (from `genas detect make-data`) or all of "
                             "--train-images, --train-annotations, --val-images and --val-annotations")
        if self.backbone_run is None:
            resolve_genotype(self.space, self.genotype)
            if self.frozen_bn or self.frozen_stages:  # frozen random weights stay random (BN: the identity)
                raise GenasError("--frozen-bn and --frozen-stages freeze loaded classification weights: pass "
                                 "--backbone-run RUN (a `genas retrain` folder), or train from scratch with "
                                 "--no-frozen-bn --frozen-stages 0")
        else:
            from .backbone import retrain_run_architecture, retrain_weights_path

            retrain_run_architecture(self.backbone_run)  # a bad run fails here, before any data is read
            retrain_weights_path(self.backbone_run)
        return self

    def paths(self) -> dict[str, Path]:
        from .data import layout

        if self.data is not None:
            return layout(self.data)
        return dict(train_images=Path(self.train_images), train_annotations=Path(self.train_annotations),
                    val_images=Path(self.val_images), val_annotations=Path(self.val_annotations))


DETECT_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(space="nb201", genotype="|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|"
                                         "nor_conv_1x1~1|nor_conv_3x3~2|", style="cifar", channels=4,
                 cells_per_stage=1, fpn_channels=16, min_size=64, max_size=64, epochs=2, batch_size=4,
                 max_train_images=16, warmup_steps=2),
    "quick": dict(),
    "coco": dict(space="darts", genotype="FLATNESS_CIFAR10", style="imagenet", channels=48, layers=14,
                 batch_size=16, frozen_stages=2, frozen_bn=True, fpn_channels=256, fpn_levels=5,
                 p6_from="c5", head_norm="none", anchor_scale=4.0, min_size=800, max_size=1333, epochs=12,
                 optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, schedule="step", warmup_steps=1000,
                 warmup_factor=0.001, grad_clip=0.0, workers=4, checkpoint_every=5000),
}


def resolve_genotype(space_name: str, text: str) -> tuple[int, ...]:
    """Genotype of a canonical string or a published name of the space (:func:`genas.spaces.resolve_genotype`)."""
    return spaces.resolve_genotype(space_name, text, "the backbone")


def detect_config(preset: str = "quick", **overrides) -> DetectConfig:
    """The config of a named preset with ``overrides`` (``None`` values are ignored)."""
    if preset not in DETECT_PRESETS:
        raise GenasError(f"unknown detect preset {preset!r}; available: {', '.join(DETECT_PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(DetectConfig)}
    if unknown:
        raise GenasError(f"unknown detect option(s) {sorted(unknown)}")
    values = {**overrides, "preset": preset}
    for key in ("image_mean", "image_std"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return options.resolve(DetectConfig, preset, DETECT_PRESETS, values, what="detect preset").validate()


def load_detect_config(out_dir: str | Path) -> DetectConfig:
    values = dict(load_json(Path(out_dir) / CONFIG))
    for key in ("image_mean", "image_std"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    return from_dict(DetectConfig, values)


def lr_at(cfg: DetectConfig, step: int, total: int) -> float:
    """Learning rate of global ``step`` (0-based) of ``total``: linear warm-up from ``warmup_factor``,
    then cosine to 0 or Detectron2's steps."""
    if step < cfg.warmup_steps:
        alpha = step / cfg.warmup_steps
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    else:
        warm = 1.0
    if cfg.schedule == "cosine":
        w = min(cfg.warmup_steps, total - 1) if total > 1 else 0
        t = (step - w) / max(total - w, 1) if step >= w else 0.0
        base = 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))
    else:
        base = 0.1 ** sum(step >= int(f * total) for f in STEP_DECAYS)
    return cfg.lr * warm * base


__all__ = ["CHECKPOINT", "CONFIG", "DATA", "DETECT_PRESETS", "DETECTORS", "DetectConfig", "FINAL", "LOG", "METRICS",
           "PREDICTIONS", "RESULT", "detect_config", "load_detect_config", "lr_at", "resolve_genotype"]
