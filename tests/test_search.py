"""Search strategies: budgets, uniqueness, determinism, kill -9 resume, tabular oracle, no torch."""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genas.errors import GenasError
from genas.search import (LOG, RESULT, STATE, TabularOracle, make_config, make_strategy, read_search_config,
                          run_search)
from genas.spaces import get_space
from genas.spaces.nb201 import NB201_OPS, NB201Space

NB201_CSV = Path(__file__).resolve().parents[2] / "shared/data/nb201/nats_tss_test_acc_200ep.csv"
C10 = "CIFAR10TestAccuracy200Epochs"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.exists(), reason=f"NB201 table not found at {NB201_CSV}")


def run_in_memory(strategy, space, evaluate, **cfg):
    """Drive a strategy to completion without a folder (what the benchmark does)."""
    strat = make_strategy(strategy, space, make_config(strategy, **cfg))
    while not strat.done:
        batch = strat.pending()
        strat.tell(batch, evaluate(batch))
    return strat


class Recorder:
    """Wraps an evaluator and records every genotype it is asked to score."""

    def __init__(self, evaluate):
        self.evaluate, self.seen = evaluate, []

    def __call__(self, genotypes):
        self.seen += [tuple(g) for g in genotypes]
        return self.evaluate(genotypes)


def synthetic(genotypes):
    """Cheap deterministic scores with many ties (exercises the tie-break)."""
    return [float(sum((i + 1) * (v + 1) ** 2 for i, v in enumerate(g)) % 23) for g in genotypes]


class ConnectedNB201(NB201Space):
    """NB201 with a structural rule, so invalid children actually occur and must be rejected."""

    def is_valid(self, genotype):
        return self.is_connected(genotype)


class TinySpace(NB201Space):
    """2 ops x 6 edges = 64 genotypes: small enough to run out of unvisited candidates."""

    name = "tiny"
    ops = NB201_OPS[:2]


@pytest.fixture(scope="module")
def c10():
    return TabularOracle(NB201_CSV, C10, get_space("nb201"))


# --- strategies on the real table ----------------------------------------------------------------
@needs_nb201
def test_evolution_beats_random_on_nb201(c10):
    space = get_space("nb201")
    evo = [run_in_memory("evolution", space, c10, seed=s, max_evaluations=100, dedup="off").best()[1] for s in range(5)]
    rnd = [run_in_memory("random", space, c10, seed=s, max_evaluations=100, dedup="off").best()[1] for s in range(5)]
    # the paper's protocol (every new string scored); measured on seeds 0-4: evolution 94.265 vs random 93.922 mean best CIFAR-10 test accuracy after
    # 100 queries (over 100 seeds: 94.042 vs 93.859, results/tabular-search). Both share their first 50
    # random candidates, so the gap is what one evolved generation adds.
    assert np.mean(evo) >= 94.2
    assert np.mean(evo) - np.mean(rnd) >= 0.2
    assert all(e >= r for e, r in zip(evo, rnd))


@needs_nb201
def test_evolution_reaches_near_optimum_within_1000_queries(c10):
    strat = run_in_memory("evolution", get_space("nb201"), c10, seed=0)
    assert strat.evaluations == 1000
    assert strat.best()[1] >= 94.3  # measured: 94.3733, the table's optimum
    assert strat.best()[1] == pytest.approx(c10.optimum()[1])


@needs_nb201
@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_budget_uniqueness_and_validity(strategy, c10):
    space = ConnectedNB201()
    rec = Recorder(c10)
    strat = run_in_memory(strategy, space, rec, seed=1, max_evaluations=137)
    assert len(rec.seen) == strat.evaluations == 137  # partial last generation: 50 + 50 + 37
    assert [h["evaluations"] for h in strat.history] == [50, 100, 137]
    assert len(set(rec.seen)) == len(rec.seen)
    assert all(space.check(g) == g and space.is_connected(g) for g in rec.seen)
    best = [h["best_score"] for h in strat.history]
    assert best == sorted(best)  # running best never decreases
    # a cap only truncates: the capped run is the prefix of the uncapped one (the benchmark relies on it)
    full = run_in_memory(strategy, space, c10, seed=1)
    assert list(full.visited.items())[:137] == list(strat.visited.items())


def test_default_budget_is_population_times_generations():
    rec = Recorder(synthetic)
    strat = run_in_memory("evolution", get_space("nb201"), rec, population=12, topk=4, mutations=5, crossovers=5,
                          generations=7, seed=2)
    assert len(rec.seen) == len(set(rec.seen)) == 84 and len(strat.history) == 7


