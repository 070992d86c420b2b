"""Stage 1 of the flatness-vs-loss study: score a seeded pool of NB201 architectures on the
correlation study's supernet with FBS (paper settings; its raw losses give every other flatness
variant offline), the supernet loss and the supernet accuracy, at two proxy seeds.

Append-only and resumable (rows already in pool_scores.jsonl are skipped); run it from a pinned
worktree of the commit named in README.md, one torch thread:

    OMP_NUM_THREADS=1 python results/flatness-vs-loss/score_pool.py --archs 2000 --chunk 50
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from genas.groundtruth import sample_archs
from genas.proxies import scoring_config
from genas.spaces import get_space
from genas.workflows import score_archs

HERE = Path(__file__).resolve().parent
SUPERNET = HERE.parent / "correlation" / "supernet"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--archs", type=int, default=2000)
    p.add_argument("--sample-seed", type=int, default=0)  # prefix-stable: the first 100 are results/correlation/bench
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--chunk", type=int, default=50)
    p.add_argument("--out", default=str(HERE / "pool_scores.jsonl"))
    a = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    space = get_space("nb201")
    pool = [space.format(g) for g in sample_archs(space, a.archs, a.sample_seed)]
    seeds = [int(s) for s in a.seeds.split(",")]
    cfg = scoring_config("paper")  # val_images 3000, bn_images 896 (the defaults)
    for start in range(0, len(pool), a.chunk):
        t0 = time.time()
        n = score_archs(pool[start:start + a.chunk], ["flatness", "loss", "accuracy"], a.out, seeds, cfg,
                        run=SUPERNET, device="cpu", progress=False)
        print(f"{time.strftime('%H:%M:%S')} archs {start}-{start + a.chunk - 1}: {n} rows in {time.time() - t0:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
