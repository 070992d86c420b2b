"""DARTS-space networks: the SPOS supernet and the stand-alone CIFAR / ImageNet networks.

Ops follow the DARTS ``operations.py`` (ReLU-conv-BN order, separable conv = (dw, pw, BN) twice,
dilated conv = dw dilated + pw + BN, FactorizedReduce for stride-2 skips). Module names:

* :class:`DARTSSupernet` (GeNAS ``train_supernet/super_model.py``): ``stem.{0,1}``,
  ``cells.i.preprocess{0,1}``, ``cells.i.edges.e.o.*`` for every edge ``e`` (0..13) and every op
  index ``o`` (0..7; pools are ``Sequential(pool, BN)``), ``classifier``.
* :class:`NetworkCIFAR` (DARTS ``model.py``): the same names with only the genotype's ops,
  ``cells.i.edges.e.*`` (no module for ``none`` edges), plus ``auxiliary_head``.

So supernet ``cells.i.edges.e.<op>.rest`` is network ``cells.i.edges.e.rest`` and a supernet
path can be copied into a stand-alone network (:meth:`DARTSSupernet.extract`, which builds the
network with ``pool_bn=True`` so that its pools keep the supernet's post-pool BN).

Forward convention of the stand-alone networks: ``net(x)`` returns the logits; ``net(x,
return_aux=True)`` returns ``(logits, logits_aux)``, where ``logits_aux`` is computed only in
training mode with an auxiliary head (``None`` otherwise), as DARTS' ``(logits, logits_aux)``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import NetworkSpec
from .darts import DARTS_EDGES, DARTS_OPS, EDGES_PER_CELL, STEPS, DARTSSpace, split_cells
from .ops import ReLUConvBN, single_path_state

_SPACE = DARTSSpace()


# --- ops --------------------------------------------------------------------------------------------

class Zero(nn.Module):
    """``none``: zeros, spatially subsampled for stride 2 (as DARTS' ``Zero``)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Sequential):
    """Separable conv: (ReLU, depthwise k x k (stride), pointwise 1x1, BN) twice (second stride 1).

    Indices: 1 dw, 2 pw, 3 BN, 5 dw, 6 pw, 7 BN.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """Dilated separable conv: ReLU, dilated depthwise k x k, pointwise 1x1, BN (1 dw, 2 pw, 3 BN)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def make_op(name: str, channels: int, stride: int, pool_bn: bool = False, affine: bool = True) -> nn.Module:
    """One DARTS op on ``channels`` channels; ``pool_bn`` wraps pools as ``Sequential(pool, BN)``
    (the supernet's op structure)."""
    if name == "none":
        return Zero(stride)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (nn.MaxPool2d(3, stride=stride, padding=1) if name == "max_pool_3x3"
                else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
        return nn.Sequential(pool, nn.BatchNorm2d(channels, affine=affine)) if pool_bn else pool
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=affine)
    if name == "sep_conv_3x3":
        return SepConv(channels, channels, 3, stride, 1, affine=affine)
    if name == "sep_conv_5x5":
        return SepConv(channels, channels, 5, stride, 2, affine=affine)
    if name == "dil_conv_3x3":
        return DilConv(channels, channels, 3, stride, 2, 2, affine=affine)
    if name == "dil_conv_5x5":
        return DilConv(channels, channels, 5, stride, 4, 2, affine=affine)
    raise ValueError(f"unknown DARTS op {name!r}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob`` and rescale the rest (DARTS ``drop_path``)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x / keep * mask


# --- cells ------------------------------------------------------------------------------------------

def _edge_stride(reduction: bool, src: int) -> int:
    return 2 if reduction and src < 2 else 1


class _CellBase(nn.Module):
    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool,
                 multiplier: int):
        super().__init__()
        self.C, self.reduction, self.reduction_prev = channels, reduction, reduction_prev
        self.multiplier = multiplier
        self.preprocess0 = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0)

    def _run(self, s0: torch.Tensor, s1: torch.Tensor, edge_fn) -> torch.Tensor:
        """Sum the live inputs of each node in edge order; ``edge_fn(e, tensor)`` returns None for a
        ``none`` edge. A node without live inputs is the (strided) zero tensor, as in the supernet."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for j in range(2, 2 + STEPS):
            total = None
            for k in range(j):
                out = edge_fn(e, states[k])
                e += 1
                if out is not None:
                    total = out if total is None else total + out
            if total is None:
                total = Zero(2 if self.reduction else 1)(states[0])
            states.append(total)
        return torch.cat(states[-self.multiplier:], dim=1)


class SupernetCell(_CellBase):
    """Every op on every edge; ``forward(s0, s1, cell_genotype)`` runs the chosen op per edge."""

    def __init__(self, c_prev_prev, c_prev, channels, reduction, reduction_prev, multiplier):
        super().__init__(c_prev_prev, c_prev, channels, reduction, reduction_prev, multiplier)
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, channels, _edge_stride(reduction, src), pool_bn=True) for op in DARTS_OPS)
            for src, _ in DARTS_EDGES)

    def forward(self, s0, s1, cell_genotype: Sequence[int]) -> torch.Tensor:
        return self._run(s0, s1, lambda e, t: None if cell_genotype[e] == 0 else self.edges[e][cell_genotype[e]](t))


class NetworkCell(_CellBase):
    """Only the genotype's ops (``edges`` keyed by edge index); drop path on non-identity ops."""

    def __init__(self, cell_genotype: Sequence[int], c_prev_prev, c_prev, channels, reduction, reduction_prev,
                 multiplier, pool_bn: bool = False):
        super().__init__(c_prev_prev, c_prev, channels, reduction, reduction_prev, multiplier)
        self.genotype = tuple(cell_genotype)
        self.edges = nn.ModuleDict({
            str(e): make_op(DARTS_OPS[op], channels, _edge_stride(reduction, DARTS_EDGES[e][0]), pool_bn=pool_bn)
            for e, op in enumerate(self.genotype) if op != 0})

    def forward(self, s0, s1, drop_prob: float = 0.0) -> torch.Tensor:
        def edge(e, t):
            op = self.edges[str(e)] if str(e) in self.edges else None
            if op is None:
                return None
            h = op(t)
            if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                h = drop_path(h, drop_prob)
            return h

        return self._run(s0, s1, edge)


