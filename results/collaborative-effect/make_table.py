"""The collaborative-effect table: winners' test, shifted-test accuracy and generalization gap per
flatness-share level, from the recorded searches and bench rows (reads files only).

    python results/collaborative-effect/make_table.py            # prints the Markdown table
    python results/collaborative-effect/make_table.py --json T   # also writes the numbers to T

Per level (``run_levels.levels()``): the search seeds finished, their winners and the winners' own
flatness share (the ``flatness_share`` the search logged for the winner, % of angle+flatness at that
level's gamma; 0 for ``share0``, whose metric is the angle). For every (search seed, training seed)
with a bench row: test accuracy, shifted-test accuracy and the gap ``train_eval_accuracy -
test_accuracy``. Mean +- std over those rows and a 95 % percentile CI from a two-level bootstrap
(search seeds resampled, then training seeds within each; B = 10,000, numpy ``default_rng(0)``), as
the README's planned reading says. A level with one search seed gets no CI.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_levels import HERE, SEARCH_SEEDS, TRAIN_SEEDS, levels, search_dir  # noqa: E402

RESAMPLES = 10_000
METRICS = (("test_accuracy", "test"), ("shifted_accuracy", "shifted test"), ("gap", "gap (train − test)"))


def bench_rows() -> dict[int, dict[str, dict]]:
    out = {}
    for seed in TRAIN_SEEDS:
        path = ROOT / HERE / f"bench-winners-seed{seed}" / "results.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            out[seed] = {r["genotype"]: r for r in rows}
    return out


def winner(level: dict, seed: int) -> dict | None:
    d = ROOT / search_dir(level, seed)
    if not (d / "result.json").exists():
        return None
    g = json.loads((d / "result.json").read_text())["best"]["genotype"]
    share = 0.0 if level["metric"] == "angle" else None
    for line in (d / "candidates.jsonl").read_text().splitlines():
        r = json.loads(line) if line.strip() else {}
        if r.get("genotype") == g and "raw" in r and share is None:
            share = r["raw"].get("flatness_share")
    return dict(genotype=g, share=share)


def two_level_ci(values: dict[int, list[float]], rng: np.random.Generator) -> list[float] | None:
    """Percentile CI of the mean: resample search seeds, then the training seeds within each."""
    groups = [np.asarray(v) for v in values.values() if v]
    if len(groups) < 2:
        return None
    means = []
    for _ in range(RESAMPLES):
        picked = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
        means.append(np.mean(np.concatenate([g[rng.integers(0, len(g), len(g))] for g in picked])))
    return np.percentile(means, [2.5, 97.5]).tolist()


def table() -> list[dict]:
    bench, rng, out = bench_rows(), np.random.default_rng(0), []
    for level in levels():
        wins = {s: w for s in SEARCH_SEEDS if (w := winner(level, s)) is not None}
        entry = dict(level=level["name"], gamma=level["gamma"], searches=len(wins),
                     winners=[w["genotype"] for w in wins.values()],
                     winner_share=float(np.mean([w["share"] for w in wins.values()])) if wins else None)
        for key, _ in METRICS:
            per_search = {}
            for s, w in wins.items():
                rows = [bench[t][w["genotype"]] for t in bench if w["genotype"] in bench[t]]
                per_search[s] = [r["train_eval_accuracy"] - r["test_accuracy"] if key == "gap" else r[key] for r in rows]
            flat = [v for vs in per_search.values() for v in vs]
            entry[key] = dict(n=len(flat), mean=float(np.mean(flat)) if flat else None,
                              std=float(np.std(flat, ddof=1)) if len(flat) > 1 else None,
                              ci=two_level_ci(per_search, rng))
        out.append(entry)
    return out


def markdown(rows: list[dict]) -> str:
    def cell(m: dict) -> str:
        if not m["n"]:
            return "–"
        s = f"{m['mean']:.4f}" + (f" ± {m['std']:.4f}" if m["std"] is not None else "")
        return s + (f" [{m['ci'][0]:.4f}, {m['ci'][1]:.4f}]" if m["ci"] else "") + f" (n={m['n']})"

    head = "| level | γ | searches | winners' flatness share | " + " | ".join(name for _, name in METRICS) + " |"
    lines = [head, "|---|---:|---:|---:|" + "---|" * len(METRICS)]
    for r in rows:
        share = f"{r['winner_share']:.1f} %" if r["winner_share"] is not None else "–"
        lines.append(f"| {r['level']} | {r['gamma']:.4g} | {r['searches']} | {share} | "
                     + " | ".join(cell(r[k]) for k, _ in METRICS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--json", help="also write the numbers here")
    a = p.parse_args()
    rows = table()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows), end="")


if __name__ == "__main__":
    main()
