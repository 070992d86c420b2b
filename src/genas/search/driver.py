"""Run a search into a folder, checkpointing after every generation so it survives ``kill -9``.

Folder layout:

* ``state.json``       strategy state after the last finished generation (config, RNG, scores, population)
* ``candidates.jsonl`` one line per scored candidate: genotype, score, raw measurements, generation,
                       evaluation wall time and unix time
* ``result.json``      best genotype, top-k and per-generation best; deterministic (no times), so a
                       resumed run writes the same bytes as an uninterrupted one with the same seed

Order of writes per generation: log lines first, then ``state.json``. A crash in between leaves log
lines of a generation the state does not contain; resuming drops them and scores that generation again.

Scale-out: under ``torchrun`` every rank runs the same strategy from the same state, scores only its
round-robin share of each generation and all-gathers the results (:class:`Shards`), so every rank
tells its strategy the same results in the same order and the ranks stay in lock-step. Only rank 0
writes files; the result is the single-process result, byte for byte.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from ..errors import GenasError
from ..io import append_jsonl, load_json, save_json, write_jsonl
from .. import options
from ..options import to_dict
from ..run_folder import RunFolder
from ..spaces.base import Genotype, SearchSpace
from .evolution import Evolution, EvolutionConfig
from .random_search import RandomSearch, RandomSearchConfig
from .strategy import SearchConfig, SearchStrategy

STATE, LOG, RESULT = "state.json", "candidates.jsonl", "result.json"
STATE_VERSION = 1
# what a search saved before a setting existed ran with, where not today's default (declared with the
# fields: ``option(legacy=...)``): every string scored
LEGACY_CONFIG = options.legacy(SearchConfig)

# strategy name -> (strategy class, config class)
STRATEGIES: dict[str, tuple[type[SearchStrategy], type[SearchConfig]]] = {
    "evolution": (Evolution, EvolutionConfig),
    "random": (RandomSearch, RandomSearchConfig),
}

Evaluate = Callable[[list[Genotype]], Sequence[Any]]


def _alone(obj: Any) -> list:
    """The all-gather of a world of one."""
    return [obj]


@dataclass(frozen=True)
class Shards:
    """This process's place among the processes that share the scoring of a search.

    ``gather(obj)`` must return every rank's ``obj`` in rank order on every rank (e.g.
    :meth:`genas.distributed.DistContext.all_gather`); it is passed in so that this module needs
    no torch. The default is a single process, which scores whole generations itself.
    """

    rank: int = 0
    world: int = 1
    gather: Callable[[Any], list] = _alone

    def __post_init__(self):
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"bad shard: rank {self.rank} of {self.world}")

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files, so ranks never race on the same path."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every rank (a gather of nothing), e.g. before rank 0 writes what others checked."""
        if self.distributed:
            self.gather(None)


def shard_positions(n: int, rank: int, world: int) -> list[int]:
    """Positions in a batch of ``n`` that ``rank`` scores: round-robin, so that a generation's
    cheap and expensive candidates (usually mixed at random) spread evenly over the ranks."""
    return list(range(rank, n, world))


def score_shard(evaluate: Evaluate, batch: Sequence[Genotype], shards: Shards) -> list[tuple[int, Any, float]]:
    """Score this rank's share of ``batch`` one candidate at a time: (position, result, seconds).

    One call per candidate gives each candidate its own wall time, measured where it was scored.
    """
    out = []
    for i in shard_positions(len(batch), shards.rank, shards.world):
        t0 = time.perf_counter()
        results = evaluate([batch[i]])
        if len(results) != 1:
            raise ValueError(f"evaluator returned {len(results)} results for 1 genotype")
        out.append((i, results[0], time.perf_counter() - t0))
    return out


def reassemble(parts: Sequence[Sequence[tuple[int, Any, float]]], n: int) -> tuple[list, list[float], list[int]]:
    """Every rank's (position, result, seconds) back in batch order: (results, seconds, rank per candidate).

    Checks that the shares cover the batch exactly once, since a gap would silently shift results
    onto the wrong genotypes.
    """
    slots: list[tuple | None] = [None] * n
    for rank, part in enumerate(parts):
        for i, result, seconds in part:
            if not 0 <= i < n or slots[i] is not None:
                raise RuntimeError(f"rank {rank} returned position {i}, which is out of range or already scored")
            slots[i] = (result, seconds, rank)
    missing = [i for i, s in enumerate(slots) if s is None]
    if missing:
        raise RuntimeError(f"no rank scored positions {missing} of the batch")
    return [s[0] for s in slots], [s[1] for s in slots], [s[2] for s in slots]


