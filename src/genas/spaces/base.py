"""The search-space contract, and the supernet contract the proxies rely on.

A space is a pure, cheap object (no torch import) that a search strategy can drive on its own:
genotypes are tuples of op indices, one per gene. Torch modules are only created by the
``build_*`` methods, which import their torch code lazily. Keeping the contract torch-free lets
strategies run against a tabular oracle in milliseconds.

A space owns its networks: ``build_supernet(spec)`` and ``build_network(genotype, spec)`` take one
set of space-neutral arguments (:class:`NetworkSpec`); each space reads the fields it uses.
Stand-alone networks share one training forward, ``net(x, return_aux=True) -> (logits, aux or
None)``, and carry a ``drop_path_prob`` attribute (ignored by spaces without drop path).
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

Genotype = tuple[int, ...]


@dataclass(frozen=True)
class NetworkSpec:
    """Space-neutral network arguments; a space reads what applies to it."""

    channels: int = 16  # width of the first stage (C)
    cells_per_stage: int = 5  # spaces built in stages of cells (NB201: N)
    layers: int = 8  # spaces counted in cells (DARTS: cells, two of them reductions)
    num_classes: int = 10
    in_channels: int = 3
    affine: bool = False  # supernet cell BatchNorms learn affine parameters (NB201 search nets do not)
    style: str = "cifar"  # stand-alone network style: "cifar" or, where the space has it, "imagenet"
    auxiliary: bool = False  # stand-alone auxiliary head, where the space has one

    def replace(self, **changes: Any) -> "NetworkSpec":
        return dataclasses.replace(self, **changes)


@runtime_checkable
class Supernet(Protocol):
    """What the proxies, the SPOS trainer and the scorers use of a weight-sharing supernet.

    ``forward(x, genotype)`` runs one single path; ``extract(genotype)`` returns a stand-alone
    network carrying the supernet's weights of that path and computing the same function;
    ``subnet_state_dict`` gives those weights named as in the extracted network;
    ``supernet_param_name`` maps such a name back (common random numbers key the noise by it).
    Optional: ``path_vector(state, genotype, dil_conv_quirk=False)`` for the angle metric.
    """

    spec: NetworkSpec

    def __call__(self, x: Any, genotype: Sequence[int]) -> Any: ...

    def extract(self, genotype: Sequence[int]) -> Any: ...

    def subnet_state_dict(self, genotype: Sequence[int]) -> dict: ...

    def supernet_param_name(self, name: str, genotype: Sequence[int]) -> str: ...


class SearchSpace(ABC):
    """A finite, discrete search space of cell architectures."""

    name: str
    ops: tuple[str, ...]  # op names, indexed by gene value
    num_genes: int
    network_styles: tuple[str, ...] = ("cifar",)  # stand-alone network styles it can build
    has_auxiliary: bool = False  # its stand-alone networks can have an auxiliary head
    has_drop_path: bool = False  # its stand-alone networks use drop path
    supernet_weight_decay: float = 3e-4  # SPOS training default (GeNAS: 5e-4 on NB201, 3e-4 on DARTS)
    # the evaluation network resource constraints are measured on (genas.engine.cost.CostModel):
    # NetworkSpec fields, one input image's shape, and whether its cost is a sum over genes
    cost_network: dict = {}
    cost_input: tuple[int, ...] = (3, 32, 32)
    additive_cost: bool = False

    # --- encoding -----------------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> Genotype:
        """Canonical string -> genotype. Raises ValueError naming the offending token."""

    @abstractmethod
    def format(self, genotype: Sequence[int]) -> str:
        """Genotype -> canonical string."""

    def check(self, genotype: Sequence[int]) -> Genotype:
        """Validate the shape and value range of a genotype and return it as a tuple of ints."""
        g = tuple(int(v) for v in genotype)
        if len(g) != self.num_genes:
            raise ValueError(f"{self.name} genotype needs {self.num_genes} genes, got {len(g)}: {g}")
        for v in g:
            if not 0 <= v < len(self.ops):
                raise ValueError(f"{self.name} gene value {v} out of range 0..{len(self.ops) - 1}")
        return g

    # --- sampling and variation ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genotype:
        """A uniformly random valid genotype."""
        g = tuple(int(v) for v in rng.integers(0, len(self.ops), size=self.num_genes))
        return self.repair(g, rng)

    def mutate(self, genotype: Sequence[int], rng: np.random.Generator, p: float) -> Genotype:
        """Replace each gene with probability ``p`` by a uniformly drawn *different* op.

        The official GeNAS/RLNAS code may redraw the same op; drawing a different one makes every
        selected gene a real change, so fewer children are rejected as already visited.
        """
        g = list(self.check(genotype))
        n = len(self.ops)
        for i in range(self.num_genes):
            if rng.random() < p:
                g[i] = int((g[i] + rng.integers(1, n)) % n)
        return self.repair(tuple(g), rng)

    def crossover(self, a: Sequence[int], b: Sequence[int], rng: np.random.Generator) -> Genotype:
        """Uniform crossover: each gene from ``a`` or ``b`` with probability 1/2."""
        a, b = self.check(a), self.check(b)
        take_a = rng.random(self.num_genes) < 0.5
        child = tuple(x if t else y for x, y, t in zip(a, b, take_a))
        return self.repair(child, rng)

    def is_valid(self, genotype: Sequence[int]) -> bool:
        """Whether the genotype obeys the space's structural rules (always true unless overridden)."""
        self.check(genotype)
        return True

    def repair(self, genotype: Sequence[int], rng: np.random.Generator) -> Genotype:
        """Return a valid genotype close to ``genotype`` (identity for spaces without rules)."""
        return self.check(genotype)

    def is_connected(self, genotype: Sequence[int]) -> bool:
        """Whether the network's output depends on its input (a cell of zeros does not: ground
        truth records it at chance level without training)."""
        self.check(genotype)
        return True

    @abstractmethod
    def size(self) -> int:
        """Number of distinct genotypes."""

    # --- torch builders -----------------------------------------------------------------------
    def canonical(self, genotype: Sequence[int], rule: str = "default") -> str:
        """A string shared exactly by genotypes that compute the same function (their isomorphism
        class); without a rule of its own, a space treats every genotype as distinct."""
        return self.format(genotype)

    def prune(self, genotype: Sequence[int]) -> Genotype:
        """The same network without modules that cannot reach its output (what a search winner is
        retrained as); identity for a space in which every op reaches the output."""
        return self.check(genotype)

    def published(self) -> dict[str, Genotype]:
        """Published architectures of this space by name (``--genotype NAME``); none by default."""
        return {}

    @staticmethod
    def spec(spec: NetworkSpec | None = None, **fields: Any) -> NetworkSpec:
        """``spec`` with ``fields`` replaced (a fresh default spec when ``spec`` is None)."""
        return (spec or NetworkSpec()).replace(**fields)

    @abstractmethod
    def build_supernet(self, spec: NetworkSpec | None = None, **fields: Any) -> Supernet:
        """A weight-sharing supernet (:class:`Supernet`) whose ``forward(x, genotype)`` runs one path."""

    @abstractmethod
    def build_network(self, genotype: Sequence[int], spec: NetworkSpec | None = None, **fields: Any):
        """A stand-alone network for one genotype (``forward(x, return_aux=False)``)."""
