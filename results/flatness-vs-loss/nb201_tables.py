"""Secondary, cross-dataset test of the flatness-vs-loss study against the NAS-Bench-201 tables.

    python results/flatness-vs-loss/nb201_tables.py --selection results/flatness-vs-loss/stage2 \
        --table ../shared/data/nb201/nats_tss_test_acc_200ep.csv -o results/flatness-vs-loss/nb201-tables

Pre-registered in README.md ("2026-12-07: a secondary test against the NAS-Bench-201 tables"),
committed before this script ran. The proxies are the stage-1 means (Fashion-MNIST supernet, proxy
seeds 0 and 1); the ground truth is the NATS-Bench 200-epoch test accuracy (mean over its training
seeds) on CIFAR-10 (the test's target), CIFAR-100 and ImageNet16-120 (reported). The same D, the
same bootstrap over architectures (B = 10,000, numpy ``default_rng(0)``) and the same decision rule
as stage 4, on two sets: the 200 selected architectures and the whole finished prefix of the pool
(687 architectures, every discordant pair). Writes ``OUT/analysis.json`` and ``OUT/analysis.md``;
refuses to overwrite them.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from genas.analysis.discordance import bootstrap_ci, decision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage2_select import pool_table  # noqa: E402  (the pool exactly as stage 2 built it)

RESAMPLES = 10_000  # the pre-registered B; --resamples is for dry runs on made-up tables only
TARGETS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
           "imagenet16-120": "ImageNetTestAccuracy200Epochs"}


def table(path: Path) -> dict[str, dict[str, float]]:
    with path.open(newline="") as f:
        return {r["ArchitectureString"]: {k: float(r[c]) for k, c in TARGETS.items()} for r in csv.DictReader(f)}


def analyse(genotypes: list[str], proxies: dict[str, np.ndarray], gt: dict, resamples: int) -> dict:
    out = {}
    for name in TARGETS:
        truth = np.array([gt[g][name] for g in genotypes])
        res = bootstrap_ci(proxies["flatness"], proxies["loss"], truth, resamples=resamples, seed=0)
        se = (res["ci"][1] - res["ci"][0]) / 3.92  # stage 4's achieved power to see D = 0.10
        out[name] = dict(**res, decision=decision(res["ci"]), ci_width=res["ci"][1] - res["ci"][0],
                         achieved_power_D010=float(stats.norm.cdf(0.10 / se - 1.96)) if se > 0 else None,
                         kendall_tau={k: float(stats.kendalltau(v, truth)[0]) for k, v in proxies.items()})
    return out


def markdown(res: dict) -> str:
    lines = ["| set | target | architectures | discordant pairs | D | 95 % CI | decision | power (D = 0.10) | τ FBS | "
             "τ loss | τ accuracy |", "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|"]
    for where, per in res["sets"].items():
        for name, t in per.items():
            tau = t["kendall_tau"]
            lines.append(f"| {where} | {name} | {t['architectures']} | {t['discordant_pairs']} | {t['D']:+.3f} | "
                         f"[{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}] | {t['decision']} | {t['achieved_power_D010']:.2f} | "
                         f"{tau['flatness']:.3f} | "
                         f"{tau['loss']:.3f} | {tau['accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--selection", required=True, help="the stage-2 folder (selection.json)")
    p.add_argument("--table", required=True, help="nats_tss_test_acc_200ep.csv")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--resamples", type=int, default=RESAMPLES, help=argparse.SUPPRESS)
    a = p.parse_args()
    out = Path(a.output)
    if (out / "analysis.json").exists():
        print(f"nb201_tables.py: error: {out} already holds an analysis; choose another -o", file=sys.stderr)
        return 2
    gt = table(Path(a.table))
    selection = json.loads((Path(a.selection) / "selection.json").read_text())
    chosen = selection["selected"]
    archs, pool = pool_table(selection["prefix"])
    sets = {
        "selected": ([c["genotype"] for c in chosen], {k: np.array([c[k] for c in chosen]) for k in pool}),
        "pool": ([g for _, g in archs], pool),
    }
    res = dict(prefix=selection["prefix"], table=Path(a.table).name, resamples=a.resamples,
               sets={where: analyse(g, proxies, gt, a.resamples) for where, (g, proxies) in sets.items()})
    out.mkdir(parents=True, exist_ok=True)
    (out / "analysis.json").write_text(json.dumps(res, indent=1, allow_nan=False) + "\n")
    (out / "analysis.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
