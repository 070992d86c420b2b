"""Layers shared by the search spaces' networks (NB201 definitions follow xautodl's cell_operations)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BatchNorm, the NB201 conv op and residual-block branch."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class AvgPool3x3(nn.AvgPool2d):
    """NB201 ``avg_pool_3x3`` on a same-width edge: no parameters, padding excluded from the mean."""

    def __init__(self):
        super().__init__(3, stride=1, padding=1, count_include_pad=False)


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block with stride 2 between stages (channels double, resolution halves)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def single_path_state(state: dict[str, torch.Tensor], keep: Callable[[int, int, int], bool]) -> dict[str, torch.Tensor]:
    """A supernet state dict reduced to one path: tensors named ``cells.i.edges.e.<op>.*`` are kept
    when ``keep(i, e, op)`` and renamed ``cells.i.edges.e.*`` (the stand-alone network's names)."""
    out = {}
    for name, tensor in state.items():
        parts = name.split(".")
        if parts[0] == "cells" and len(parts) > 4 and parts[2] == "edges":
            cell, edge, op = int(parts[1]), int(parts[3]), int(parts[4])
            if not keep(cell, edge, op):
                continue
            name = ".".join(parts[:4] + parts[5:])
        out[name] = tensor
    return out
