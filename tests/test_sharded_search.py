"""Scale-out of candidate scoring: a generation's candidates shared among ranks give the single-process result.

The ordering tests fake the ranks with threads and an in-memory all-gather (no torch.distributed);
the end-to-end test runs `genas search` under torchrun with two CPU ranks on a tiny supernet.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from _tiny import train_tiny
from genas.errors import GenasError
from genas.search import LOG, RESULT, STATE, make_config, run_search
from genas.search.driver import Shards, evaluate_sharded, reassemble, shard_positions
from genas.spaces import get_space


def score_of(genotype) -> dict:
    """A deterministic score with ties and raw measurements, independent of who computes it."""
    g = tuple(genotype)
    return {"score": float(sum((i + 1) * (v + 1) ** 2 for i, v in enumerate(g)) % 17), "ops": list(g)}


class ThreadWorld:
    """An all-gather among ``world`` threads: what DistContext.all_gather does across processes."""

    def __init__(self, world: int):
        self.world, self.slots, self.barrier = world, [None] * world, threading.Barrier(world, timeout=30)

    def shards(self, rank: int) -> Shards:
        def gather(obj):
            self.slots[rank] = obj
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out

        return Shards(rank, self.world, gather)

    def run(self, fn):
        """``fn(shards)`` on every rank at once; returns each rank's return value or exception."""
        out = [None] * self.world

        def target(rank):
            try:
                out[rank] = fn(self.shards(rank))
            except Exception as exc:  # noqa: BLE001 - inspected by the test
                out[rank] = exc

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return out


def test_shard_positions_cover_the_batch_once_round_robin():
    for n in range(0, 9):
        for world in (1, 2, 3, 5):
            parts = [shard_positions(n, r, world) for r in range(world)]
            assert sorted(i for p in parts for i in p) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard_positions(7, 1, 3) == [1, 4]


def test_reassemble_restores_batch_order_and_catches_gaps():
    parts = [[(0, "a", 0.1), (2, "c", 0.3)], [(1, "b", 0.2)]]
    assert reassemble(parts, 3) == (["a", "b", "c"], [0.1, 0.2, 0.3], [0, 1, 0])
    with pytest.raises(RuntimeError, match="positions"):
        reassemble([[(0, "a", 0.1)], []], 2)
    with pytest.raises(RuntimeError, match="already scored"):
        reassemble([[(0, "a", 0.1)], [(0, "a", 0.1)]], 1)


def test_evaluate_sharded_each_rank_scores_its_share_and_all_get_everything():
    batch = [(i, i + 1, 0, 2, 3, 4) for i in range(7)]
    scored = [[] for _ in range(3)]

    def on_rank(shards):
        def evaluate(genotypes):
            scored[shards.rank].extend(genotypes)
            return [score_of(g) for g in genotypes]

        return evaluate_sharded(evaluate, batch, shards)

    outs = ThreadWorld(3).run(on_rank)
    for results, seconds, ranks in outs:
        assert results == [score_of(g) for g in batch]
        assert ranks == [i % 3 for i in range(7)] and len(seconds) == 7 and min(seconds) >= 0
    assert scored == [[batch[i] for i in shard_positions(7, r, 3)] for r in range(3)]


def search_cfg():
    return make_config("evolution", population=6, topk=3, mutations=3, crossovers=3, generations=4, seed=3)


def test_sharded_run_search_equals_single_process(tmp_path):
    space = get_space("nb201")
    single = run_search(space, lambda gs: [score_of(g) for g in gs], "evolution", search_cfg(), tmp_path / "one",
                        progress=False)
    out = tmp_path / "three"
    results = ThreadWorld(3).run(lambda sh: run_search(space, lambda gs: [score_of(g) for g in gs], "evolution",
                                                       search_cfg(), out, progress=False, shards=sh))
    assert results == [single] * 3
    assert (out / RESULT).read_bytes() == (tmp_path / "one" / RESULT).read_bytes()
    log = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "one" / LOG).read_text().splitlines()]
    assert [(r["genotype"], r["score"], r["raw"]) for r in log] == [(r["genotype"], r["score"], r["raw"]) for r in ref]
    assert {r["rank"] for r in log if "copy_of" not in r} == {0, 1, 2} and "rank" not in ref[0]
    assert all("rank" not in r for r in log if "copy_of" in r)  # copies were not scored by anyone


def test_a_failing_rank_stops_all_ranks_and_the_search_resumes(tmp_path):
    space = get_space("nb201")
    single = run_search(space, lambda gs: [score_of(g) for g in gs], "evolution", search_cfg(), tmp_path / "one",
                        progress=False)
    out = tmp_path / "two"
    third = {space.parse(json.loads(line)["genotype"]) for line in (tmp_path / "one" / LOG).read_text().splitlines()
             if json.loads(line)["generation"] == 2}

    def crashing(shards):
        def evaluate(gs):
            if shards.rank == 1 and tuple(gs[0]) in third:
                raise ValueError("boom")
            return [score_of(g) for g in gs]

        return run_search(space, evaluate, "evolution", search_cfg(), out, progress=False, shards=shards)

    errors = ThreadWorld(2).run(crashing)
    assert isinstance(errors[1], ValueError)
    assert isinstance(errors[0], GenasError) and "rank 1" in str(errors[0]) and "boom" in str(errors[0])
    assert json.loads((out / STATE).read_text())["search"]["generation"] == 2 and not (out / RESULT).exists()
    resumed = ThreadWorld(2).run(lambda sh: run_search(space, lambda gs: [score_of(g) for g in gs], "evolution",
                                                       search_cfg(), out, resume=True, progress=False, shards=sh))
    assert resumed == [single] * 2
    assert (out / RESULT).read_bytes() == (tmp_path / "one" / RESULT).read_bytes()


SEARCH = ["--population", "4", "--topk", "2", "--mutations", "2", "--crossovers", "2", "--generations", "3",
          "--val-images", "64", "--bn-images", "32", "--bn-batch-size", "32", "--device", "cpu", "--no-progress"]


@pytest.mark.distributed
def test_torchrun_two_ranks_give_the_single_process_result(tmp_path):
    run = tmp_path / "run"
    train_tiny(run, epochs=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "genas", "search", "--run", str(run), "--name", "one", *SEARCH],
                         capture_output=True, text=True, env=env, timeout=120)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "genas", "--", "search", "--run", str(run), "--name", "two", *SEARCH],
                         capture_output=True, text=True, env=env, timeout=120)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = run / "search-one", run / "search-two"
    assert (b / RESULT).read_bytes() == (a / RESULT).read_bytes()
    assert (b / "scoring.json").read_bytes() == (a / "scoring.json").read_bytes()
    log = [json.loads(line) for line in (b / LOG).read_text().splitlines()]
    ref = [json.loads(line) for line in (a / LOG).read_text().splitlines()]
    assert [(r["genotype"], r["score"]) for r in log] == [(r["genotype"], r["score"]) for r in ref]
    assert {r["rank"] for r in log} == {0, 1} and all(r["seconds"] > 0 for r in log)