# --- networks ---------------------------------------------------------------------------------------

def _check_sizes(**sizes) -> None:
    bad = [k for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise ValueError(f"{', '.join(bad)} must be positive integers; got "
                         f"{', '.join(f'{k}={sizes[k]!r}' for k in bad)}")


def _check_cell_shape(steps: int, multiplier: int) -> None:
    if steps != STEPS:
        raise ValueError(f"the DARTS genotype encodes {STEPS} intermediate nodes per cell; steps={steps}")
    if not 1 <= multiplier <= steps:
        raise ValueError(f"multiplier (concatenated nodes) must be in 1..{steps}; got {multiplier}")


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells (they coincide, i.e. one reduction, when ``layers == 1``)."""
    return layers // 3, 2 * layers // 3


def _genotype(genotype) -> tuple[int, ...]:
    return _SPACE.parse(genotype) if isinstance(genotype, str) else _SPACE.check(genotype)


class DARTSSupernet(nn.Module):
    """SPOS weight-sharing supernet of the DARTS space (GeNAS/RLNAS ``train_supernet``).

    ``layers`` cells (reductions at ``layers // 3`` and ``2 * layers // 3``), every edge holding
    all 8 ops, pools followed by an affine BN, all BNs affine. ``forward(x, genotype)`` runs the
    single path of a 28-gene genotype: normal cells use genes 0..13, reduction cells 14..27.
    """

    def __init__(self, channels: int = 16, num_classes: int = 10, layers: int = 8, in_channels: int = 3,
                 steps: int = 4, multiplier: int = 4, stem_multiplier: int = 3):
        super().__init__()
        C = channels
        _check_sizes(channels=C, num_classes=num_classes, layers=layers, in_channels=in_channels,
                     stem_multiplier=stem_multiplier)
        _check_cell_shape(steps, multiplier)
        self.channels, self.num_classes, self.layers, self.in_channels = C, num_classes, layers, in_channels
        self.steps, self.multiplier, self.stem_multiplier = steps, multiplier, stem_multiplier
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, C
        cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cells.append(SupernetCell(c_pp, c_p, c_curr, reduction, reduction_prev, multiplier))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, genotype: Sequence[int]) -> torch.Tensor:
        if len(genotype) != 2 * EDGES_PER_CELL:
            raise ValueError(f"DARTS genotype needs {2 * EDGES_PER_CELL} genes, got {len(genotype)}")
        normal, reduce = split_cells(genotype)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    @property
    def spec(self) -> NetworkSpec:
        """The space-neutral arguments of this supernet (stand-alone networks of the same size)."""
        return NetworkSpec(channels=self.channels, layers=self.layers, num_classes=self.num_classes,
                           in_channels=self.in_channels, affine=True)

    def _shape(self) -> dict:
        return dict(channels=self.channels, num_classes=self.num_classes, layers=self.layers,
                    in_channels=self.in_channels, steps=self.steps, multiplier=self.multiplier,
                    stem_multiplier=self.stem_multiplier)

    def path_vector(self, state: dict, genotype: Sequence[int], dil_conv_quirk: bool = False):
        """The ABS angle vector of ``genotype`` in ``state`` (:mod:`genas.spaces.darts_angle`)."""
        from .darts_angle import darts_path_vector

        return darts_path_vector(self, state, genotype, reproduce_dil_conv_quirk=dil_conv_quirk)

    def cell_genotype(self, index: int, genotype: Sequence[int]) -> tuple[int, ...]:
        """The 14 genes that supernet cell ``index`` uses for ``genotype``."""
        normal, reduce = split_cells(genotype)
        return reduce if self.cells[index].reduction else normal

    def subnet_state_dict(self, genotype: Sequence[int]) -> dict[str, torch.Tensor]:
        """The weights of ``genotype``'s single path, named as in ``extract(genotype)``'s network."""
        return single_path_state(self.state_dict(),
                                 lambda cell, edge, op: op != 0 and self.cell_genotype(cell, genotype)[edge] == op)

    def supernet_param_name(self, name: str, genotype: Sequence[int]) -> str:
        """The supernet name of a parameter of ``extract(genotype)`` (inverse of the renaming in
        :meth:`subnet_state_dict`)."""
        parts = name.split(".")
        if parts[0] == "cells" and len(parts) > 4 and parts[2] == "edges":
            op = self.cell_genotype(int(parts[1]), genotype)[int(parts[3])]
            return ".".join(parts[:4] + [str(op)] + parts[4:])
        return name

    def extract(self, genotype: Sequence[int]) -> "NetworkCIFAR":
        """A stand-alone :class:`NetworkCIFAR` with this supernet's weights for ``genotype``: same
        skeleton, no auxiliary head, pools followed by the supernet's BN (``pool_bn=True``), so
        both compute the same function (in training mode too)."""
        net = NetworkCIFAR(tuple(genotype), auxiliary=False, pool_bn=True, **self._shape())
        net.load_state_dict(self.subnet_state_dict(genotype), strict=True)
        return net.to(next(self.parameters()).device)


class _AuxiliaryHead(nn.Module):
    """DARTS auxiliary head: ReLU, AvgPool 5 (count_include_pad=False), 1x1 conv 128, BN, ReLU,
    2x2 conv 768, [BN,] ReLU, Linear. The module indices match the DARTS code's state dicts."""

    def __init__(self, channels: int, num_classes: int, pool_stride: int, bn_after_768: bool):
        super().__init__()
        layers = [
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if bn_after_768:
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class AuxiliaryHeadCIFAR(_AuxiliaryHead):
    """DARTS CIFAR auxiliary head (input 8x8): AvgPool 5/3, BN after the 768-channel conv."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(channels, num_classes, pool_stride=3, bn_after_768=True)


class AuxiliaryHeadImageNet(_AuxiliaryHead):
    """DARTS ImageNet auxiliary head (input 14x14): AvgPool 5/2 and no BN after the 768-channel
    conv (the DARTS/GeNAS code comments that BN out)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(channels, num_classes, pool_stride=2, bn_after_768=False)


class _Evaluation(nn.Module):
    """Cells, auxiliary head and classifier shared by the CIFAR and ImageNet networks."""

    def _build_cells(self, genotype, c_pp: int, c_p: int, C: int, layers: int, multiplier: int,
                     reduction_prev: bool, pool_bn: bool) -> int:
        normal, reduce = split_cells(genotype)
        cells, c_curr = [], C
        self.aux_channels = None
        for i in range(layers):
            reduction = i in reduction_layers(layers)
            if reduction:
                c_curr *= 2
            cells.append(NetworkCell(reduce if reduction else normal, c_pp, c_p, c_curr, reduction,
                                     reduction_prev, multiplier, pool_bn=pool_bn))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c_curr
            if i == self.aux_index:
                self.aux_channels = c_p
        self.cells = nn.ModuleList(cells)
        return c_p

    @property
    def aux_index(self) -> int:
        """The cell after which the auxiliary head reads (``2 * layers // 3``)."""
        return 2 * self.layers // 3

    def _cells_forward(self, s0, s1, return_aux: bool):
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if return_aux and i == self.aux_index and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        return s1, logits_aux

    def _finish(self, s1, logits_aux, return_aux: bool):
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return (logits, logits_aux) if return_aux else logits


class NetworkCIFAR(_Evaluation):
    """DARTS CIFAR evaluation network (``model.py``): stem 3x3 conv (``stem_multiplier * C``) + BN,
    ``layers`` cells with reductions at ``layers // 3`` and ``2 * layers // 3``, auxiliary head
    after cell ``2 * layers // 3``, global average pooling, linear classifier.

    ``genotype``: 28 genes or a DARTS ``Genotype(...)`` string. ``drop_path_prob`` (an attribute,
    settable per epoch) drops the output of every non-identity op in training mode. ``pool_bn``
    puts an affine BN after every pool, as in the supernet (used by ``DARTSSupernet.extract``);
    the DARTS/GeNAS retraining networks have none (the default).

    ``forward(x)`` returns the logits; ``forward(x, return_aux=True)`` returns ``(logits,
    logits_aux)``, ``logits_aux`` being ``None`` unless training with ``auxiliary=True``.
    """

    def __init__(self, genotype, channels: int = 36, num_classes: int = 10, layers: int = 20, auxiliary: bool = True,
                 in_channels: int = 3, drop_path_prob: float = 0.0, pool_bn: bool = False, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3):
        super().__init__()
        C = channels
        _check_sizes(channels=C, num_classes=num_classes, layers=layers, in_channels=in_channels,
                     stem_multiplier=stem_multiplier)
        _check_cell_shape(steps, multiplier)
        self.genotype = _genotype(genotype)
        self.channels, self.num_classes, self.layers, self.in_channels = C, num_classes, layers, in_channels
        self.steps, self.multiplier, self.stem_multiplier = steps, multiplier, stem_multiplier
        self.auxiliary, self.pool_bn = bool(auxiliary), bool(pool_bn)
        self.drop_path_prob = float(drop_path_prob)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_p = self._build_cells(self.genotype, c_curr, c_curr, C, layers, multiplier, False, pool_bn)
        if self.auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(self.aux_channels, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        s = self.stem(x)
        s1, logits_aux = self._cells_forward(s, s, return_aux)
        return self._finish(s1, logits_aux, return_aux)


class NetworkImageNet(_Evaluation):
    """DARTS/GeNAS ImageNet network (``retrain_architecture/model.py``), for 224x224 inputs.

    stem0: 3x3 s2 conv -> C/2, BN, ReLU, 3x3 s2 conv -> C, BN; stem1: ReLU, 3x3 s2 conv, BN;
    ``layers`` cells (reductions at ``layers // 3`` and ``2 * layers // 3``: cells 4 and 9 of 14),
    the first cell treating its input as after a reduction; AvgPool 7, linear classifier;
    auxiliary head (:class:`AuxiliaryHeadImageNet`) after cell ``2 * layers // 3``. Pools have no
    BN. Same forward convention as :class:`NetworkCIFAR`.
    """

    def __init__(self, genotype, channels: int = 48, num_classes: int = 1000, layers: int = 14,
                 auxiliary: bool = True, in_channels: int = 3, drop_path_prob: float = 0.0, steps: int = 4,
                 multiplier: int = 4):
        super().__init__()
        C = channels
        _check_sizes(channels=C, num_classes=num_classes, layers=layers, in_channels=in_channels)
        _check_cell_shape(steps, multiplier)
        if C % 2:
            raise ValueError(f"NetworkImageNet needs even channels (stem C/2, FactorizedReduce); got {C}")
        self.genotype = _genotype(genotype)
        self.channels, self.num_classes, self.layers, self.in_channels = C, num_classes, layers, in_channels
        self.steps, self.multiplier = steps, multiplier
        self.auxiliary, self.pool_bn = bool(auxiliary), False
        self.drop_path_prob = float(drop_path_prob)
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        c_p = self._build_cells(self.genotype, C, C, C, layers, multiplier, True, False)
        if self.auxiliary:
            self.auxiliary_head = AuxiliaryHeadImageNet(self.aux_channels, num_classes)
        self.global_pooling = nn.AvgPool2d(7)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        s1, logits_aux = self._cells_forward(s0, s1, return_aux)
        return self._finish(s1, logits_aux, return_aux)


__all__ = ["AuxiliaryHeadCIFAR", "AuxiliaryHeadImageNet", "DARTSSupernet", "DilConv", "FactorizedReduce",
           "NetworkCIFAR", "NetworkImageNet", "NetworkCell", "SepConv", "SupernetCell", "Zero", "drop_path",
           "make_op", "reduction_layers"]
