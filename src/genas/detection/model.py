"""RetinaNet and FCOS (torchvision) on a genas cell backbone, with the settings small images need.

torchvision's defaults are made for COCO-size photographs; each one that would silently hurt a
run on other data is set from the config instead: ``min_size`` / ``max_size`` (the default 800
upscales a 128-px image 6x), ``image_mean`` / ``image_std`` with exactly as many values as the
images have channels (three values turn a grayscale image into three channels without a word),
``detections_per_img`` (default 300 in RetinaNet; COCO scores at most 100) and P6's input
(:class:`~genas.detection.backbone.CellFPNBackbone`).
"""
from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection._utils import BoxLinearCoder
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSClassificationHead, FCOSHead, FCOSRegressionHead
from torchvision.models.detection.retinanet import RetinaNetHead

from .. import seeding
from ..errors import GenasError
from ..spaces import NetworkSpec, get_space
from .backbone import (CellFeatures, CellFPNBackbone, freeze, load_backbone_weights, retrain_run_architecture,
                       retrain_weights)
from .config import DetectConfig, resolve_genotype


def architecture(cfg: DetectConfig) -> dict:
    """The backbone architecture: from ``cfg``, or from ``cfg.backbone_run``'s retrain config."""
    if cfg.backbone_run is None:
        return dict(space=cfg.space, genotype=cfg.genotype, style=cfg.style, channels=cfg.channels,
                    layers=cfg.layers, cells_per_stage=cfg.cells_per_stage, in_channels=None, mean=None, std=None)
    return retrain_run_architecture(cfg.backbone_run)


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(math.gcd(32, channels), channels)


class _FCOSHead(FCOSHead):
    """torchvision's FCOS head with GroupNorm groups that divide the width (its default, 32 groups,
    needs a multiple of 32 channels)."""

    def __init__(self, channels: int, num_classes: int):
        nn.Module.__init__(self)
        self.box_coder = BoxLinearCoder(normalize_by_size=True)
        self.classification_head = FCOSClassificationHead(channels, 1, num_classes, norm_layer=_group_norm)
        self.regression_head = FCOSRegressionHead(channels, 1, norm_layer=_group_norm)


def build_detector(cfg: DetectConfig, num_classes: int, in_channels: int, mean, std) -> nn.Module:
    """The detector of ``cfg`` with seeded initial weights (and the backbone run's weights)."""
    arch = architecture(cfg)
    if arch.get("in_channels") not in (None, in_channels):
        raise GenasError(f"the backbone run {cfg.backbone_run} was trained on {arch['in_channels']}-channel images; "
                         f"the detection data has {in_channels}")
    if len(mean) != in_channels or len(std) != in_channels:
        raise GenasError(f"image mean/std have {len(mean)}/{len(std)} values but the images have {in_channels} "
                         f"channel(s)")
    space = get_space(arch["space"])
    genotype = resolve_genotype(arch["space"], arch["genotype"])
    spec = NetworkSpec(channels=arch["channels"], cells_per_stage=arch["cells_per_stage"], layers=arch["layers"],
                       num_classes=10, in_channels=in_channels, style=arch["style"], auxiliary=False)
    with torch.random.fork_rng(devices=[]):  # built on the CPU: no GPU generator to fork
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 7))
        try:
            net = space.build_network(genotype, spec)
        except ValueError as exc:
            raise GenasError(f"cannot build the {arch['space']} backbone: {exc}") from None
        if cfg.backbone_run is not None:
            state, path = retrain_weights(cfg.backbone_run)
            load_backbone_weights(net, state, path)
        features = CellFeatures(net, cfg.cifar_stem_stride)
        freeze(features, cfg.frozen_stages, cfg.frozen_bn)
        backbone = CellFPNBackbone(features, cfg.fpn_channels, cfg.fpn_levels, cfg.p6_from)
        common = dict(min_size=cfg.min_size, max_size=cfg.max_size, image_mean=list(mean), image_std=list(std),
                      score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh,
                      detections_per_img=cfg.detections_per_img, topk_candidates=cfg.topk_candidates)
        ch = cfg.fpn_channels
        if cfg.detector == "retinanet":
            sizes = tuple(tuple(cfg.anchor_scale * s * 2 ** (k / 3) for k in range(3)) for s in backbone.strides)
            anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
            norm = partial(_group_norm) if cfg.head_norm == "group" else None
            head = RetinaNetHead(ch, anchors.num_anchors_per_location()[0], num_classes, norm_layer=norm)
            model = RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, **common)
        else:
            anchors = AnchorGenerator(tuple((float(s),) for s in backbone.strides), ((1.0,),) * len(backbone.strides))
            head = _FCOSHead(ch, num_classes)
            model = FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **common)
    model.arch = arch
    return model


def backbone_cost(model: nn.Module, in_channels: int, size: int) -> dict:
    """Parameters and MACs (conv + linear) of the backbone alone and of the whole detector, at one
    ``size`` x ``size`` image (the detector's MACs cover backbone, FPN and head, not NMS)."""
    from torch.utils.flop_counter import FlopCounterMode

    features = model.backbone.features
    params = sum(p.numel() for n, p in features.body.named_parameters() if not n.startswith(("classifier.",
                                                                                              "auxiliary_head.")))
    total = sum(p.numel() for p in model.parameters())
    was = model.training
    model.eval()
    x = torch.zeros(1, in_channels, size, size, device=next(model.parameters()).device)
    out = {}
    with torch.no_grad():
        for name, fn in (("backbone_macs", lambda: features(x)),
                         ("detector_macs", lambda: model.head(list(model.backbone(x).values())))):
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
            out[name] = counter.get_total_flops() // 2
    model.train(was)
    return dict(backbone_params=params, detector_params=total, **out)


__all__ = ["architecture", "backbone_cost", "build_detector"]
