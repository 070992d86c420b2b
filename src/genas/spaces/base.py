"""The search-space contract.

A space is a pure, cheap object (no torch import) that a search strategy can drive on its own:
genotypes are tuples of op indices, one per gene. Torch modules are only created by the
``build_*`` methods, which import their torch code lazily. Keeping the contract torch-free lets
strategies run against a tabular oracle in milliseconds.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

Genotype = tuple[int, ...]


class SearchSpace(ABC):
    """A finite, discrete search space of cell architectures."""

    name: str
    ops: tuple[str, ...]  # op names, indexed by gene value
    num_genes: int

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

    @abstractmethod
    def size(self) -> int:
        """Number of distinct genotypes."""

    # --- torch builders -----------------------------------------------------------------------
    @abstractmethod
    def build_supernet(self, **kwargs):
        """A weight-sharing supernet whose ``forward(x, genotype)`` runs one single path."""

    @abstractmethod
    def build_network(self, genotype: Sequence[int], **kwargs):
        """A stand-alone network for one genotype."""
