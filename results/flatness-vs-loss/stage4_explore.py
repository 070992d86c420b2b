"""Exploratory companion of stage 4 (not pre-registered; it decides nothing).

    python results/flatness-vs-loss/stage4_explore.py --selection stage2 -o stage4-explore

Written on 2026-12-07, before the stage-3 rows were complete and before any analysis of them, to
answer the questions the pre-registered test leaves open, on the same 200 selected architectures and
the same targets (mean test accuracy; minus the mean generalization gap):

* the noise ceiling: mean Kendall tau between two training seeds' values of each target (all pairs
  of seeds), i.e. how far any proxy could agree with one seed;
* Kendall tau of five proxies with each target, with a 95 % percentile bootstrap CI over
  architectures: FBS as registered (paper settings), FBS ``calibrated`` (alpha = "auto" fixed on the
  stage-1 pool prefix's (slope sum, depth) terms, both proxy seeds), the slope sum alone
  (alpha = 0, the poster's "naive" flatness), the supernet loss and the supernet accuracy;
* D (``genas.analysis.discordance``) of the calibrated FBS and of the slope sum against the loss.

The 200 were selected where FBS and the loss disagree most, so these tau values describe that set,
not the pool. B = 10,000, numpy ``default_rng(0)``. Writes ``OUT/explore.json`` and ``.md``;
refuses to overwrite.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from scipy import stats

from genas.analysis.discordance import bootstrap_ci
from genas.proxies.flatness import auto_alpha, flatness_score, flatness_terms

from stage2_select import SEEDS, rows_by_arch
from stage4_analyse import RESAMPLES, arguments, load, write

STDS = (0.001, 0.003, 0.006)  # the paper preset the pool was scored with (README, stage 1)
PROXIES = ("fbs_paper", "fbs_calibrated", "slope_only", "loss", "accuracy")


def proxy_table(selected: list[dict], prefix: int) -> tuple[dict[str, np.ndarray], float]:
    """Every proxy per selected architecture (mean over proxy seeds 0 and 1) and the calibrated alpha."""
    rows = rows_by_arch()
    keep = json.loads((Path(__file__).resolve().parent / "pool_keep.json").read_text())
    pool = [g for i, g in zip(keep["index"], keep["genotype"]) if i < prefix]
    alpha = auto_alpha([flatness_terms(rows[g][s]["flatness_losses"], STDS) for g in pool for s in SEEDS])
    per_seed = {
        "fbs_paper": lambda r: flatness_score(r["flatness_losses"], STDS, alpha=1.0),
        "fbs_calibrated": lambda r: flatness_score(r["flatness_losses"], STDS, alpha=alpha),
        "slope_only": lambda r: flatness_score(r["flatness_losses"], STDS, alpha=0.0),
        "loss": lambda r: r["loss"], "accuracy": lambda r: r["accuracy"]}
    table = {k: np.array([np.mean([f(rows[a["genotype"]][s]) for s in SEEDS]) for a in selected])
             for k, f in per_seed.items()}
    return table, alpha


def tau_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, list[float]]:
    """Kendall tau-b with a percentile-bootstrap 95 % CI over architectures."""
    k = len(x)
    boot = [stats.kendalltau(x[i], y[i])[0] for i in (rng.integers(0, k, k) for _ in range(RESAMPLES))]
    return float(stats.kendalltau(x, y)[0]), np.nanpercentile(boot, [2.5, 97.5]).tolist()


def explore(selected: list[dict], seeds: dict, prefix: int) -> dict:
    archs = [a for a in selected if all(a["genotype"] in r for r in seeds.values())]
    g = [a["genotype"] for a in archs]
    per_seed = {"test_accuracy": {s: np.array([seeds[s][x]["test_accuracy"] for x in g]) for s in seeds}}
    per_seed["minus_generalization_gap"] = {
        s: np.array([seeds[s][x]["test_accuracy"] - seeds[s][x]["train_eval_accuracy"] for x in g]) for s in seeds}
    table, alpha = proxy_table(archs, prefix)
    if not np.allclose(table["fbs_paper"], [a["flatness"] for a in archs], rtol=1e-9, atol=0):
        raise SystemExit("stage4_explore.py: error: FBS recomputed from the raw losses differs from stage 2's")
    out = dict(architectures=len(archs), seeds=sorted(seeds), alpha_calibrated=alpha, targets={})
    for name, values in per_seed.items():
        truth = np.mean([values[s] for s in seeds], axis=0)
        pairs = [stats.kendalltau(values[a], values[b])[0] for a, b in itertools.combinations(sorted(values), 2)]
        rng = np.random.default_rng(0)
        taus = {}
        for k in PROXIES:
            t, ci = tau_ci(table[k], truth, rng)
            taus[k] = dict(tau=t, ci=ci)
        d = {k: bootstrap_ci(table[k], table["loss"], truth, resamples=RESAMPLES, seed=0)
             for k in ("fbs_calibrated", "slope_only")}
        out["targets"][name] = dict(seed_to_seed_tau_mean=float(np.mean(pairs)), seed_to_seed_tau_min=float(np.min(pairs)),
                                    seed_to_seed_tau_max=float(np.max(pairs)), kendall_tau=taus, D_vs_loss=d)
    return out


def markdown(res: dict) -> str:
    lines = [f"Exploratory (not pre-registered): {res['architectures']} selected architectures, training seeds "
             f"{res['seeds']}; calibrated alpha = {res['alpha_calibrated']:.4g}; 95 % bootstrap CIs over "
             f"architectures (B = {RESAMPLES}).", "",
             "| target | seed-to-seed τ (mean [min, max]) | " + " | ".join(f"τ {k}" for k in PROXIES) + " |",
             "|---|---|" + "---|" * len(PROXIES)]
    for name, t in res["targets"].items():
        cells = [f"{t['kendall_tau'][k]['tau']:+.3f} [{t['kendall_tau'][k]['ci'][0]:+.3f}, {t['kendall_tau'][k]['ci'][1]:+.3f}]"
                 for k in PROXIES]
        lines.append(f"| {name} | {t['seed_to_seed_tau_mean']:.3f} [{t['seed_to_seed_tau_min']:.3f}, "
                     f"{t['seed_to_seed_tau_max']:.3f}] | " + " | ".join(cells) + " |")
    lines += ["", "| target | proxy vs loss | discordant pairs | D | 95 % CI |", "|---|---|---:|---:|---|"]
    for name, t in res["targets"].items():
        for k, d in t["D_vs_loss"].items():
            lines.append(f"| {name} | {k} | {d['discordant_pairs']} | {d['D']:+.3f} | [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] |")
    return "\n".join(lines) + "\n"


def main() -> None:
    stage, out = arguments("stage4_explore.py", "explore")
    selected, seeds, _ = load(stage)
    res = explore(selected, seeds, json.loads((stage / "selection.json").read_text())["prefix"])
    write(out, "explore", res, markdown(res))


if __name__ == "__main__":
    main()
