"""Stage 4 of the flatness-vs-loss study: the pre-registered test on the selected architectures.

    python results/flatness-vs-loss/stage4_analyse.py --selection stage2 -o stage4

Reads the selection (``STAGE/selection.json``: FBS, loss and accuracy proxies per architecture) and
the ground truth of stage 3 (``STAGE/bench-e<E>-s<seed>/results.jsonl`` for the chosen recipe, every
seed), and writes ``OUT/analysis.json`` and ``OUT/analysis.md``:

* targets: primary, the mean test accuracy over the seeds; secondary, the mean generalization gap
  ``train_eval_accuracy - test_accuracy`` (smaller is better, so its negative is the truth);
* D (``genas.analysis.discordance``) with its 95 % bootstrap CI over architectures, B = 10,000,
  numpy ``default_rng(0)``; the pre-registered decision for each target (the secondary does not
  change the primary answer);
* the number of discordant pairs, Kendall tau of FBS, the loss and the accuracy with each target;
* the achieved power to see D = 0.10: from the bootstrap standard error (CI width / 3.92),
  Phi(0.10 / se - 1.96) for a two-sided test at alpha = 0.05.

Only architectures with a row at every seed enter; how many is reported.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from genas.analysis.discordance import bootstrap_ci, decision

EFFECT_D, RESAMPLES = 0.10, 10_000


def load(stage: Path) -> tuple[list[dict], dict[int, dict[str, dict]], int]:
    selection = json.loads((stage / "selection.json").read_text())
    epochs = json.loads((stage / "check.json").read_text())["epochs"]
    seeds = {}
    for seed in range(selection.get("train_seeds", 3)):  # exactly the seeds stage 2 fixed
        folder = stage / f"bench-e{epochs}-s{seed}"
        if not (folder / "results.jsonl").exists():
            raise SystemExit(f"stage4_analyse.py: error: {folder} is missing: stage 3 has not finished")
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
        seeds[seed] = {r["genotype"]: r for r in rows}
    return selection["selected"], seeds, epochs


def analyse(selected, seeds) -> dict:
    archs = [s for s in selected if all(s["genotype"] in rows for rows in seeds.values())]
    g = [a["genotype"] for a in archs]
    mean = lambda key: np.array([np.mean([seeds[s][x][key] for s in seeds]) for x in g])
    test = mean("test_accuracy")
    gap = mean("train_eval_accuracy") - test
    proxies = {k: np.array([a[k] for a in archs]) for k in ("flatness", "loss", "accuracy")}
    out = dict(architectures=len(archs), selected=len(selected), seeds=sorted(seeds), targets={})
    for name, truth in (("test_accuracy", test), ("minus_generalization_gap", -gap)):
        res = bootstrap_ci(proxies["flatness"], proxies["loss"], truth, resamples=RESAMPLES, seed=0)
        se = (res["ci"][1] - res["ci"][0]) / 3.92
        power = float(stats.norm.cdf(EFFECT_D / se - 1.96)) if se > 0 else float("nan")
        taus = {k: float(stats.kendalltau(v, truth)[0]) for k, v in proxies.items()}
        out["targets"][name] = dict(**res, decision=decision(res["ci"]), achieved_power_D010=power,
                                    ci_width=res["ci"][1] - res["ci"][0], kendall_tau=taus)
    return out


def markdown(res: dict, epochs: int) -> str:
    lines = [f"{res['architectures']} of {res['selected']} selected architectures with rows at seeds "
             f"{res['seeds']} ({epochs}-epoch recipe); D = (FBS right - loss right) / discordant pairs, 95 % "
             f"bootstrap CI over architectures (B = {RESAMPLES}).", "",
             "| target | discordant pairs | D | 95 % CI | decision | power (D = 0.10) | τ FBS | τ loss | τ accuracy |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|"]
    for name, t in res["targets"].items():
        tau = t["kendall_tau"]
        lines.append(f"| {name} | {t['discordant_pairs']} | {t['D']:+.3f} | [{t['ci'][0]:+.3f}, {t['ci'][1]:+.3f}] | "
                     f"{t['decision']} | {t['achieved_power_D010']:.2f} | {tau['flatness']:.3f} | {tau['loss']:.3f} | "
                     f"{tau['accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def _finite(v):
    """NaN (no discordant pair, no spread) as JSON null: json.dumps would write a bare NaN."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return None if isinstance(v, float) and math.isnan(v) else v


def arguments(script: str, stem: str) -> tuple[Path, Path]:
    """``--selection`` and ``-o`` of a stage-4 script; refuses an ``-o`` that already holds ``stem``.json."""
    p = argparse.ArgumentParser()
    p.add_argument("--selection", required=True, help="the stage-2/3 folder")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args()
    out = Path(a.output)
    if (out / f"{stem}.json").exists():
        raise SystemExit(f"{script}: error: {out} already holds {stem}.json; choose another -o")
    return Path(a.selection), out


def write(out: Path, stem: str, res: dict, md: str) -> None:
    """``stem``.json (NaN as null) and ``stem``.md in ``out``; the table also to stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(_finite(res), indent=1, allow_nan=False) + "\n")
    (out / f"{stem}.md").write_text(md)
    print(md)


def main() -> None:
    stage, out = arguments("stage4_analyse.py", "analysis")
    selected, seeds, epochs = load(stage)
    res = analyse(selected, seeds)
    write(out, "analysis", res, markdown(res, epochs))


if __name__ == "__main__":
    main()