@pytest.mark.parametrize("strategy", ["evolution", "random"])
@pytest.mark.parametrize("dedup", ["off", "default", "strict"])
def test_stops_when_space_is_exhausted(strategy, dedup):
    rec, space = Recorder(synthetic), TinySpace()
    children = dict(mutations=8, crossovers=8) if strategy == "evolution" else {}
    strat = run_in_memory(strategy, space, rec, population=20, topk=5, generations=10, seed=0, dedup=dedup,
                          **children)
    everything = list(itertools.product(range(2), repeat=6))
    functions = len(everything) if dedup == "off" else len({space.canonical(g, dedup) for g in everything})
    assert functions == {"off": 64, "default": 8, "strict": 5}[dedup]
    assert strat.evaluations == len(set(rec.seen)) == len(rec.seen) == functions
    if dedup != "off":  # every string of the space was scored or proposed as a copy of its scored function
        assert len({space.canonical(g, dedup) for g in rec.seen}) == functions
        for copy, (rep, _) in strat.copies.items():
            assert space.canonical(copy, dedup) == space.canonical(rep, dedup) and rep in strat.visited


def test_same_seed_same_search_and_deterministic_ties():
    space = get_space("nb201")
    a = run_in_memory("evolution", space, synthetic, population=20, topk=5, mutations=8, crossovers=8,
                      generations=5, seed=7)
    b = run_in_memory("evolution", space, synthetic, population=20, topk=5, mutations=8, crossovers=8,
                      generations=5, seed=7)
    c = run_in_memory("evolution", space, synthetic, population=20, topk=5, mutations=8, crossovers=8,
                      generations=5, seed=8)
    assert list(a.visited.items()) == list(b.visited.items())
    assert list(a.visited) != list(c.visited)
    order = list(a.visited)
    top = a.topk()
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    for (g1, s1), (g2, s2) in zip(top, top[1:]):
        if s1 == s2:  # ties: first seen first
            assert order.index(g1) < order.index(g2)


# --- driver: folder, resume, errors ------------------------------------------------------------
HELPER = """
import os, signal, sys
from pathlib import Path
from genas.search import make_config, run_search
from genas.spaces import get_space

kill_at = int(os.environ.get("KILL_AFTER", "0"))
done = 0

def evaluate(batch):
    global done
    out = []
    for g in batch:
        if kill_at and done == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        done += 1
        score = sum((i + 1) * (v + 1) ** 2 for i, v in enumerate(g)) % 23 / 23
        out.append({"score": score, "losses": [score / 2, score / 3]})
    return out

cfg = make_config("evolution", population=10, topk=3, mutations=4, crossovers=4, generations=6, seed=3,
                  max_evaluations=55)
run_search(get_space("nb201"), evaluate, "evolution", cfg, Path(sys.argv[1]), resume=len(sys.argv) > 2,
           progress=False, extra_result={"evaluator": "synthetic"})
"""


def _helper(tmp_path, out, *flags, kill_after=0):
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent(HELPER))
    env = dict(os.environ, KILL_AFTER=str(kill_after))
    return subprocess.run([sys.executable, str(script), str(out), *flags], env=env, capture_output=True,
                          text=True, timeout=120)


def _log_without_times(path):
    return [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in map(json.loads,
                                                                                   path.read_text().splitlines())]


