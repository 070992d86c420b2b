"""What every search strategy shares: the budget, the visited table, the ask/tell loop and its state.

A strategy never calls the evaluator itself. The caller asks for the ``pending()`` candidates of the
current generation, scores them however it likes (tabular oracle, supernet, proxy) and hands the
results back with ``tell()``. Keeping evaluation outside makes a strategy a pure, torch-free state
machine whose whole state is JSON, so the driver can checkpoint it after every generation and a
resumed search draws exactly what an uninterrupted one draws.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .. import options, seeding
from ..errors import GenasError
from ..options import option
from ..spaces.base import Genotype, SearchSpace

DEDUP_RULES = ("auto", "default", "strict", "off")


def resolve_dedup(cfg: "SearchConfig", supernet: bool) -> "SearchConfig":
    """``auto`` made concrete for what scores the candidates, so the folder records the rule it ran.

    On a supernet, ``strict``: its ``affine=False`` BatchNorms, recalibrated, turn an op applied to
    an all-zero node into exact zeros, so strings that differ only there score bit-identically (the
    demo's top-3 under NB201's rule were one function with one score). A tabular benchmark trained each string
    stand-alone with affine BN, where such an op adds a learned constant: NB201's own rule
    (``default``) is the exact one there.
    """
    if cfg.dedup != "auto":
        return cfg
    return dataclasses.replace(cfg, dedup="strict" if supernet else "default")


FEASIBILITY_DRAWS = 64  # random genotypes tried up front before a constraint is called impossible
Cost = Callable[[Genotype], dict]


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
    dedup: str = option("auto", "score each function once: a candidate equivalent to one already scored "
                                "(same canonical form under the space's default or strict rule) is not scored "
                                "again and does not count against the budget; auto = strict on a supernet "
                                "(exact for its affine=False BN), default (NB201's rule) on a tabular "
                                "benchmark; off = every new string is scored (the paper's protocol)",
                        choices=DEDUP_RULES, legacy="off")  # searches saved before dedup scored every string
    min_params: float | None = option(None, "resource constraint: fewest parameters, counted on the space's "
                                            "evaluation network (NB201 C=16 N=5, DARTS C=36 20 cells; 3x32x32 "
                                            "input, 10 classes)", min=0)
    max_params: float | None = option(None, "resource constraint: most parameters (evaluation network as "
                                            "for --min-params)", min=0)
    min_macs: float | None = option(None, "resource constraint: fewest multiply-accumulates of one image "
                                          "(evaluation network as for --min-params)", min=0)
    max_macs: float | None = option(None, "resource constraint: most multiply-accumulates of one image "
                                          "(evaluation network as for --min-params)", min=0)

    def validate(self):
        options.validate(self)  # the bounds declared above (and a subclass's)
        for what in ("params", "macs"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if lo is not None and hi is not None and lo > hi:
                raise GenasError(f"--min-{what} {lo:g} exceeds --max-{what} {hi:g}")
        return self

    @property
    def limits(self) -> dict[str, tuple[float | None, float | None]]:
        """The resource limits that are set: {"params" | "macs": (low or None, high or None)}."""
        out = {}
        for what in ("params", "macs"):
            lo, hi = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if lo is not None or hi is not None:
                out[what] = (lo, hi)
        return out

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


def within(cfg: SearchConfig, cost: Cost | None, genotype: Genotype) -> bool:
    """Whether ``genotype`` meets the config's resource limits (always, without limits)."""
    limits = cfg.limits
    if not limits:
        return True
    measured = cost(genotype)
    return all((lo is None or measured[w] >= lo) and (hi is None or measured[w] <= hi)
               for w, (lo, hi) in limits.items())


