"""Random search: uniform, never-repeated genotypes, scored in batches of ``population``.

Batching the same way as evolution lets the driver checkpoint, resume and log both strategies with
one code path, and makes equal budgets directly comparable.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..spaces.base import Genotype
from .strategy import SearchConfig, SearchStrategy


@dataclass
class RandomSearchConfig(SearchConfig):
    """Random search has only the shared settings; ``population`` is the batch size."""


class RandomSearch(SearchStrategy):
    name = "random"

    def _next_population(self) -> list[Genotype]:
        return self._random_unvisited(self.cfg.population, [])
