"""BN recalibration in NHWC vs NCHW: the same flatness ranking and scores within 1e-5 (issue #15, item 5).

Scores ``--candidates`` seeded, distinct, connected NB201 candidates of a supernet with the flatness
proxy (default ScoringConfig otherwise) twice, once per BN-recalibration layout
(``ScoringConfig.bn_channels_last``), alternating which goes first, and reports Kendall tau-b between
the two rankings, the largest relative score difference, and the recalibration seconds of each layout.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_layout_check.py --run results/flatness-stability/supernet
"""
from __future__ import annotations

import argparse
import dataclasses as dc
import json
import os
import platform
import sys
import time

import numpy as np
import torch
from scipy.stats import kendalltau

from genas.proxies import ScoringConfig, get_proxy
from genas.spaces import get_space
from genas.workflows.scoring import scoring_context


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="results/flatness-stability/supernet", help="finished supernet run folder")
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--val-images", type=int, default=500, help="validation images per measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="also write the JSON result here")
    args = p.parse_args(argv)
    if args.candidates < 2 or args.val_images < 1:
        p.error("--candidates must be >= 2 and --val-images >= 1")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = ScoringConfig(val_images=args.val_images, seed=args.seed)
    ctx = scoring_context(args.run, cfg, device="cpu")
    space, rng, cands = get_space("nb201"), np.random.default_rng(args.seed), []
    while len(cands) < args.candidates:
        g = space.sample(rng)
        if space.is_connected(g) and g not in cands:
            cands.append(g)
    scores = {False: [], True: []}
    recal_s = {False: 0.0, True: 0.0}
    flatness = get_proxy("flatness")
    for i, g in enumerate(cands):
        for layout in ((False, True) if i % 2 == 0 else (True, False)):
            ctx.cfg = dc.replace(cfg, bn_channels_last=layout)
            ctx._last = None
            t0 = time.perf_counter()
            ctx.recalibrated(g)
            recal_s[layout] += time.perf_counter() - t0
            scores[layout].append(flatness(ctx, g).value)
    a, b = np.array(scores[False]), np.array(scores[True])
    out = dict(candidates=len(cands), val_images=ctx.val_image_count, bn_images=sum(len(y) for _, y in ctx.bn_batches),
               tau=float(kendalltau(a, b).statistic), max_rel_diff=float(np.max(np.abs(b - a) / np.abs(a))),
               median_rel_diff=float(np.median(np.abs(b - a) / np.abs(a))), distinct_scores=int(len(set(a.tolist()))),
               recal_seconds_nchw=recal_s[False], recal_seconds_nhwc=recal_s[True],
               recal_speedup=recal_s[False] / recal_s[True], run=str(args.run), threads=torch.get_num_threads(),
               torch=torch.__version__, machine=platform.processor() or platform.machine(),
               load_avg=os.getloadavg())
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
