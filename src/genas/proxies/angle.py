"""ABS: the angle between a candidate's weight vector at epoch 0 and after supernet training
(Hu et al., "Angle-based Search Space Shrinking", ECCV 2020; used by RLNAS and GeNAS).

The vectors are the space's business: a supernet that supports the metric has
``path_vector(state, genotype, dil_conv_quirk=False)`` (NB201: :mod:`genas.spaces.nb201_angle`,
DARTS: :mod:`genas.spaces.darts_angle`). A candidate whose paths are all dropped scores 0
(worst), as in RLNAS. Higher is better: the angle in radians.
"""
from __future__ import annotations

import math

import torch

from .registry import ProxyResult, register


def angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    return math.acos(max(-1.0, min(1.0, cos.item())))


def supernet_angle(supernet, init_state: dict, final_state: dict, genotype, quirk: bool = False) -> float | None:
    """ABS angle (radians) of ``genotype`` between ``init_state`` and ``final_state``; None when
    every path of the candidate is dropped."""
    v0 = supernet.path_vector(init_state, genotype, dil_conv_quirk=quirk)
    if v0 is None:
        return None
    return angle_between(v0, supernet.path_vector(final_state, genotype, dil_conv_quirk=quirk))


@register("angle", needs=("supernet", "init_weights", "path_vector"))
def angle_proxy(ctx, genotype) -> ProxyResult:
    theta = supernet_angle(ctx.supernet, ctx.init_state, ctx.final_state, genotype,
                           getattr(ctx.cfg, "dil_conv_quirk", False))
    if theta is None:
        return ProxyResult(0.0, dict(angle=0.0, disconnected=True))
    return ProxyResult(theta, dict(angle=theta))
