"""Stage 3's progress and a determinism check, from the committed rows.

    python results/flatness-vs-loss/stage3_status.py --selection results/flatness-vs-loss/stage2

Progress: rows per training seed folder (``STAGE/bench-e<epochs>-s<seed>``, the recipe ``check.json``
chose), their CPU-hours of training and the median seconds of one training. Determinism: the first
20 selected architectures were trained at seeds 0 and 1 twice with the same recipe, seed and thread
count, once in the recipe check (``STAGE/check/``) and again, by other processes later (seed 1: in a
later session), in stage 3; every recorded field except the wall-clock ``train_seconds`` and the row
``index`` should be identical.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def rows(path: Path) -> dict[str, dict]:
    return {r["genotype"]: r for r in map(json.loads, path.read_text().splitlines()) if r} if path.exists() else {}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--selection", required=True, help="the stage-2/3 folder")
    stage = Path(p.parse_args().selection)
    selection = json.loads((stage / "selection.json").read_text())
    n, seeds = selection["n_select"], range(selection["train_seeds"])
    folder = f"bench-e{json.loads((stage / 'check.json').read_text())['epochs']}-s"  # the recipe the check chose
    total = 0
    for seed in seeds:
        done = rows(stage / f"{folder}{seed}" / "results.jsonl")
        secs = [r["train_seconds"] for r in done.values() if not r["disconnected"]]
        total += len(done)
        print(f"seed {seed}: {len(done)} of {n} trainings" + (f", {sum(secs) / 3600:.2f} CPU-hours of training, "
                                                           f"median {statistics.median(secs):.1f} s" if secs else ""))
    print(f"all seeds: {total} of {n * len(seeds)} trainings")
    for seed in (0, 1):
        first, second = (rows(stage / sub / f"{folder}{seed}" / "results.jsonl") for sub in ("check", "."))
        common = sorted(set(first) & set(second))
        fields = [k for k in first[common[0]] if k not in ("train_seconds", "index")] if common else []
        differ = [(g, k) for g in common for k in fields if first[g][k] != second[g][k]]
        print(f"repeat, seed {seed}: {len(common)} architectures trained twice, {len(fields)} fields each, "
              f"{len(differ)} differing values{': ' + str(differ[:5]) if differ else ''}")


if __name__ == "__main__":
    main()
