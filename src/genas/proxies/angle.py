"""ABS: the angle between a candidate's weight vector at epoch 0 and after supernet training
(Hu et al., "Angle-based Search Space Shrinking", ECCV 2020; used by RLNAS and GeNAS).

NB201 path vectors, following the RLNAS NB201 code (GENAS_SPEC.md section 2.2): for every
searchable cell and each input->output path [0,3], [0,2,3], [0,1,2,3], [0,1,3], concatenate the
vectors of the path's edges; a path with a ``none`` edge is dropped (for that cell only; the
RLNAS code's ``break`` out of the cell loop is not reproduced). Per op: convs give their weight
(plus BN affine when the supernet has it); ``avg_pool_3x3`` gives the fixed kernel ones[C,3,3]/9
(identical in both vectors, so it dilutes the angle the way a parameter-free op should); and
``skip_connect`` adds nothing (RLNAS NB201; the DARTS code instead adds eye(C)). All parameters
outside the searchable cells (stem, residual reduction blocks, last BN, classifier) are
appended. A candidate whose paths are all dropped scores 0 (worst), as in RLNAS.
The DARTS vectors (GENAS_SPEC.md section 2.1) are in :mod:`genas.proxies.angle_darts`.
Higher is better: the angle in radians.
"""
from __future__ import annotations

import math

import torch

from .registry import ProxyResult, register

NB201_PATHS = ((3,), (1, 5), (0, 2, 5), (0, 4))  # edge indices of paths [0,3], [0,2,3], [0,1,2,3], [0,1,3]


def nb201_path_vector(supernet, state: dict, genotype) -> torch.Tensor | None:
    """The flattened architecture vector of ``genotype`` in ``state``; None if every path is dropped."""
    from ..spaces.nb201_net import SupernetCell

    parts, cell_prefixes, alive = [], [], False
    for i, cell in enumerate(supernet.cells):
        if not isinstance(cell, SupernetCell):
            continue
        prefix = f"cells.{i}.edges"
        cell_prefixes.append(prefix + ".")
        channels = cell.edges[0][2][1].in_channels
        for path in NB201_PATHS:
            ops = [genotype[e] for e in path]
            if 0 in ops:
                continue
            alive = True
            for e, op in zip(path, ops):
                if op in (2, 3):  # nor_conv_1x1 / nor_conv_3x3: conv weight, then BN affine if any
                    base = f"{prefix}.{e}.{op}"
                    parts += [state[f"{base}.1.weight"]] + [state[k] for k in (f"{base}.2.weight", f"{base}.2.bias")
                                                           if k in state]
                elif op == 4:
                    parts.append(torch.full((channels, 3, 3), 1.0 / 9.0))
    if not alive:
        return None
    params = {name for name, _ in supernet.named_parameters()}
    extras = [state[k] for k in sorted(params) if not any(k.startswith(p) for p in cell_prefixes)]
    return torch.cat([t.detach().double().flatten().cpu() for t in parts + extras])


def angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    return math.acos(max(-1.0, min(1.0, cos.item())))


def path_vector(supernet, state: dict, genotype, dil_conv_quirk: bool = False) -> torch.Tensor | None:
    """The angle vector in the supernet's space (NB201 here, DARTS in :mod:`.angle_darts`)."""
    from ..spaces.darts_net import DARTSSupernet
    from ..spaces.nb201_net import NB201Supernet

    if isinstance(supernet, DARTSSupernet):
        from .angle_darts import darts_path_vector

        return darts_path_vector(supernet, state, genotype, reproduce_dil_conv_quirk=dil_conv_quirk)
    if isinstance(supernet, NB201Supernet):
        return nb201_path_vector(supernet, state, genotype)
    raise ValueError(f"the angle metric has no path vector for {type(supernet).__name__}")


@register("angle")
def angle_proxy(ctx, genotype) -> ProxyResult:
    if ctx.init_state is None:
        raise ValueError("the angle metric needs the supernet's epoch-0 weights (init.pt)")
    quirk = getattr(ctx.cfg, "dil_conv_quirk", False)
    v0 = path_vector(ctx.supernet, ctx.init_state, genotype, quirk)
    if v0 is None:
        return ProxyResult(0.0, dict(angle=0.0, disconnected=True))
    v1 = path_vector(ctx.supernet, ctx.final_state, genotype, quirk)
    theta = angle_between(v0, v1)
    return ProxyResult(theta, dict(angle=theta))
