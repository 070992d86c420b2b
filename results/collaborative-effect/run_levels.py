"""The collaborative-effect study (poster Table 2): angle+flatness searches at several flatness shares.

Stages, each resumable and skipped when done (run from a pinned worktree, one torch thread):

1. ``share.json``: the gammas whose mean flatness share of angle+flatness is 20/45/75/90 % on the
   correlation study's recorded supernet scores (``genas share``, 100 architectures x 3 seeds).
2. Searches on ``results/correlation/supernet`` with the correlation study's search-outcome
   protocol (evolution, population 20, top 5, 10 mutations + 10 crossovers, 5 generations = 100
   candidates, 500 validation + 448 BN images) at search seeds 0/1/2, one per level:
   share 0 % is ``--metric angle`` (angle+flatness at gamma 0 is angle/pi: the same ranking and
   ties, so the same search), the others ``--metric angle+flatness --gamma G``, plus the paper's
   gamma 16 (about 99.5 %).
3. The winners, trained stand-alone with the ground-truth recipe of ``results/correlation/bench``
   at training seeds 0 and 1 (``genas bench --genotypes``), rows with test, shifted-test and
   training accuracy (for the generalization gap).

    OMP_NUM_THREADS=1 python results/collaborative-effect/run_levels.py [--stage share|search|train|all]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path("results/collaborative-effect")  # paths relative to the checkout: they are recorded in the outputs
SUPERNET = Path("results/correlation/supernet")
SCORES = Path("results/correlation/scores_supernet.jsonl")
TARGETS = (20, 45, 75, 90)
PAPER_GAMMA = 16.0
SEARCH_SEEDS = (0, 1, 2)
TRAIN_SEEDS = (0, 1)
PROTOCOL = ["--population", "20", "--topk", "5", "--mutations", "10", "--crossovers", "10", "--generations", "5",
            "--val-images", "500", "--bn-images", "448", "--device", "cpu", "--no-progress"]


def genas(*args: str) -> None:
    print("+ genas", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "genas", *args], check=True, cwd=ROOT)


def levels() -> list[dict]:
    """name, metric and gamma of every level, from share.json."""
    table = json.loads((ROOT / HERE / "share.json").read_text())
    out = [dict(name="share0", metric="angle", gamma=0.0, target=0)]
    out += [dict(name=f"share{t['target_share']:g}", metric="angle+flatness", gamma=t["gamma"], target=t["target_share"])
            for t in table["targets"]]
    out.append(dict(name="gamma16", metric="angle+flatness", gamma=PAPER_GAMMA, target=None))
    return out


def search_dir(level: dict, seed: int) -> Path:
    return SUPERNET / f"search-collab-{level['name']}-s{seed}"


def stage_share() -> None:
    if not (ROOT / HERE / "share.json").exists():
        genas("share", "--scores", str(SCORES), "--noise-mode", "independent", "--gammas", f"0,{PAPER_GAMMA:g}",
              "--target-shares", ",".join(map(str, TARGETS)), "-o", str(HERE / "share.json"))


def stage_search() -> None:
    for seed in SEARCH_SEEDS:  # seed-major: a partial study is balanced across levels
        for level in levels():
            d = search_dir(level, seed)
            if (ROOT / d / "result.json").exists():
                continue
            args = ["search", "--run", str(SUPERNET), "--metric", level["metric"], "--seed", str(seed),
                    "--name", d.name.removeprefix("search-"), *PROTOCOL]
            if level["metric"] != "angle":
                args += ["--gamma", repr(level["gamma"])]
            genas(*args, *(["--resume"] if (ROOT / d).exists() else []))


def winners() -> list[str]:
    out = []
    for seed in SEARCH_SEEDS:
        for level in levels():
            result = ROOT / search_dir(level, seed) / "result.json"
            if result.exists():
                out.append(json.loads(result.read_text())["best"]["genotype"])
    return list(dict.fromkeys(out))


def stage_train() -> None:
    (ROOT / HERE / "winners.txt").write_text("".join(g + "\n" for g in winners()))
    for seed in TRAIN_SEEDS:
        out = HERE / f"bench-winners-seed{seed}"
        genas("bench", "-o", str(out), "--genotypes", str(HERE / "winners.txt"), "--seed", str(seed),
              "--no-progress", *(["--resume"] if (ROOT / out).exists() else []))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--stage", choices=("share", "search", "train", "all"), default="all")
    stage = p.parse_args().stage
    if stage in ("share", "all"):
        stage_share()
    if stage in ("search", "all"):
        stage_search()
    if stage in ("train", "all"):
        stage_train()


if __name__ == "__main__":
    main()
