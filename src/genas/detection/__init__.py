"""Transfer to object detection: any genas genotype network as a RetinaNet / FCOS backbone.

* :mod:`.backbone`: the adaptor (stem and cells, the last cell of each stride 8/16/32) + FPN, and
  loading classification weights from a ``genas retrain`` run;
* :mod:`.data`: COCO-format datasets from disk, their validation, and the embedded scene set;
* :mod:`.model`: RetinaNet / FCOS (torchvision) with settings that fit small images;
* :mod:`.train`: ``genas detect train`` / ``eval`` in a run folder; :mod:`.evaluate`: COCO scores
  with faster-coco-eval.

Importing this package does not import torch.
"""
from __future__ import annotations

from .config import DETECT_PRESETS, DetectConfig, detect_config


def train_detector(*args, **kwargs):
    """:func:`genas.detection.train.train_detector` (imports torch when called)."""
    from .train import train_detector as run

    return run(*args, **kwargs)


def evaluate_run(*args, **kwargs):
    """:func:`genas.detection.train.evaluate_run` (imports torch when called)."""
    from .train import evaluate_run as run

    return run(*args, **kwargs)


__all__ = ["DETECT_PRESETS", "DetectConfig", "detect_config", "evaluate_run", "train_detector"]
