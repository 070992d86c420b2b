"""NAS-Bench-201 networks: the SPOS supernet and the stand-alone network.

Both share the NB201 macro skeleton: stem conv+BN, three stages of N cells at C, 2C, 4C channels
separated by residual reduction blocks, then BN-ReLU, global average pooling and a linear
classifier. Parameter names line up so that a supernet's single path can be copied into a
stand-alone network (``NB201Supernet.extract``): supernet ``cells.k.edges.e.<op>.*`` maps to
network ``cells.k.edges.e.*``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import NetworkSpec
from .nb201 import NB201_EDGES, NB201_OPS, NUM_NODES
from .ops import AvgPool3x3, ReLUConvBN, ResidualReduction, single_path_state


def make_op(name: str, channels: int, affine: bool) -> nn.Module:
    if name == "none":
        return nn.Identity()  # placeholder, never called: `none` edges are skipped
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine=affine)
    if name == "avg_pool_3x3":
        return AvgPool3x3()
    raise ValueError(f"unknown NB201 op {name!r}")


def _cell_forward(x: torch.Tensor, edge_fn) -> torch.Tensor:
    """Sum the live inputs of each node; ``edge_fn(e, tensor)`` returns None for a `none` edge."""
    nodes = [x]
    e = 0
    for j in range(1, NUM_NODES):
        total = None
        for i in range(j):
            out = edge_fn(e, nodes[i])
            e += 1
            if out is not None:
                total = out if total is None else total + out
        nodes.append(torch.zeros_like(x) if total is None else total)
    return nodes[-1]


class SupernetCell(nn.Module):
    def __init__(self, channels: int, affine: bool):
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, channels, affine) for op in NB201_OPS) for _ in NB201_EDGES)

    def forward(self, x: torch.Tensor, genotype: Sequence[int]) -> torch.Tensor:
        return _cell_forward(x, lambda e, t: None if genotype[e] == 0 else self.edges[e][genotype[e]](t))


class NetworkCell(nn.Module):
    def __init__(self, genotype: Sequence[int], channels: int, affine: bool = True):
        super().__init__()
        self.genotype = tuple(genotype)
        self.edges = nn.ModuleDict(
            {str(e): make_op(NB201_OPS[op], channels, affine) for e, op in enumerate(self.genotype) if op != 0})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _cell_forward(x, lambda e, t: self.edges[str(e)](t) if str(e) in self.edges else None)


class _Skeleton(nn.Module):
    """Stem, stages and head; subclasses fill ``self.cells`` with cells and reduction blocks."""

    def __init__(self, channels: int, cells_per_stage: int, num_classes: int, in_channels: int, make_cell):
        super().__init__()
        if channels < 1 or cells_per_stage < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError("channels, cells_per_stage, num_classes and in_channels must be positive")
        self.channels, self.cells_per_stage = channels, cells_per_stage
        self.num_classes, self.in_channels = num_classes, in_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        cells = []
        c = channels
        for stage in range(3):
            if stage > 0:
                cells.append(ResidualReduction(c, 2 * c))
                c *= 2
            cells.extend(make_cell(c) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c, num_classes)

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(x)
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class NB201Supernet(_Skeleton):
    """SPOS weight-sharing supernet: every op on every edge; ``forward(x, genotype)`` runs one path.

    Cell BatchNorms are ``affine=False`` by default, as in NB201's search networks and RLNAS (the
    angle metric then uses conv weights only); pass ``affine=True`` to learn them.
    """

    def __init__(self, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 in_channels: int = 3, affine: bool = False):
        self.affine = affine
        super().__init__(channels, cells_per_stage, num_classes, in_channels, lambda c: SupernetCell(c, affine))

    def forward(self, x: torch.Tensor, genotype: Sequence[int]) -> torch.Tensor:
        if len(genotype) != len(NB201_EDGES):
            raise ValueError(f"NB201 genotype needs {len(NB201_EDGES)} genes, got {len(genotype)}")
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, genotype) if isinstance(cell, SupernetCell) else cell(x)
        return self._head(x)

    @property
    def spec(self) -> NetworkSpec:
        """The space-neutral arguments of this supernet (stand-alone networks of the same size)."""
        return NetworkSpec(channels=self.channels, cells_per_stage=self.cells_per_stage,
                           num_classes=self.num_classes, in_channels=self.in_channels, affine=self.affine)

    def path_vector(self, state: dict, genotype: Sequence[int], dil_conv_quirk: bool = False):
        """The ABS angle vector of ``genotype`` in ``state`` (:mod:`genas.spaces.nb201_angle`)."""
        from .nb201_angle import nb201_path_vector

        return nb201_path_vector(self, state, genotype)

    def subnet_state_dict(self, genotype: Sequence[int]) -> dict[str, torch.Tensor]:
        """The weights of ``genotype``'s single path, named as in :class:`NB201Network`."""
        return single_path_state(self.state_dict(), lambda cell, edge, op: op != 0 and genotype[edge] == op)

    def supernet_param_name(self, name: str, genotype: Sequence[int]) -> str:
        """The supernet name of an :class:`NB201Network` parameter of ``genotype`` (inverse of the
        renaming in :meth:`subnet_state_dict`)."""
        parts = name.split(".")
        if parts[0] == "cells" and len(parts) > 4 and parts[2] == "edges":
            return ".".join(parts[:4] + [str(genotype[int(parts[3])])] + parts[4:])
        return name

    def extract(self, genotype: Sequence[int]) -> "NB201Network":
        """A stand-alone network carrying this supernet's weights for ``genotype``.

        Its cell BNs have affine parameters exactly when the supernet's do, so the two compute the
        same function and have the same parameters (weight noise for flatness then perturbs what
        the supernet has, as the official code does, and nothing more).
        """
        net = NB201Network(genotype, channels=self.channels, cells_per_stage=self.cells_per_stage,
                           num_classes=self.num_classes, in_channels=self.in_channels, affine=self.affine)
        net.load_state_dict(self.subnet_state_dict(genotype), strict=True)
        return net.to(next(self.parameters()).device)


class NB201Network(_Skeleton):
    """Stand-alone NB201 network (xautodl's TinyNetwork): `none` edges carry no module."""

    def __init__(self, genotype: Sequence[int], channels: int = 16, cells_per_stage: int = 5,
                 num_classes: int = 10, in_channels: int = 3, affine: bool = True):
        self.genotype = tuple(genotype)
        self.drop_path_prob = 0.0  # the shared stand-alone interface; NB201 has no drop path
        super().__init__(channels, cells_per_stage, num_classes, in_channels,
                         lambda c: NetworkCell(self.genotype, c, affine))

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        """Logits; with ``return_aux`` the shared training form ``(logits, None)`` (no auxiliary head)."""
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        logits = self._head(x)
        return (logits, None) if return_aux else logits
