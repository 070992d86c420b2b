"""Evolutionary search as used by GeNAS (inherited from SPOS / RLNAS).

Each generation scores the new candidates, keeps the running top-k as parents, and builds the next
population from up to ``mutations`` mutants, up to ``crossovers`` crossover children and random
genotypes for the rest. Children that are invalid, already scored or already in the new population
are rejected; like the official code, each kind of child gets ``10 x`` as many tries as it needs, so
a converged population cannot stall the search (the random fill takes over).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import GenasError
from ..options import option
from ..spaces.base import Genotype
from .strategy import SearchConfig, SearchStrategy

TRIES_PER_CHILD = 10


@dataclass
class EvolutionConfig(SearchConfig):
    """GeNAS defaults: population 50, top-10 parents, 25 mutants + 25 crossovers, 20 generations."""

    mutations: int = option(25, "mutated children per generation", min=0)
    crossovers: int = option(25, "crossover children per generation", min=0)
    mutation_prob: float = option(0.1, "per-gene mutation probability", min=0, max=1)

    def validate(self):
        super().validate()
        if self.mutations + self.crossovers > self.population:
            raise GenasError(f"--mutations + --crossovers ({self.mutations} + {self.crossovers}) must not "
                             f"exceed --population {self.population}")
        return self


class Evolution(SearchStrategy):
    name = "evolution"
    cfg: EvolutionConfig

    def _next_population(self) -> list[Genotype]:
        parents = [g for g, _ in self.topk()]
        rng, space, cfg = self.rng, self.space, self.cfg
        new: list[Genotype] = []

        def pick() -> Genotype:
            return parents[int(rng.integers(len(parents)))]

        made = 0
        for _ in range(cfg.mutations * TRIES_PER_CHILD):
            if made == cfg.mutations:
                break
            made += self._accept(space.mutate(pick(), rng, cfg.mutation_prob), new)
        made = 0
        for _ in range(cfg.crossovers * TRIES_PER_CHILD):
            if made == cfg.crossovers:
                break
            a, b = pick(), pick()
            made += self._accept(space.crossover(a, b, rng), new)
        return self._random_unvisited(cfg.population, new)
