"""What every search strategy shares: the budget, the visited table, the ask/tell loop and its state.

A strategy never calls the evaluator itself. The caller asks for the ``pending()`` candidates of the
current generation, scores them however it likes (tabular oracle, supernet, proxy) and hands the
results back with ``tell()``. Keeping evaluation outside makes a strategy a pure, torch-free state
machine whose whole state is JSON, so the driver can checkpoint it after every generation and a
resumed search draws exactly what an uninterrupted one draws.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import options, seeding
from ..errors import GenasError
from ..options import option
from ..spaces.base import Genotype, SearchSpace


@dataclass
class SearchConfig:
    """Settings every strategy has; the evaluation budget is ``population * generations``."""

    population: int = option(50, "candidates per generation (random search: the batch size)", min=1)
    topk: int = option(10, "size of the reported top-k (evolution: the parents kept for "
                           "mutation/crossover)", min=1)
    generations: int = option(20, "generations", min=1)
    seed: int = option(0, "search seed: the candidates drawn", cli=False)
    max_evaluations: int | None = option(None, "stop after this many scored candidates (a cap below population x "
                                               "generations)", min=1)

    def validate(self):
        options.validate(self)  # the bounds declared above (and a subclass's)
        return self

    @property
    def budget(self) -> int:
        cap = self.population * self.generations
        return cap if self.max_evaluations is None else min(cap, self.max_evaluations)


def as_scored(item: Any, genotype_text: str) -> tuple[float, dict | None]:
    """Split one evaluator result into (score, raw): a bare number, or a dict with a ``score`` key.

    Everything in a dict besides ``score`` is kept as raw measurements for the candidate log.
    """
    raw = None
    if isinstance(item, dict):
        if "score" not in item:
            raise TypeError(f"evaluator result for {genotype_text} is a dict without a 'score' key: {sorted(item)}")
        raw = {k: v for k, v in item.items() if k != "score"}
        item = item["score"]
    try:
        score = float(item)
    except (TypeError, ValueError):
        raise TypeError(f"evaluator returned {item!r} for {genotype_text}; expected a number") from None
    if not math.isfinite(score):
        raise GenasError(f"evaluator returned a non-finite score ({score}) for {genotype_text}")
    return score, raw


class SearchStrategy(ABC):
    """Ask/tell search over a space with a fixed evaluation budget; never scores a genotype twice.

    ``visited`` maps genotype -> score in evaluation order, which is also the tie-break order of the
    top-k (earlier first), so rankings are deterministic.
    """

    name: str

    def __init__(self, space: SearchSpace, cfg: SearchConfig):
        self.space = space
        self.cfg = cfg.validate()
        self.rng = seeding.derive_rng(seeding.SEARCH, cfg.seed)
        self.visited: dict[Genotype, float] = {}
        self.generation = 0
        self.history: list[dict] = []  # one entry per evaluated generation
        self.population: list[Genotype] = self._random_unvisited(cfg.population, [])

    # --- the ask/tell loop --------------------------------------------------------------------
    @property
    def evaluations(self) -> int:
        return len(self.visited)

    @property
    def done(self) -> bool:
        return (self.generation >= self.cfg.generations or self.evaluations >= self.cfg.budget
                or not self.pending())

    def pending(self) -> list[Genotype]:
        """Candidates of the current generation still to score, cut to the remaining budget."""
        todo = [g for g in self.population if g not in self.visited]
        return todo[: self.cfg.budget - self.evaluations]

    def tell(self, genotypes: Sequence[Genotype], results: Sequence[Any]) -> list[dict]:
        """Record the scores of ``pending()`` and move to the next generation.

        Returns one ``{"genotype", "score", "raw"}`` record per candidate, for logging.
        """
        genotypes = [tuple(g) for g in genotypes]
        if genotypes != self.pending():
            raise ValueError("tell() needs exactly the candidates returned by pending(), in order")
        if len(results) != len(genotypes):
            raise ValueError(f"evaluator returned {len(results)} results for {len(genotypes)} genotypes")
        records = []
        for g, item in zip(genotypes, results):
            score, raw = as_scored(item, self.space.format(g))
            self.visited[g] = score
            records.append({"genotype": g, "score": score, "raw": raw})
        best_g, best_score = self.best()
        self.history.append({"generation": self.generation, "evaluations": self.evaluations,
                             "best_score": best_score, "best_genotype": self.space.format(best_g)})
        self.generation += 1
        if self.generation < self.cfg.generations and self.evaluations < self.cfg.budget:
            self.population = self._next_population()
        else:
            self.population = []
        return records

    # --- rankings -----------------------------------------------------------------------------
    def topk(self, k: int | None = None) -> list[tuple[Genotype, float]]:
        """Best ``k`` (default ``cfg.topk``) visited genotypes, score descending, earlier first on ties."""
        order = sorted(enumerate(self.visited.items()), key=lambda e: (-e[1][1], e[0]))
        return [item for _, item in order[: k or self.cfg.topk]]

    def best(self) -> tuple[Genotype, float]:
        if not self.visited:
            raise ValueError("nothing has been evaluated yet")
        return self.topk(1)[0]

    # --- candidate generation -----------------------------------------------------------------
    @abstractmethod
    def _next_population(self) -> list[Genotype]:
        """The next generation's candidates: valid, unvisited and unique."""

    def _accept(self, child: Genotype, new: list[Genotype]) -> bool:
        """Append ``child`` to ``new`` if it is valid, unvisited and not already there."""
        if child in self.visited or child in new or not self.space.is_valid(child):
            return False
        new.append(child)
        return True

    def _random_unvisited(self, n: int, new: list[Genotype]) -> list[Genotype]:
        """Extend ``new`` with uniform random candidates up to ``n``; gives up when the space runs dry."""
        tries = 0
        while len(new) < n and len(self.visited) + len(new) < self.space.size() and tries < 100 * n:
            tries += 1
            self._accept(self.space.sample(self.rng), new)
        return new

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue, as JSON (genotypes as canonical strings)."""
        fmt = self.space.format
        return {
            "generation": self.generation,
            "evaluations": self.evaluations,
            "rng": self.rng.bit_generator.state,
            "visited": [[fmt(g), s] for g, s in self.visited.items()],
            "population": [fmt(g) for g in self.population],
            "topk": [[fmt(g), s] for g, s in self.topk()],  # for readers; recomputed from visited on load
            "history": self.history,
        }

    def load_state_dict(self, state: dict) -> None:
        parse = self.space.parse
        self.generation = int(state["generation"])
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = state["rng"]
        self.visited = {parse(g): float(s) for g, s in state["visited"]}
        self.population = [parse(g) for g in state["population"]]
        self.history = list(state["history"])
        if len(self.visited) != state["evaluations"]:
            raise ValueError("inconsistent search state: evaluation count does not match the visited table")