def test_kill9_and_resume_gives_identical_result(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert _helper(tmp_path, ref).returncode == 0

    # killed in the middle of generation 1 (10 + 7 evaluations done)
    assert _helper(tmp_path, run, kill_after=17).returncode == -signal.SIGKILL
    assert not (run / RESULT).exists()
    # resumed at generation 1, killed exactly when generation 2 starts (its checkpoint is written)
    assert _helper(tmp_path, run, "--resume", kill_after=10).returncode == -signal.SIGKILL
    state = json.loads((run / STATE).read_text())
    assert state["search"]["generation"] == 2
    # a crash between log lines and checkpoint leaves lines of an unsaved generation: resume drops them
    with open(run / LOG, "a") as f:
        f.write(json.dumps({"genotype": "bogus", "score": 0.0, "generation": 2}) + "\n")
    finished = _helper(tmp_path, run, "--resume")
    assert finished.returncode == 0, finished.stderr

    assert (run / RESULT).read_bytes() == (ref / RESULT).read_bytes()
    log = _log_without_times(run / LOG)
    assert log == _log_without_times(ref / LOG)
    scored = [r for r in log if "copy_of" not in r]
    space = get_space("nb201")
    assert len(scored) == 55 and len({space.canonical(space.parse(r["genotype"])) for r in scored}) == 55
    assert len(log) == 55 + json.loads((ref / RESULT).read_text())["copies"]
    assert log[0]["raw"]["losses"] and {"seconds", "time"} <= set(json.loads((run / LOG).open().readline()))
    result = json.loads((ref / RESULT).read_text())
    assert result["evaluations"] == 55 and result["evaluator"] == "synthetic"
    assert len(result["topk"]) == 3 and result["best"] == result["topk"][0]
    assert read_search_config(run)[1] == make_config("evolution", population=10, topk=3, mutations=4,
                                                     crossovers=4, generations=6, seed=3, max_evaluations=55)


def test_driver_folder_rules(tmp_path):
    space, out = get_space("nb201"), tmp_path / "s"
    cfg = make_config("random", population=8, generations=3, seed=0)
    first = run_search(space, synthetic, "random", cfg, out, progress=False)
    assert first["evaluations"] == 24 and len(first["best_per_generation"]) == 3

    with pytest.raises(GenasError, match="--resume"):
        run_search(space, synthetic, "random", cfg, out, progress=False)
    with pytest.raises(GenasError, match="different config.*seed=0"):
        run_search(space, synthetic, "random", make_config("random", population=8, generations=3, seed=1), out,
                   resume=True, progress=False)
    with pytest.raises(GenasError, match="holds a random search"):
        run_search(space, synthetic, "evolution", make_config("evolution", population=8, mutations=2,
                                                              crossovers=2, generations=3), out, resume=True)

    def must_not_run(batch):
        raise AssertionError("a finished search evaluated again")

    before = (out / RESULT).read_bytes()
    assert run_search(space, must_not_run, "random", cfg, out, resume=True, progress=False) == first
    assert (out / RESULT).read_bytes() == before


def test_evaluator_results_are_checked(tmp_path):
    space = get_space("nb201")
    cfg = make_config("random", population=4, generations=2)
    with pytest.raises(GenasError, match="non-finite"):
        run_search(space, lambda b: [float("nan")] * len(b), "random", cfg, tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="3 results for 4"):
        run_search(space, lambda b: [1.0] * 3, "random", cfg, tmp_path / "b", progress=False)
    with pytest.raises(TypeError, match="'score'"):
        run_search(space, lambda b: [{"loss": 1.0}] * len(b), "random", cfg, tmp_path / "c", progress=False)


def test_config_errors():
    with pytest.raises(GenasError, match="--population"):
        make_config("evolution", population=0)
    with pytest.raises(GenasError, match="must not exceed --population"):
        make_config("evolution", population=10)
    with pytest.raises(GenasError, match="--mutation-prob"):
        make_config("evolution", mutation_prob=1.5)
    with pytest.raises(GenasError, match="--mutations does not apply to random"):
        make_config("random", mutations=3)
    with pytest.raises(GenasError, match="unknown search strategy 'bayes'"):
        make_config("bayes")
    cfg = make_config("evolution", seed=None, max_evaluations=200)  # None = keep the default
    assert (cfg.seed, cfg.population, cfg.topk, cfg.mutations, cfg.crossovers, cfg.mutation_prob,
            cfg.generations, cfg.budget) == (0, 50, 10, 25, 25, 0.1, 20, 200)


# --- tabular oracle ----------------------------------------------------------------------------
@needs_nb201
def test_oracle_reads_nb201(c10):
    assert len(c10) == 15625
    g, best = c10.optimum()
    assert round(best, 4) == 94.3733
    assert c10([g]) == [best]
    with pytest.raises(GenasError, match="unknown column 'cifar10'.*CIFAR100TestAccuracy200Epochs"):
        TabularOracle(NB201_CSV, "cifar10", get_space("nb201"))


def test_oracle_bad_inputs(tmp_path):
    space = get_space("nb201")
    with pytest.raises(GenasError, match="not found"):
        TabularOracle(tmp_path / "missing.csv", C10, space)
    a, b = space.format((3,) * 6), space.format((1,) * 6)
    good = tmp_path / "good.csv"
    good.write_text(f"arch_str,acc\n{a},91.5\n")
    assert TabularOracle(good, "acc", space)([(3,) * 6]) == [91.5]
    with pytest.raises(GenasError, match=r"not in good\.csv"):
        TabularOracle(good, "acc", space)([(1,) * 6])
    cases = {
        f"arch_str,acc\n{a},91.5\n{b},n/a\n": "line 3: column 'acc' has a non-numeric",
        f"arch_str,acc\n{a},91.5\n{a},90\n": "appears twice",
        "arch_str,acc\n|conv~0|+|x|,1\n": "line 2: malformed NB201",
        "name,acc\nx,1\n": "no architecture column",
        "": "empty",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(GenasError, match=message):
            TabularOracle(path, "acc", space)


def test_search_package_does_not_import_torch():
    code = "import sys, genas.search; assert 'torch' not in sys.modules, 'genas.search imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
