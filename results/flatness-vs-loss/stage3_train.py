"""Stage 3 of the flatness-vs-loss study: the ground truth of the selected architectures.

    python results/flatness-vs-loss/stage3_train.py --selection stage2 check   # recipe check (first 20)
    python results/flatness-vs-loss/stage3_train.py --selection stage2 train   # all selected, 3 seeds

As pre-registered (README.md):

* ``check``: the first 20 selected architectures at training seeds 0 and 1 with the 3-epoch bench
  recipe of ``results/correlation/bench`` and with the same recipe at 9 epochs; writes
  ``STAGE/check.json`` with both seed-to-seed Kendall tau (test accuracy), the mean training seconds
  per run and the decision: 9 epochs only if its tau exceeds the 3-epoch one by >= 0.10 and the
  projected cost of the whole stage (selected x 3 seeds x its seconds) stays within 20 CPU-hours.
* ``train``: every selected architecture at seeds 0, 1, 2 (0 to S-1 when stage 2's power rule raised
  the seeds to S: ``train_seeds`` in ``selection.json``) with the recipe ``check.json`` chose, one
  ``genas bench`` folder per seed (``STAGE/bench-e<E>-s<seed>/``, resumable, append-only).

Run it from a pinned worktree (one torch thread); rows record test, shifted-test and training
accuracy (the generalization gap's training side).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats

CHECK_ARCHS, CHECK_SEEDS, SEEDS, EPOCHS, LONG_EPOCHS = 20, (0, 1), (0, 1, 2), 3, 9
MIN_GAIN, BUDGET_HOURS = 0.10, 20.0


def bench(stage: Path, genotypes: Path, epochs: int, seed: int) -> Path:
    out = stage / f"bench-e{epochs}-s{seed}"
    args = [sys.executable, "-m", "genas", "bench", "-o", str(out), "--genotypes", str(genotypes), "--seed", str(seed),
            "--epochs", str(epochs), "--no-progress", *(["--resume"] if out.exists() else [])]
    print("+", " ".join(args[1:]), flush=True)
    subprocess.run(args, check=True)
    return out


def train_seeds(stage: Path) -> tuple[int, ...]:
    """The training seeds stage 2 fixed (3 unless its power rule raised them; files before 2026-12-06: 3)."""
    return tuple(range(json.loads((stage / "selection.json").read_text()).get("train_seeds", len(SEEDS))))


def rows(folder: Path) -> dict[str, dict]:
    out = {r["genotype"]: r for r in map(json.loads, (folder / "results.jsonl").read_text().splitlines()) if r}
    if any("train_eval_accuracy" not in r for r in out.values()):  # the gap target needs it (6f16296 and later)
        raise SystemExit(f"stage3_train.py: error: {folder} rows lack train_eval_accuracy: run stage 3 at the "
                         f"commit the README names, not at an older one")
    return out


def seed_tau(a: dict, b: dict) -> float:
    common = sorted(set(a) & set(b))
    return float(stats.kendalltau([a[g]["test_accuracy"] for g in common], [b[g]["test_accuracy"] for g in common])[0])


def check(stage: Path) -> dict:
    if (stage / "check.json").exists():  # the recipe decision is made once
        raise SystemExit(f"stage3_train.py: error: {stage / 'check.json'} exists; the recipe is decided")
    selected = (stage / "selected.txt").read_text().splitlines()
    first = stage / "check-genotypes.txt"
    first.write_text("".join(g + "\n" for g in selected[:CHECK_ARCHS]))
    out = {}
    for epochs in (EPOCHS, LONG_EPOCHS):
        folders = [bench(stage / "check", first, epochs, s) for s in CHECK_SEEDS]
        r0, r1 = (rows(f) for f in folders)
        secs = [r["train_seconds"] for r in (*r0.values(), *r1.values()) if not r.get("disconnected")]
        out[f"e{epochs}"] = dict(seed_tau=seed_tau(r0, r1), mean_train_seconds=float(np.mean(secs)), runs=len(secs))
    long_hours = len(selected) * len(train_seeds(stage)) * out[f"e{LONG_EPOCHS}"]["mean_train_seconds"] / 3600
    gain = out[f"e{LONG_EPOCHS}"]["seed_tau"] - out[f"e{EPOCHS}"]["seed_tau"]
    chosen = LONG_EPOCHS if gain >= MIN_GAIN and long_hours <= BUDGET_HOURS else EPOCHS
    out.update(tau_gain=gain, projected_long_hours=long_hours, rule=f"9 epochs iff tau gain >= {MIN_GAIN} and "
               f"projected cost <= {BUDGET_HOURS} CPU-hours", epochs=chosen)
    (stage / "check.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return out


def train(stage: Path) -> None:
    if not (stage / "check.json").exists():
        raise SystemExit("stage3_train.py: error: run `check` first (it chooses the recipe)")
    epochs = json.loads((stage / "check.json").read_text())["epochs"]
    for seed in train_seeds(stage):
        rows(bench(stage, stage / "selected.txt", epochs, seed))  # refuses rows without the gap's training side


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--selection", required=True, help="the stage-2 folder (selection.json, selected.txt)")
    p.add_argument("what", choices=("check", "train"))
    a = p.parse_args()
    stage = Path(a.selection)
    check(stage) if a.what == "check" else train(stage)


if __name__ == "__main__":
    main()
