"""DARTS cell space (Liu et al., ICLR 2019) as used by GeNAS / RLNAS, pure-Python part.

A cell has two input nodes (0, 1: the outputs of the two previous cells) and four intermediate
nodes j = 2..5; node j takes one edge from every earlier node k < j, so a cell has 14 edges.
The edge k->j has index ``k + NODE_OFFSETS[j - 2]`` with offsets (0, 2, 5, 9), i.e. the edges of
node 2 are genes 0-1, of node 3 genes 2-4, of node 4 genes 5-8 and of node 5 genes 9-13. Each
edge carries one of 8 ops (indices as in the official ``PRIMITIVES``)::

    0 none, 1 max_pool_3x3, 2 avg_pool_3x3, 3 skip_connect,
    4 sep_conv_3x3, 5 sep_conv_5x5, 6 dil_conv_3x3, 7 dil_conv_5x5

A genotype is 28 ints: the 14 genes of the normal cell, then the 14 of the reduction cell (all
normal cells share the first, both reduction cells the second). It is *valid* when every
intermediate node has exactly two non-``none`` inputs (the DARTS 2-input rule).

``repair`` is the official ``check_cand``; ``sample`` draws every gene uniformly from 0..7 and
repairs each cell, as the official initial population and supernet sampling do (this is uniform
over the valid genotypes: the kept inputs are a uniform pair, their ops uniform over 1..7).

Mutation: by default every gene of *both* cells may mutate. The official GeNAS/RLNAS code only
loops over ``config.edges`` = 14 genes, so only the normal cell mutates and the reduction cell is
copied from the parent; ``DARTSSpace(mutate_reduce=False)`` reproduces that. As for every space,
a mutated gene takes a uniformly drawn *different* op (the official code may redraw the same one).

``format`` writes the standard DARTS ``Genotype(...)`` string in the order of the official
``parse_searched_cell``: for each node its two non-``none`` edges in edge order, as
``(op name, source node)``. ``parse`` reads that string (``normal_concat`` / ``reduce_concat`` as a
list or as ``range(2, 6)``, pairs of a node in any order) without ``eval``.
"""
from __future__ import annotations

import ast
from math import comb
from typing import Sequence

import numpy as np

from .base import Genotype, NetworkSpec, SearchSpace

DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
STEPS = 4                       # intermediate nodes per cell
NODE_OFFSETS = (0, 2, 5, 9)     # first edge of node j = 2..5
EDGES_PER_CELL = 14
# (source node, target node) of each edge of a cell, in gene order
DARTS_EDGES = tuple((k, j) for j in range(2, 2 + STEPS) for k in range(j))
# gene slice of each intermediate node within a cell
NODE_SLICES = tuple(slice(NODE_OFFSETS[i], NODE_OFFSETS[i] + i + 2) for i in range(STEPS))
CONCAT = (2, 3, 4, 5)
CELL_NAMES = ("normal", "reduce")


def edge_index(src: int, dst: int) -> int:
    """Gene index (within a cell) of the edge ``src -> dst``."""
    if not (2 <= dst < 2 + STEPS and 0 <= src < dst):
        raise ValueError(f"no DARTS edge {src}->{dst}: need 2 <= dst <= {1 + STEPS} and 0 <= src < dst")
    return src + NODE_OFFSETS[dst - 2]