def check_limits(space: SearchSpace, cfg: SearchConfig, cost: Cost | None) -> None:
    """A resource limit no genotype meets is an error before anything is scored (callers run it
    before loading data): every genotype is checked when the space is small and every gene
    combination valid (NB201), else a seeded sample of ``FEASIBILITY_DRAWS``."""
    if not cfg.limits:
        return
    if cost is None:
        raise ValueError("resource limits need a cost function")
    n_ops = len(space.ops)
    if n_ops ** space.num_genes == space.size() <= 20_000:
        pool, what = itertools.product(range(n_ops), repeat=space.num_genes), "none of its"
    else:
        rng = seeding.derive_rng(seeding.SEARCH, cfg.seed, 1)
        pool, what = (space.sample(rng) for _ in range(FEASIBILITY_DRAWS)), f"none of {FEASIBILITY_DRAWS} sampled"
    seen: dict[str, list] = {"params": [], "macs": []}
    for g in pool:
        if within(cfg, cost, g):
            return
        for k, v in cost(g).items():
            seen.setdefault(k, []).append(v)
    limits = ", ".join(f"{w} in [{'-' if lo is None else f'{lo:g}'}, {'-' if hi is None else f'{hi:g}'}]"
                       for w, (lo, hi) in cfg.limits.items())
    ranges = ", ".join(f"{k} {min(v):g}-{max(v):g}" for k, v in seen.items() if v)
    raise GenasError(f"no {space.name} architecture meets the resource limits ({limits}): {what} "
                     f"architectures does (they span {ranges})")


class SearchStrategy(ABC):
    """Ask/tell search over a space with a fixed evaluation budget; never scores a genotype twice,
    and with ``dedup`` never a function twice.

    ``visited`` maps genotype -> score in evaluation order, which is also the tie-break order of the
    top-k (earlier first), so rankings are deterministic. With ``dedup`` (the space's
    ``canonical`` rule), a proposed string whose function was already scored is rejected, so a
    mutation or crossover tries again for a new function, and is remembered in ``copies`` (string ->
    (the scored string it copies, the generation after which it was proposed)) for the log.
    ``cost(genotype) -> {"params", "macs"}`` serves the resource limits: candidates outside them
    are redrawn before scoring and never count against the budget.
    """

    name: str

    def __init__(self, space: SearchSpace, cfg: SearchConfig, cost: Cost | None = None):
        self.space = space
        self.cfg = cfg.validate()
        self.cost = cost
        self.rng = seeding.derive_rng(seeding.SEARCH, cfg.seed)
        self.visited: dict[Genotype, float] = {}
        self.classes: dict[str, Genotype] = {}  # canonical form -> its scored string (dedup only)
        self.copies: dict[Genotype, tuple[Genotype, int]] = {}
        self._keys: dict[Genotype, str] = {}
        self.generation = 0
        self.history: list[dict] = []  # one entry per evaluated generation
        check_limits(space, self.cfg, cost)
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
            if self.cfg.dedup != "off":
                self.classes.setdefault(self.key(g), g)
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

    def key(self, genotype: Genotype) -> str:
        """The function class of a genotype under the dedup rule (cached: proposals repeat)."""
        if genotype not in self._keys:
            rule = "default" if self.cfg.dedup == "auto" else self.cfg.dedup  # unresolved: the stand-alone rule
            self._keys[genotype] = self.space.canonical(genotype, rule)
        return self._keys[genotype]

    def within_limits(self, genotype: Genotype) -> bool:
        return within(self.cfg, self.cost, genotype)

    def _accept(self, child: Genotype, new: list[Genotype]) -> bool:
        """Append ``child`` to ``new`` if it is valid, inside the limits, unvisited and not already
        there; with dedup also of a function neither scored nor already in ``new``."""
        if child in self.visited or child in self.copies or child in new or not self.space.is_valid(child):
            return False
        if not self.within_limits(child):
            return False
        if self.cfg.dedup != "off":
            key = self.key(child)
            if key in self.classes:  # tell() moved the generation on before building this population
                self.copies[child] = (self.classes[key], self.generation - 1)
                return False
            if any(self.key(g) == key for g in new):
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
            "copies": [[fmt(c), fmt(rep), gen] for c, (rep, gen) in self.copies.items()],
        }

    def load_state_dict(self, state: dict) -> None:
        parse = self.space.parse
        self.generation = int(state["generation"])
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = state["rng"]
        self.visited = {parse(g): float(s) for g, s in state["visited"]}
        self.population = [parse(g) for g in state["population"]]
        self.history = list(state["history"])
        self.copies = {parse(c): (parse(rep), int(gen)) for c, rep, gen in state.get("copies", [])}
        self.classes = {}
        if self.cfg.dedup != "off":
            for g in self.visited:
                self.classes.setdefault(self.key(g), g)
        if len(self.visited) != state["evaluations"]:
            raise ValueError("inconsistent search state: evaluation count does not match the visited table")
