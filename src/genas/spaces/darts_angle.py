"""ABS angle metric for the DARTS space: the architecture ("path") weight vector of a candidate.

Follows the GeNAS/RLNAS code ( ``evolution_search/cand_evaluator.py``
``get_arch_vector``):

* every supernet cell (``layers`` of them, 8 in GeNAS), each with its normal or reduction genes
  (:meth:`DARTSSupernet.cell_genotype`);
* per cell, the 30 paths of :data:`DARTS_PATHS` (every path from an input node 0/1 to any
  intermediate node 2..5), in the spec's order; a path through a ``none`` edge is dropped (for
  that cell only); an edge used by several paths is repeated once per path;
* per edge, by op (C = the cell's width ``cell.C``):

  - ``max_pool_3x3`` / ``avg_pool_3x3``: the fixed kernel ``ones[C, 3, 3] / 9``, then the
    supernet's post-pool BN weight and bias;
  - ``skip_connect`` stride 1 (identity): the fixed ``eye(C)`` flattened;
  - ``skip_connect`` stride 2 (reduction cell, edge from input 0/1: FactorizedReduce):
    ``conv_1.w, conv_2.w, bn.w, bn.b``;
  - ``sep_conv_*``: ``dw1.w, pw1.w, dw2.w, pw2.w, bn1.w, bn1.b, bn2.w, bn2.b``;
  - ``dil_conv_*``: ``dw.w, pw.w, bn.w, bn.b``. The official RLNAS/GeNAS code appends
    ``bn.w`` twice and never the bias (a bug); we fix it by default and
    ``reproduce_dil_conv_quirk=True`` reproduces it (``[bn.w, bn.w]``, same length);

* then the fixed extra parameters: stem conv w, stem BN w, b; for every cell ``preprocess0``
  (ReLUConvBN: conv w, BN w, b; or FactorizedReduce: conv_1 w, conv_2 w, BN w, b) and
  ``preprocess1``; the classifier weight (not its bias).

The final vector is ``concat[cell 0 paths, ..., cell L-1 paths, stem, pre0/pre1 of every cell,
classifier.w]`` in float64 on the CPU. Fixed tensors (pool kernels, identities) are identical in
the epoch-0 and final vectors, so they dilute the angle the way a parameter-free op should.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .darts import DARTS_OPS, EDGES_PER_CELL, edge_index

# op indices (DARTS PRIMITIVES order)
NONE, MAX_POOL, AVG_POOL, SKIP, SEP3, SEP5, DIL3, DIL5 = range(len(DARTS_OPS))

# The 30 paths of the official code, in its order (node lists).
_TO5 = ((2, 3, 4, 5), (2, 3, 5), (2, 4, 5), (2, 5), (3, 4, 5), (3, 5), (4, 5), (5,))
DARTS_PATHS: tuple[tuple[int, ...], ...] = (
    tuple((0,) + p for p in _TO5)
    + tuple((1,) + p for p in _TO5)
    + ((0, 2, 3, 4), (0, 2, 4), (0, 3, 4), (0, 4), (1, 2, 3, 4), (1, 2, 4), (1, 3, 4), (1, 4),
       (0, 2, 3), (0, 3), (1, 2, 3), (1, 3),
       (0, 2), (1, 2))
)
# edge (gene) indices within a cell of each path
DARTS_PATH_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(edge_index(k, j) for k, j in zip(p[:-1], p[1:])) for p in DARTS_PATHS)


def darts_paths() -> tuple[tuple[int, ...], ...]:
    """The 30 cell paths (node lists, input node first) in the order the angle vector uses."""
    return DARTS_PATHS


def _edge_parts(state: dict, prefix: str, op: int, channels: int, stride: int,
                quirk: bool) -> list[torch.Tensor]:
    """Tensors of one edge running ``op`` (``prefix`` = ``cells.i.edges.e``)."""
    base = f"{prefix}.{op}"
    if op in (MAX_POOL, AVG_POOL):
        return [torch.full((channels, 3, 3), 1.0 / 9.0, dtype=torch.float64),
                state[f"{base}.1.weight"], state[f"{base}.1.bias"]]
    if op == SKIP:
        if stride == 1:
            return [torch.eye(channels, dtype=torch.float64)]
        return [state[f"{base}.{k}"] for k in ("conv_1.weight", "conv_2.weight", "bn.weight", "bn.bias")]
    if op in (SEP3, SEP5):
        return [state[f"{base}.{k}"] for k in ("1.weight", "2.weight", "5.weight", "6.weight",
                                               "3.weight", "3.bias", "7.weight", "7.bias")]
    if op in (DIL3, DIL5):
        bn_second = "3.weight" if quirk else "3.bias"
        return [state[f"{base}.{k}"] for k in ("1.weight", "2.weight", "3.weight", bn_second)]
    raise ValueError(f"no angle vector for DARTS op index {op}")


def _preprocess_keys(cell, prefix: str) -> list[str]:
    from .darts_net import FactorizedReduce

    if isinstance(cell, FactorizedReduce):
        return [f"{prefix}.{k}" for k in ("conv_1.weight", "conv_2.weight", "bn.weight", "bn.bias")]
    return [f"{prefix}.{k}" for k in ("1.weight", "2.weight", "2.bias")]  # ReLUConvBN: conv, BN w, b


def extra_param_keys(supernet) -> list[str]:
    """State-dict keys of the fixed extra parameters, in vector order (same for every genotype)."""
    keys = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    for i, cell in enumerate(supernet.cells):
        keys += _preprocess_keys(cell.preprocess0, f"cells.{i}.preprocess0")
        keys += _preprocess_keys(cell.preprocess1, f"cells.{i}.preprocess1")
    return keys + ["classifier.weight"]


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).to(device="cpu", dtype=torch.float64)


def darts_path_vector(supernet, state: dict, genotype: Sequence[int] | str,
                      reproduce_dil_conv_quirk: bool = False) -> torch.Tensor | None:
    """The flattened float64 architecture vector of ``genotype`` (28 genes or a DARTS
    ``Genotype(...)`` string) in ``state`` (keyed like ``supernet.state_dict()``); None if every
    path of every cell goes through a ``none`` edge."""
    from .darts import DARTSSpace

    space = DARTSSpace()
    g = space.parse(genotype) if isinstance(genotype, str) else space.check(genotype)
    parts: list[torch.Tensor] = []
    alive = False
    for i, cell in enumerate(supernet.cells):
        genes = supernet.cell_genotype(i, g)
        assert len(genes) == EDGES_PER_CELL
        edge_cache: dict[int, list[torch.Tensor]] = {}
        for path, edges in zip(DARTS_PATHS, DARTS_PATH_EDGES):
            if any(genes[e] == NONE for e in edges):
                continue
            alive = True
            for k, e in zip(path[:-1], edges):
                if e not in edge_cache:
                    stride = 2 if cell.reduction and k < 2 else 1
                    edge_cache[e] = [_flat(t) for t in _edge_parts(
                        state, f"cells.{i}.edges.{e}", genes[e], cell.C, stride, reproduce_dil_conv_quirk)]
                parts += edge_cache[e]
    if not alive:
        return None
    parts += [_flat(state[k]) for k in extra_param_keys(supernet)]
    return torch.cat(parts)


__all__ = ["DARTS_PATHS", "DARTS_PATH_EDGES", "darts_path_vector", "darts_paths",
           "extra_param_keys"]