def evaluate_sharded(evaluate: Evaluate, batch: Sequence[Genotype], shards: Shards) -> tuple[list, list[float], list[int]]:
    """Score ``batch`` across the ranks; every rank gets all results in batch order.

    A rank whose scoring fails still joins the gather (with its error), so the other ranks raise
    too instead of waiting forever for it.
    """
    try:
        local: tuple[str, Any] = ("ok", score_shard(evaluate, batch, shards))
    except Exception as exc:  # noqa: BLE001 - re-raised below, on every rank
        local = ("error", f"{type(exc).__name__}: {exc}")
        error = exc
    else:
        error = None
    parts = shards.gather(local)
    if error is not None:
        raise error
    failed = [(r, msg) for r, (status, msg) in enumerate(parts) if status == "error"]
    if failed:
        raise GenasError("; ".join(f"rank {r} failed while scoring: {msg}" for r, msg in failed))
    return reassemble([payload for _, payload in parts], len(batch))


def _evaluate_generation(evaluate: Evaluate, batch: list[Genotype], shards: Shards) -> tuple[list, list[float], list[int] | None]:
    """(results, seconds per candidate, scoring rank per candidate or None for a single process)."""
    if shards.distributed:
        return evaluate_sharded(evaluate, batch, shards)
    t0 = time.perf_counter()
    results = evaluate(list(batch))
    seconds = (time.perf_counter() - t0) / len(batch)  # batch time shared out evenly
    return results, [seconds] * len(batch), None


def _lookup(strategy: str):
    try:
        return STRATEGIES[strategy]
    except KeyError:
        raise GenasError(f"unknown search strategy {strategy!r}; available: {', '.join(STRATEGIES)}") from None


def make_config(strategy: str, **overrides) -> SearchConfig:
    """The strategy's config with defaults replaced by every override that is not None (validated)."""
    cls = _lookup(strategy)[1]
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(values) - known)
    if unknown:
        names = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise GenasError(f"{names} does not apply to {strategy} search")
    return cls(**values).validate()


def make_strategy(strategy: str, space: SearchSpace, cfg: SearchConfig, cost=None) -> SearchStrategy:
    strategy_cls, cfg_cls = _lookup(strategy)
    if type(cfg) is not cfg_cls:
        raise TypeError(f"{strategy} search needs a {cfg_cls.__name__}, got {type(cfg).__name__}")
    return strategy_cls(space, cfg, cost)


def read_search_config(out_dir: str | Path) -> tuple[str, SearchConfig]:
    """(strategy, config) of the search saved in ``out_dir``, e.g. to resume without repeating options."""
    state = _load_state(Path(out_dir))
    return state["strategy"], make_config(state["strategy"], **state["config"])


def _load_state(out_dir: Path) -> dict:
    state = load_json(out_dir / STATE)
    if state.get("version") != STATE_VERSION:
        raise GenasError(f"{out_dir / STATE} has unsupported version {state.get('version')!r}")
    state["config"] = {**LEGACY_CONFIG, **state["config"]}
    return state


def _check_same_run(saved: dict, header: dict, out_dir: Path) -> None:
    if saved["strategy"] != header["strategy"] or saved["space"] != header["space"]:
        raise GenasError(f"cannot resume: {out_dir} holds a {saved['strategy']} search on {saved['space']}, "
                         f"not {header['strategy']} on {header['space']}")
    diff = [f"{k}={saved['config'].get(k)!r} (now {v!r})" for k, v in header["config"].items()
            if saved["config"].get(k) != v]
    diff += [f"{k}={v!r} (now missing)" for k, v in saved["config"].items() if k not in header["config"]]
    if diff:
        raise GenasError(f"cannot resume {out_dir} with a different config: saved {', '.join(diff)}")


def search_result(strat: SearchStrategy, extra: dict | None = None) -> dict:
    """The deterministic summary written as ``result.json``."""
    fmt = strat.space.format
    best_g, best_score = strat.best()
    result = {
        "strategy": strat.name,
        "config": to_dict(strat.cfg),
        "space": strat.space.name,
        "best": {"genotype": fmt(best_g), "score": best_score},
        "topk": [{"genotype": fmt(g), "score": s} for g, s in strat.topk()],
        "evaluations": strat.evaluations,
        "best_per_generation": strat.history,
    }
    if strat.cfg.dedup != "off":  # how many strings each function stood for, and the scorings saved
        strings = {g: 1 for g in strat.visited}
        for rep, _ in strat.copies.values():
            strings[rep] += 1
        for entry, (g, _) in zip(result["topk"], strat.topk()):
            entry["strings"] = strings[g]
        result["best"]["strings"] = strings[best_g]
        result["copies"] = len(strat.copies)
    clash = sorted(set(result) & set(extra or {}))
    if clash:
        raise ValueError(f"extra_result may not override {clash}")
    result.update(extra or {})
    return result