def split_cells(genotype: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal genes, reduce genes) of a 28-gene genotype."""
    g = tuple(int(v) for v in genotype)
    return g[:EDGES_PER_CELL], g[EDGES_PER_CELL:]


def cell_is_valid(cell: Sequence[int]) -> bool:
    """Whether every intermediate node of a 14-gene cell has exactly two non-``none`` inputs."""
    return all(sum(1 for v in cell[sl] if v != 0) == 2 for sl in NODE_SLICES)


def repair_cell(cell: Sequence[int], rng: np.random.Generator) -> tuple[int, ...]:
    """The official ``check_cand`` on one 14-gene cell; a valid cell comes back unchanged.

    Node i (0..3, i.e. node i + 2) with i + 2 inputs must have exactly i ``none`` edges. Too few:
    set randomly chosen (without replacement) surplus non-``none`` edges to ``none``. Too many:
    give randomly chosen ``none`` edges a uniform op from 1..7.
    """
    c = [int(v) for v in cell]
    for i, sl in enumerate(NODE_SLICES):
        idx = list(range(sl.start, sl.stop))
        nones = [e for e in idx if c[e] == 0]
        if len(nones) < i:
            live = [e for e in idx if c[e] != 0]
            for e in rng.choice(live, size=i - len(nones), replace=False):
                c[int(e)] = 0
        elif len(nones) > i:
            for e in rng.choice(nones, size=len(nones) - i, replace=False):
                c[int(e)] = int(rng.integers(1, len(DARTS_OPS)))
    return tuple(c)


def cell_pairs(cell: Sequence[int]) -> list[tuple[str, int]]:
    """``parse_searched_cell``: (op name, source node) of every non-``none`` edge, in edge order."""
    return [(DARTS_OPS[v], src) for (src, _), v in zip(DARTS_EDGES, cell) if v != 0]


def _pairs_to_cell(pairs, which: str) -> tuple[int, ...]:
    """Map DARTS (op, input) pairs, two per node in node order, onto the 14 genes of a cell."""
    if not isinstance(pairs, (list, tuple)):
        raise ValueError(f"{which}: expected a list of (op, input) pairs, got {pairs!r}")
    if len(pairs) != 2 * STEPS:
        raise ValueError(f"{which}: every one of the {STEPS} nodes needs exactly 2 inputs, "
                         f"i.e. {2 * STEPS} (op, input) pairs; got {len(pairs)}")
    cell = [0] * EDGES_PER_CELL
    for n, pair in enumerate(pairs):
        node = 2 + n // 2
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise ValueError(f"{which}: malformed pair {pair!r} (node {node}): expected (op, input)")
        op, src = pair
        if not isinstance(op, str):
            raise ValueError(f"{which}: op name must be a string in pair {pair!r} (node {node})")
        if op not in DARTS_OPS:
            raise ValueError(f"{which}: unknown DARTS op {op!r} in pair {pair!r}; known ops: {', '.join(DARTS_OPS)}")
        if op == "none":
            raise ValueError(f"{which}: pair {pair!r} of node {node} is 'none'; "
                             f"node {node} must have exactly 2 non-none inputs")
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < node:
            raise ValueError(f"{which}: input {src!r} in pair {pair!r} is not an earlier node of node {node} "
                             f"(must be 0..{node - 1})")
        e = edge_index(src, node)
        if cell[e] != 0:
            raise ValueError(f"{which}: node {node} takes input {src} twice (pair {pair!r}); "
                             f"node {node} must have exactly 2 distinct inputs")
        cell[e] = DARTS_OPS.index(op)
    return tuple(cell)


def _literal(node: ast.AST, text: str, what: str):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        seg = ast.get_source_segment(text, node) or ast.dump(node)
        raise ValueError(f"malformed DARTS genotype: {what} {seg!r} is not a literal") from None


def _concat(node: ast.AST, text: str, which: str) -> tuple[int, ...]:
    seg = ast.get_source_segment(text, node) or ast.dump(node)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 3):
        args = [_literal(a, text, f"{which} argument") for a in node.args]
        if not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise ValueError(f"malformed DARTS genotype: {which}={seg!r} needs int arguments")
        value = tuple(range(*args))
    else:
        value = _literal(node, text, which)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
            raise ValueError(f"malformed DARTS genotype: {which}={seg!r} must be a list of node indices")
        value = tuple(value)
    if value != CONCAT:
        raise ValueError(f"unsupported {which}={seg!r}: this space concatenates nodes {list(CONCAT)}")
    return value


class DARTSSpace(SearchSpace):
    """The DARTS space: 28 genes (14 normal + 14 reduce), 8 ops, the 2-input rule.

    ``mutate_reduce=False`` reproduces the official GeNAS/RLNAS mutation, which only mutates the
    normal cell (genes 0..13) and copies the reduction cell from the parent.
    """

    name = "darts"
    ops = DARTS_OPS
    num_genes = 2 * EDGES_PER_CELL
    edges = DARTS_EDGES
    edges_per_cell = EDGES_PER_CELL
    network_styles = ("cifar", "imagenet")
    has_auxiliary = True
    has_drop_path = True
    cost_network = {"channels": 36, "layers": 20}  # the DARTS CIFAR protocol (auxiliary head excluded)

    def __init__(self, mutate_reduce: bool = True):
        self.mutate_reduce = bool(mutate_reduce)

    def published(self) -> dict[str, Genotype]:
        """PC-DARTS, DARTS-V1/V2, RLNAS and the GeNAS genotypes (:mod:`genas.spaces.darts_genotypes`)."""
        from .darts_genotypes import GENOTYPES

        return dict(GENOTYPES)

    def __repr__(self) -> str:
        return f"DARTSSpace(mutate_reduce={self.mutate_reduce})"

    # --- structure ------------------------------------------------------------------------------
    def size(self) -> int:
        """Valid genotypes: per cell, node j picks 2 of its j inputs and a non-none op for each."""
        per_cell = 1
        for j in range(2, 2 + STEPS):
            per_cell *= comb(j, 2) * (len(self.ops) - 1) ** 2
        return per_cell ** 2

    def is_valid(self, genotype: Sequence[int]) -> bool:
        normal, reduce = split_cells(self.check(genotype))
        return cell_is_valid(normal) and cell_is_valid(reduce)

    def repair(self, genotype: Sequence[int], rng: np.random.Generator) -> Genotype:
        """``check_cand`` on each cell (normal first); a valid genotype comes back unchanged."""
        normal, reduce = split_cells(self.check(genotype))
        return repair_cell(normal, rng) + repair_cell(reduce, rng)

    def mutate(self, genotype: Sequence[int], rng: np.random.Generator, p: float) -> Genotype:
        """Mutate each gene with probability ``p`` (only genes 0..13 if ``mutate_reduce`` is off),
        then repair. With ``mutate_reduce=False`` and a valid parent the reduction cell is the
        parent's, unchanged."""
        g = list(self.check(genotype))
        n = len(self.ops)
        genes = self.num_genes if self.mutate_reduce else EDGES_PER_CELL
        for i in range(genes):
            if rng.random() < p:
                g[i] = int((g[i] + rng.integers(1, n)) % n)
        return self.repair(tuple(g), rng)

    def canonical(self, genotype: Sequence[int], rule: str = "default") -> str:
        """The cell pair with each node's two (op, input) pairs in sorted order: node inputs are
        summed, so the order of a node's two pairs does not change the function. ``strict`` is the
        same: a valid DARTS cell has no all-zero node."""
        if rule not in ("default", "strict"):
            raise ValueError(f"unknown DARTS canonical rule {rule!r}; use default or strict")
        pairs = self.to_pairs(genotype)
        cells = {}
        for which in CELL_NAMES:
            cell = pairs[which]
            cells[which] = [p for node in range(STEPS) for p in sorted(cell[2 * node: 2 * node + 2])]
        return f"normal={cells['normal']!r} reduce={cells['reduce']!r}"

    # --- encoding -------------------------------------------------------------------------------
    def to_pairs(self, genotype: Sequence[int]) -> dict[str, list[tuple[str, int]]]:
        """``{"normal": [(op, input), ...], "reduce": [...]}`` as ``parse_searched_cell`` lists them."""
        g = self.check(genotype)
        normal, reduce = split_cells(g)
        for which, cell in zip(CELL_NAMES, (normal, reduce)):
            if not cell_is_valid(cell):
                counts = [sum(1 for v in cell[sl] if v != 0) for sl in NODE_SLICES]
                raise ValueError(f"{which} cell {cell} breaks the 2-input rule (non-none inputs of "
                                 f"nodes 2..5: {counts}); it has no DARTS Genotype string")
        return {"normal": cell_pairs(normal), "reduce": cell_pairs(reduce)}

    def from_pairs(self, normal, reduce) -> Genotype:
        """Genotype from DARTS ``normal`` / ``reduce`` lists of (op, input) pairs (two per node)."""
        return _pairs_to_cell(normal, "normal") + _pairs_to_cell(reduce, "reduce")

    def format(self, genotype: Sequence[int]) -> str:
        pairs = self.to_pairs(genotype)
        concat = list(CONCAT)
        return (f"Genotype(normal={pairs['normal']!r}, normal_concat={concat!r}, "
                f"reduce={pairs['reduce']!r}, reduce_concat={concat!r})")

    def parse(self, text: str) -> Genotype:
        """A DARTS ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``
        string (keyword or positional fields; ``genotypes.Genotype(...)`` also accepted)."""
        if not isinstance(text, str):
            raise ValueError(f"DARTS Genotype string expected, got {type(text).__name__}")
        s = text.strip()
        if not s:
            raise ValueError("empty DARTS genotype string")
        try:
            tree = ast.parse(s, mode="eval")
        except SyntaxError as e:
            line = (e.text or s).rstrip("\n")
            pos = max((e.offset or 1) - 1, 0)
            near = line[max(pos - 15, 0): pos + 15]
            raise ValueError(f"malformed DARTS genotype string near {near!r}: {e.msg}") from None
        call = tree.body
        func = getattr(call, "func", None)
        fname = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if not isinstance(call, ast.Call) or fname != "Genotype":
            head = ast.get_source_segment(s, func if func is not None else call) or s[:30]
            raise ValueError(f"malformed DARTS genotype string: expected 'Genotype(...)', got {head!r}")
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        if len(call.args) > len(fields):
            raise ValueError(f"malformed DARTS genotype: {len(call.args)} positional fields, expected at most 4")
        values = dict(zip(fields, call.args))
        for kw in call.keywords:
            if kw.arg not in fields:
                raise ValueError(f"malformed DARTS genotype: unknown field {kw.arg!r}; expected {', '.join(fields)}")
            if kw.arg in values:
                raise ValueError(f"malformed DARTS genotype: field {kw.arg!r} given twice")
            values[kw.arg] = kw.value
        missing = [f for f in fields if f not in values]
        if missing:
            raise ValueError(f"malformed DARTS genotype: missing field(s) {', '.join(missing)}")
        for which in ("normal", "reduce"):
            _concat(values[f"{which}_concat"], s, f"{which}_concat")
        normal = _literal(values["normal"], s, "normal")
        reduce = _literal(values["reduce"], s, "reduce")
        return self.from_pairs(normal, reduce)

    # --- torch builders -------------------------------------------------------------------------
    def build_supernet(self, spec: NetworkSpec | None = None, **fields):
        """:class:`~genas.spaces.darts_net.DARTSSupernet` of ``spec.channels`` and ``spec.layers``."""
        from .darts_net import DARTSSupernet

        s = self.spec(spec, **fields)
        return DARTSSupernet(channels=s.channels, num_classes=s.num_classes, layers=s.layers, in_channels=s.in_channels)

    def build_network(self, genotype: Sequence[int] | str, spec: NetworkSpec | None = None, **fields):
        """Stand-alone network: ``style="cifar"`` -> NetworkCIFAR, ``"imagenet"`` -> NetworkImageNet.

        ``genotype`` may be a 28-gene tuple or a DARTS ``Genotype(...)`` string.
        """
        from .darts_net import NetworkCIFAR, NetworkImageNet

        g = self.parse(genotype) if isinstance(genotype, str) else self.check(genotype)
        s = self.spec(spec, **fields)
        styles = {"cifar": NetworkCIFAR, "imagenet": NetworkImageNet}
        if s.style not in styles:
            raise ValueError(f"unknown DARTS network style {s.style!r}; expected 'cifar' or 'imagenet'")
        return styles[s.style](g, channels=s.channels, num_classes=s.num_classes, layers=s.layers,
                               auxiliary=s.auxiliary, in_channels=s.in_channels)
