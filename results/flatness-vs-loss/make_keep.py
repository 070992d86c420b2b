"""Write pool_keep.json: the pool strings the pre-registered rule keeps (first string of each
NB201 isomorphism class in pool order, connected cells only). Stage 1 scores only these, since the
analysis never reads the others; rows for the others already scored stay in pool_scores.jsonl.

    python results/flatness-vs-loss/make_keep.py --archs 2000
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from genas.groundtruth import sample_archs
from genas.spaces import get_space

HERE = Path(__file__).resolve().parent


def kept(space, pool: list[str]) -> list[int]:
    """Indices of the first string of each canonical class, connected cells only."""
    seen, keep = set(), []
    for i, s in enumerate(pool):
        g = space.parse(s)
        c = space.canonical(g)
        if c in seen:
            continue
        seen.add(c)
        if space.is_connected(g):
            keep.append(i)
    return keep


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--archs", type=int, default=2000)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "pool_keep.json"))
    a = p.parse_args()
    space = get_space("nb201")
    pool = [space.format(g) for g in sample_archs(space, a.archs, a.sample_seed)]
    keep = kept(space, pool)
    Path(a.out).write_text(json.dumps({"archs": a.archs, "sample_seed": a.sample_seed, "rule": "nb201 canonical, first in pool order, connected",
                                       "index": keep, "genotype": [pool[i] for i in keep]}, indent=0) + "\n")
    print(f"{len(keep)} of {len(pool)} kept ({sum(i < 1000 for i in keep)} in the first 1000)")


if __name__ == "__main__":
    main()
