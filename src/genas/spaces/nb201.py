"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020), pure-Python part.

A cell has 4 nodes (0 = input, 3 = output) and 6 edges i->j (i < j), each carrying one of 5 ops.
Genes follow the canonical string order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3, so the genotype
``(a, b, c, d, e, f)`` formats as ``|a~0|+|b~0|c~1|+|d~0|e~1|f~2|``. Op indices follow the NB201
API's operation list order.
"""
from __future__ import annotations

from typing import Sequence

from .base import Genotype, NetworkSpec, SearchSpace

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (source node, target node) per gene, in canonical string order
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_NODES = 4


class NB201Space(SearchSpace):
    name = "nb201"
    ops = NB201_OPS
    num_genes = len(NB201_EDGES)
    edges = NB201_EDGES
    supernet_weight_decay = 5e-4
    cost_network = {"channels": 16, "cells_per_stage": 5}  # NAS-Bench-201's network (its params/FLOPs table)
    additive_cost = True  # every edge's op is its own module with fixed shapes

    def size(self) -> int:
        return len(self.ops) ** self.num_genes

    def format(self, genotype: Sequence[int]) -> str:
        g = self.check(genotype)
        groups, k = [], 0
        for node in range(1, NUM_NODES):
            groups.append("|" + "|".join(f"{self.ops[g[k + i]]}~{i}" for i in range(node)) + "|")
            k += node
        return "+".join(groups)

    def parse(self, text: str) -> Genotype:
        if not isinstance(text, str):
            raise ValueError(f"NB201 architecture string expected, got {type(text).__name__}")
        s = text.strip()
        groups = s.split("+")
        if len(groups) != NUM_NODES - 1:
            raise ValueError(
                f"malformed NB201 string {text!r}: expected {NUM_NODES - 1} '+'-separated node groups, "
                f"got {len(groups)}")
        genes: list[int] = []
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or group[0] != "|" or group[-1] != "|":
                raise ValueError(f"malformed NB201 node group {group!r}: must look like '|op~0|...|'")
            tokens = group[1:-1].split("|")
            if len(tokens) != node:
                raise ValueError(
                    f"malformed NB201 node group {group!r}: node {node} needs {node} inputs, got {len(tokens)}")
            for src, token in enumerate(tokens):
                op, sep, idx = token.partition("~")
                if not sep:
                    raise ValueError(f"malformed NB201 token {token!r}: expected 'op~input'")
                if op not in self.ops:
                    raise ValueError(f"unknown NB201 op {op!r} in token {token!r}; known ops: {', '.join(self.ops)}")
                if idx != str(src):
                    raise ValueError(f"malformed NB201 token {token!r}: input index must be {src}")
                genes.append(self.ops.index(op))
        return tuple(genes)

    def canonical(self, genotype: Sequence[int], rule: str = "default") -> str:
        """The isomorphism class of a cell, as a string.

        ``default`` is NAS-Bench-201's own rule (xautodl ``CellStructure.to_unique_str(consider_zero=True)``):
        a ``none`` edge or an edge out of a zero node is zero (``#``), ``skip_connect`` passes its input
        on, a node is the sorted sum of its inputs; 6,466 classes among the 15,625 cells. ``strict``
        also drops zero terms from sums and treats a node whose inputs are all zero as zero, as an
        ``affine=False``, BN-recalibrated supernet computes it (5,390 classes).
        """
        if rule not in ("default", "strict"):
            raise ValueError(f"unknown NB201 canonical rule {rule!r}; use default or strict")
        g = self.check(genotype)
        nodes, k = ["0"], 0
        for node in range(1, NUM_NODES):
            terms = []
            for src in range(node):
                op, x = self.ops[g[k]], nodes[src]
                k += 1
                if op == "none" or x == "#":
                    terms.append(None if rule == "strict" else "#")
                else:
                    terms.append(x if op == "skip_connect" else f"({x})@{op}")
            live = sorted(t for t in terms if t is not None)
            nodes.append("+".join(live) if live else "#")
        return nodes[-1]

    def prune(self, genotype: Sequence[int]) -> Genotype:
        """``none`` on every edge into a node whose outgoing edges are all ``none`` (transitively):
        such an op never reaches the output, so the pruned network computes the same function with
        the same weights on the edges that remain, and both canonical rules give the same class. A
        search keeps the first string of a class it scored, which can carry such ops (an unneeded
        conv in a retrained winner)."""
        g = list(self.check(genotype))
        feeds_output = {NUM_NODES - 1}
        for node in range(NUM_NODES - 2, 0, -1):  # a node feeds the output through a live edge to a node that does
            if any(g[e] != 0 and dst in feeds_output for e, (src, dst) in enumerate(self.edges) if src == node):
                feeds_output.add(node)
        return tuple(0 if dst not in feeds_output else op for op, (_, dst) in zip(g, self.edges))

    def is_connected(self, genotype: Sequence[int]) -> bool:
        """Whether some path of non-``none`` edges leads from the input node to the output node."""
        g = self.check(genotype)
        reach = {0}
        for (src, dst), op in sorted(zip(self.edges, g), key=lambda e: e[0][1]):
            if op != 0 and src in reach:
                reach.add(dst)
        return NUM_NODES - 1 in reach

    def build_supernet(self, spec: NetworkSpec | None = None, **fields):
        from .nb201_net import NB201Supernet

        s = self.spec(spec, **fields)
        return NB201Supernet(channels=s.channels, cells_per_stage=s.cells_per_stage, num_classes=s.num_classes,
                             in_channels=s.in_channels, affine=s.affine)

    def build_network(self, genotype: Sequence[int], spec: NetworkSpec | None = None, **fields):
        from .nb201_net import NB201Network

        s = self.spec(spec, **fields)
        if s.style != "cifar" or s.auxiliary:
            raise ValueError("NB201 networks come in one style (cifar) and have no auxiliary head")
        return NB201Network(self.check(genotype), channels=s.channels, cells_per_stage=s.cells_per_stage,
                            num_classes=s.num_classes, in_channels=s.in_channels)
