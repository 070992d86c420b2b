"""Any genas network as a multi-scale detection backbone: an adaptor plus torchvision's FPN.

torchvision's ``BackboneWithFPN`` / ``IntermediateLayerGetter`` read the outputs of named child
modules, which does not fit genas networks: DARTS cells take two inputs (the outputs of the two
previous cells) and sit in a ``ModuleList``. :class:`CellFeatures` runs the network's own stem and
cells the way its forward does and taps the last cell of each resolution (stride 8, 16, 32),
returning an ``OrderedDict``; :class:`CellFPNBackbone` puts ``torchvision.ops.FeaturePyramidNetwork``
on top and has the integer ``out_channels`` that ``RetinaNet`` / ``FCOS`` require.

Networks: the NAS-Bench-201 network (stem, three stages with residual reductions: the last cell of
each stage, C / 2C / 4C channels, its final BN-ReLU applied to the last map as the classifier
saw it), the DARTS CIFAR-style and ImageNet-style networks (the cell before each reduction cell
and the last cell: 4C / 8C / 16C channels). ImageNet-style networks reach stride 8 in their stem.
CIFAR-style networks keep full resolution in theirs (stages at strides 1 / 2 / 4, made for 32-px
images), so the adaptor runs the stem convolution at stride 2 and follows it with a max-pool to
reach ``cifar_stem_stride`` (8 by default; a ResNet stem does conv-s2 + pool-s2): no weight
changes shape, so classification weights still load. The classifier and the auxiliary head are
never run (their weights are dropped when loading a ``genas retrain`` run).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork, FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from ..engine.checkpoint import load_checkpoint, load_torch
from ..errors import GenasError
from ..io import load_json
from ..spaces.darts_net import NetworkCIFAR, NetworkImageNet, reduction_layers
from ..spaces.nb201_net import NB201Network
from ..spaces.ops import ResidualReduction

DROPPED = ("classifier.", "auxiliary_head.")  # classification-only weights, not part of a backbone


class CellFeatures(nn.Module):
    """Stem and cells of a genas network; ``forward(x) -> OrderedDict(c3, c4, c5)``.

    ``strides`` and ``channels`` state what each map is. ``stages()`` lists the modules of the
    stem and of each stage (for frozen stages).
    """

    def __init__(self, net: nn.Module, cifar_stem_stride: int = 8):
        super().__init__()
        if cifar_stem_stride not in (1, 2, 4, 8):
            raise GenasError(f"the CIFAR-style stem stride must be 1, 2, 4 or 8, got {cifar_stem_stride}")
        self.body = net
        self.net_style = None
        if isinstance(net, NB201Network):
            self.kind, self.net_style = "nb201", "cifar"
            reductions = [i for i, c in enumerate(net.cells) if isinstance(c, ResidualReduction)]
            self.taps = [r - 1 for r in reductions] + [len(net.cells) - 1]
            c = net.channels
            self.channels = [c, 2 * c, 4 * c]
        elif isinstance(net, (NetworkCIFAR, NetworkImageNet)):
            self.kind, self.net_style = "darts", "imagenet" if isinstance(net, NetworkImageNet) else "cifar"
            r1, r2 = reduction_layers(net.layers)
            if not 0 < r1 < r2:
                raise GenasError(f"a DARTS detection backbone needs at least 3 cells (two reductions and a cell "
                                 f"before them), got {net.layers}")
            self.taps = [r1 - 1, r2 - 1, net.layers - 1]
            self.channels = [net.multiplier * net.channels * m for m in (1, 2, 4)]
        else:
            raise GenasError(f"the detection adaptor knows NB201 and DARTS networks, not {type(net).__name__}")
        self.stem_pool: nn.Module = nn.Identity()
        if self.net_style == "cifar":
            base = 1
            if cifar_stem_stride > 1:
                net.stem[0].stride = (2, 2)
                base = 2
            if cifar_stem_stride > 2:
                k = cifar_stem_stride // 2
                self.stem_pool = nn.MaxPool2d(k + 1, stride=k, padding=k // 2)
                base = cifar_stem_stride
            self.strides = [base, 2 * base, 4 * base]
        else:
            self.strides = [8, 16, 32]
        self.body.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        net, out = self.body, OrderedDict()
        taps = {t: f"c{3 + k}" for k, t in enumerate(self.taps)}
        if self.kind == "nb201":
            x = self.stem_pool(net.stem(x))
            for i, cell in enumerate(net.cells):
                x = cell(x)
                if i in taps:
                    out[taps[i]] = x
            out["c5"] = net.lastact(out["c5"])
            return out
        if self.net_style == "imagenet":
            s0 = net.stem0(x)
            s1 = net.stem1(s0)
        else:
            s0 = s1 = self.stem_pool(net.stem(x))
        for i, cell in enumerate(net.cells):
            s0, s1 = s1, cell(s0, s1, 0.0)
            if i in taps:
                out[taps[i]] = s1
        return out

    def stages(self) -> list[list[nn.Module]]:
        """[stem modules], then the cells (and reduction blocks) feeding each tapped map."""
        net = self.body
        stem = [net.stem0, net.stem1] if self.net_style == "imagenet" else [net.stem]
        out, start = [stem], 0
        for t in self.taps:
            out.append(list(net.cells[start:t + 1]))
            start = t + 1
        if self.kind == "nb201":
            out[-1].append(net.lastact)
        return out


def freeze(features: CellFeatures, frozen_stages: int, frozen_bn: bool) -> None:
    """``frozen_stages`` k: no gradient for the stem (k >= 1) and the first k - 1 stages (Detectron2's
    FREEZE_AT); ``frozen_bn``: every backbone BatchNorm becomes a ``FrozenBatchNorm2d`` with its
    current statistics (for fine-tuning loaded weights with small per-device batches)."""
    if frozen_bn:
        _freeze_bn(features.body)
    for modules in features.stages()[:frozen_stages]:
        for m in modules:
            _freeze_bn(m)  # a frozen stage keeps its BN statistics too (Detectron2's FREEZE_AT)
            for p in m.parameters():
                p.requires_grad_(False)


def _freeze_bn(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            if child.affine:
                frozen.weight.copy_(child.weight.detach())
                frozen.bias.copy_(child.bias.detach())
            frozen.running_mean.copy_(child.running_mean)
            frozen.running_var.copy_(child.running_var)
            setattr(module, name, frozen)
        else:
            _freeze_bn(child)


class CellFPNBackbone(nn.Module):
    """:class:`CellFeatures` + ``FeaturePyramidNetwork``: ``OrderedDict`` p3..p5 (+ p6, p7), all with
    ``out_channels`` channels, fine to coarse, as torchvision's detectors take them.

    ``levels`` 3: P3-P5; 4: P6 by max-pooling P5 (``LastLevelMaxPool``); 5: P6-P7 as in RetinaNet,
    P6 from ``p6_from`` ("c5": the backbone's C5, the paper's choice, or "p5"). torchvision's
    ``LastLevelP6P7`` picks P5 by itself whenever C5 and the FPN have the same width, so the
    choice is set explicitly after construction.
    """

    def __init__(self, features: CellFeatures, out_channels: int, levels: int = 3, p6_from: str = "c5"):
        super().__init__()
        if levels not in (3, 4, 5):
            raise GenasError(f"FPN levels must be 3 (P3-P5), 4 (+P6) or 5 (+P6, P7), got {levels}")
        if p6_from not in ("c5", "p5"):
            raise GenasError(f"p6 source must be c5 or p5, got {p6_from!r}")
        self.features = features
        extra = None
        if levels == 4:
            extra = LastLevelMaxPool()
        elif levels == 5:
            extra = LastLevelP6P7(out_channels if p6_from == "p5" else features.channels[-1], out_channels)
            extra.use_P5 = p6_from == "p5"
        self.fpn = FeaturePyramidNetwork(features.channels, out_channels, extra_blocks=extra)
        self.out_channels = int(out_channels)
        self.levels = levels
        self.strides = features.strides + [features.strides[-1] * 2 ** k for k in range(1, levels - 2)]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.fpn(self.features(x))
        return OrderedDict((f"p{3 + i}", v) for i, v in enumerate(feats.values()))


# --- classification weights from a `genas retrain` run ----------------------------------------------

ARCH_KEYS = ("space", "genotype", "style", "channels", "layers", "cells_per_stage")


def retrain_run_architecture(run: str | Path) -> dict:
    """The architecture of a ``genas retrain`` run folder (its ``config.json``) and its data facts
    (``data.json``: channels, normalisation)."""
    run = Path(run)
    if not run.is_dir():
        raise GenasError(f"backbone run {run} does not exist or is not a folder")
    cfg = load_json(run / "config.json")
    if not isinstance(cfg, dict) or any(k not in cfg for k in ARCH_KEYS):
        raise GenasError(f"{run} is not a genas retrain run (its config.json lacks {', '.join(ARCH_KEYS)})")
    data = load_json(run / "data.json") if (run / "data.json").exists() else {}
    arch = {k: cfg[k] for k in ARCH_KEYS}
    arch.update(in_channels=data.get("in_channels"), mean=data.get("mean"), std=data.get("std"),
                num_classes=data.get("num_classes"))
    return arch


def retrain_weights_path(run: str | Path) -> Path:
    """The weights file of a finished retrain run: ``last.pt`` (``best.pt`` if only that exists); an
    unfinished run (no ``result.json``) is refused, since its weights are not the final ones."""
    run = Path(run)
    if not (run / "result.json").exists():
        raise GenasError(f"{run} is not a finished retrain run (no result.json); finish it with "
                         f"`genas retrain --resume -o {run}` first")
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            return run / name
    raise GenasError(f"{run} holds no weights (no last.pt or best.pt); finish the retrain run first")


def retrain_weights(run: str | Path) -> tuple[dict, Path]:
    """The final weights of a finished retrain run (see :func:`retrain_weights_path`)."""
    path = retrain_weights_path(run)
    if path.name == "last.pt":
        return load_checkpoint(path, ("model",))["model"], path
    return load_torch(path), path


def load_backbone_weights(net: nn.Module, state: dict, path: Path) -> int:
    """Load a classification ``state`` into ``net``: the classifier and auxiliary head dropped,
    everything else strict. A mismatch is one line naming the first differing key. Returns the
    number of tensors loaded."""
    if not isinstance(state, dict):
        raise GenasError(f"cannot load {path}: not a state dict")
    mine = {k: v for k, v in net.state_dict().items() if not k.startswith(DROPPED)}
    given = {k: v for k, v in state.items() if not str(k).startswith(DROPPED)}
    order = list(mine) + [k for k in given if k not in mine]
    for key in order:
        if key not in given:
            raise GenasError(f"cannot load {path}: it does not match the backbone (first differing key: {key}, "
                             f"missing from the checkpoint)")
        if key not in mine:
            raise GenasError(f"cannot load {path}: it does not match the backbone (first differing key: {key}, "
                             f"not in the network)")
        if not torch.is_tensor(given[key]) or given[key].shape != mine[key].shape:
            shape = tuple(given[key].shape) if torch.is_tensor(given[key]) else type(given[key]).__name__
            raise GenasError(f"cannot load {path}: it does not match the backbone (first differing key: {key}, "
                             f"shape {shape} vs {tuple(mine[key].shape)})")
    net.load_state_dict(given, strict=False)
    return len(given)


__all__ = ["CellFPNBackbone", "CellFeatures", "freeze", "load_backbone_weights", "retrain_run_architecture",
           "retrain_weights", "retrain_weights_path"]