def run_search(space: SearchSpace, evaluate: Evaluate, strategy: str, cfg: SearchConfig, out_dir: str | Path,
               resume: bool = False, progress: bool | None = None, extra_result: dict | None = None,
               shards: Shards | None = None, cost=None) -> dict:
    """Run (or, with ``resume``, continue) a search into ``out_dir`` and return the result dict.

    ``evaluate(genotypes) -> list`` scores a batch; each item is a float (higher is better) or a dict
    with a ``"score"`` plus raw measurements for the log. ``progress``: None shows a bar only on a
    terminal, False hides it. Resuming a folder without ``state.json`` starts a fresh search there
    (a run killed before its first checkpoint has nothing to lose). ``shards``: this process's rank
    when several processes share the scoring (see :class:`Shards`); every rank returns the result.
    ``cost(genotype) -> {"params", "macs"}`` serves the config's resource limits and, when given,
    is recorded in every candidate line.
    """
    out_dir = Path(out_dir)
    shards = shards or Shards()
    folder = RunFolder(out_dir, f"{strategy} search", STATE)
    with folder.locked(shards.is_main):
        return _run_search(space, evaluate, strategy, cfg, folder, resume, progress, extra_result, shards, cost)


def _candidate_lines(strat: SearchStrategy, records: list[dict], generation: int, seconds, ranks, now: float,
                     cost, copies_before: int) -> list[dict]:
    """The log lines of one generation: its scored candidates, then the strings proposed after it
    whose function was already scored (``copy_of``: the scored string whose score they share)."""
    fmt, lines = strat.space.format, []
    for i, rec in enumerate(records):
        line = {"genotype": fmt(rec["genotype"]), "score": rec["score"], "raw": rec["raw"],
                "generation": generation, "seconds": round(seconds[i], 6), "time": round(now, 3)}
        if ranks is not None:
            line["rank"] = ranks[i]
        lines.append(line)
    for g, (rep, _) in list(strat.copies.items())[copies_before:]:
        lines.append({"genotype": fmt(g), "score": strat.visited[rep], "raw": None, "copy_of": fmt(rep),
                      "generation": generation, "seconds": 0.0, "time": round(now, 3)})
    if cost is not None:
        for line in lines:
            line.update(cost(strat.space.parse(line["genotype"])))
    return lines


def _run_search(space: SearchSpace, evaluate: Evaluate, strategy: str, cfg: SearchConfig, folder: RunFolder,
                resume: bool, progress: bool | None, extra_result: dict | None, shards: Shards, cost=None) -> dict:
    out_dir = folder.path
    strat = make_strategy(strategy, space, cfg, cost)
    header = {"version": STATE_VERSION, "strategy": strategy, "space": space.name, "config": to_dict(cfg)}
    resuming = folder.open(resume, missing_ok=True)
    if resuming:
        saved = _load_state(out_dir)
        _check_same_run(saved, header, out_dir)
        strat.load_state_dict(saved["search"])
    shards.barrier()  # every rank has read the folder before rank 0 changes it
    if shards.is_main and resuming:  # drop log lines of the generation the state does not contain
        folder.trim_log(LOG, lambda r: r.get("generation", -1) < strat.generation)
    elif shards.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl([], out_dir / LOG)
        save_json({**header, "search": strat.state_dict()}, out_dir / STATE)

    n_gen = min(cfg.generations, -(-cfg.budget // cfg.population))
    hide = not shards.is_main or progress is False
    bar = tqdm(total=n_gen, initial=min(strat.generation, n_gen), desc=f"{strategy} search", unit="gen",
               disable=True if hide else (None if progress is None else False), dynamic_ncols=True)
    with bar:
        while not strat.done:
            generation, batch, t0 = strat.generation, strat.pending(), time.perf_counter()
            results, seconds, ranks = _evaluate_generation(evaluate, list(batch), shards)
            now = time.time()
            copies_before = len(strat.copies)
            records = strat.tell(batch, results)
            if shards.is_main:
                for line in _candidate_lines(strat, records, generation, seconds, ranks, now, cost, copies_before):
                    append_jsonl(line, out_dir / LOG)
                save_json({**header, "search": strat.state_dict()}, out_dir / STATE)
            last = strat.history[-1]
            bar.update(1)
            bar.set_postfix(evals=last["evaluations"], best=f"{last['best_score']:.4g}")
            if shards.is_main:  # one line per generation, on the console and in genas.log
                logging.getLogger("genas").info(
                    "%s search generation %d/%d: %d evaluations, best %.6g, %.1f s", strategy, generation + 1, n_gen,
                    last["evaluations"], last["best_score"], time.perf_counter() - t0)
    if not strat.visited:
        raise GenasError(f"the search evaluated nothing: no valid genotype could be drawn from {space.name}")
    result = search_result(strat, extra_result)
    if shards.is_main:
        save_json(result, out_dir / RESULT)
    shards.barrier()  # no rank returns (and reads result.json) before rank 0 has written it
    return result
