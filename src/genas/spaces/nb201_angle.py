"""NB201 path vectors for the ABS angle metric, after the RLNAS NB201 code
(``RLNAS/nas_201_api`` search code: ``get_arch_vector``).

For every searchable cell and each input->output path [0,3], [0,2,3], [0,1,2,3], [0,1,3],
concatenate the vectors of the path's edges; a path with a ``none`` edge is dropped (for that cell
only; the RLNAS code's ``break`` out of the cell loop is not reproduced). Per op: convs give their
weight (plus BN affine when the supernet has it); ``avg_pool_3x3`` gives the fixed kernel
ones[C,3,3]/9 (identical in both vectors, so it dilutes the angle the way a parameter-free op
should); and ``skip_connect`` adds nothing (RLNAS NB201; the DARTS code instead adds eye(C)). All
parameters outside the searchable cells (stem, residual reduction blocks, last BN, classifier) are
appended.
"""
from __future__ import annotations

import torch

NB201_PATHS = ((3,), (1, 5), (0, 2, 5), (0, 4))  # edge indices of paths [0,3], [0,2,3], [0,1,2,3], [0,1,3]


def nb201_path_vector(supernet, state: dict, genotype) -> torch.Tensor | None:
    """The flattened architecture vector of ``genotype`` in ``state``; None if every path is dropped."""
    from .nb201_net import SupernetCell

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


__all__ = ["NB201_PATHS", "nb201_path_vector"]
