"""Stage 1, deduplicated: score only the strings of pool_keep.json, in pool order, split over
workers (worker K of W takes every W-th string), each worker appending to its own JSONL.

Runs in the pinned worktree (the scorer is the pinned commit's `score_archs` with the same
arguments as score_pool.py, so a row is identical whichever script wrote it):

    OMP_NUM_THREADS=1 python results/flatness-vs-loss/score_kept.py --worker 0 --workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from genas.proxies.context import scoring_config
from genas.workflows import score_archs

HERE = Path(__file__).resolve().parent
SUPERNET = HERE.parent / "correlation" / "supernet"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--done", default=str(HERE / "pool_scores.jsonl"), help="rows already scored (read only)")
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    keep = json.loads((HERE / "pool_keep.json").read_text())["genotype"]
    seeds = [int(s) for s in a.seeds.split(",")]
    done = set()
    if Path(a.done).exists():
        done = {(r["genotype"], r["seed"]) for r in map(json.loads, Path(a.done).read_text().splitlines()) if r}
    mine = [g for g in keep[a.worker::a.workers] if any((g, s) not in done for s in seeds)]
    out = HERE / f"pool_scores.w{a.worker}.jsonl"
    cfg = scoring_config("paper")
    for start in range(0, len(mine), a.chunk):
        t0 = time.time()
        n = score_archs(mine[start:start + a.chunk], ["flatness", "loss", "accuracy"], out, seeds, cfg,
                        run=SUPERNET, device="cpu", progress=False)
        print(f"{time.strftime('%H:%M:%S')} worker {a.worker}: {start + len(mine[start:start + a.chunk])}/{len(mine)}, "
              f"{n} rows in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
