"""Stage 2 of the flatness-vs-loss study: the pre-registered selection and the power simulation.

    python results/flatness-vs-loss/stage2_select.py --status          # how far stage 1 is
    python results/flatness-vs-loss/stage2_select.py -o stage2          # selection + power, once stage 1 allows it

Implements README.md's pre-registration (commit d8e91be) as written:

* pool: the strings of ``pool_keep.json`` (first string of each NB201 class, connected cells) in
  pool order, restricted to the finished prefix: the largest P such that every kept string at a pool
  position below P has rows at proxy seeds 0 and 1 (P = 2000 when stage 1 is done; at least 1000);
* proxies: the mean over the two seeds of ``flatness`` (FBS, paper settings), ``loss`` (minus the
  validation loss) and ``accuracy``;
* selection: the 120 architectures with the largest |rank(FBS) - rank(loss)| (average ranks over
  the pool), ties by pool order;
* power: ground truth = z(FBS) + beta z(loss) over the pool, beta set so that D = 0.10 on the
  selection (FBS right on 55 % of its discordant pairs); one training seed adds Gaussian noise set
  so that two seeds agree with Kendall tau 0.32 over the pool (``results/correlation/bench-seed1``),
  the mean of 3 seeds has 1/sqrt(3) of it; power = share of simulated studies whose 95 % bootstrap
  CI of D lies above 0.

* the power rule (added 2026-12-06, before any selection): if the power at n = 120 and 3 seeds is
  below 0.5, the pre-registration raises n (up to 200) or seeds (up to 5) within 20 CPU-hours;
  the options are tried from the cheapest (n x seeds trainings; ties: the larger n) at 3-epoch cost
  (``SECONDS_PER_RUN``) and the first with power >= 0.5 is taken (the largest, n = 200 with 5 seeds,
  if none reaches it). The selection is the top-n list, so the first 120 of a longer one are the 120.

Writes ``OUT/selection.json`` (prefix, every selected architecture with its ranks and proxies,
``train_seeds``),
``OUT/selected.txt`` (the genotypes, for ``genas bench --genotypes``) and ``OUT/power.json``; refuses
to overwrite them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from genas.analysis.discordance import bootstrap_ci, discordant_advantage

HERE = Path(__file__).resolve().parent
SEEDS = (0, 1)
N_SELECT, MIN_PREFIX, POOL = 120, 1000, 2000
EFFECT_D, SEED_TAU, TRAIN_SEEDS = 0.10, 0.32, 3
MIN_POWER, MAX_SELECT, MAX_SEEDS, BUDGET_HOURS = 0.5, 200, 5, 20.0
SECONDS_PER_RUN = 64.0  # one 3-epoch bench training: the median of results/correlation/bench (bench-seed1: 53 s)


def rows_by_arch() -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(HERE.glob("pool_scores*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out.setdefault(r["genotype"], {})[r["seed"]] = r
    return out


def finished_prefix(keep: dict, rows: dict) -> int:
    """The largest pool position P such that every kept string below P has both proxy seeds."""
    for index, g in zip(keep["index"], keep["genotype"]):
        if not all(s in rows.get(g, {}) for s in SEEDS):
            return index
    return keep["archs"]


def pool_table(prefix: int):
    keep, rows = json.loads((HERE / "pool_keep.json").read_text()), rows_by_arch()
    archs = [(i, g) for i, g in zip(keep["index"], keep["genotype"]) if i < prefix]
    table = {k: np.array([np.mean([rows[g][s][k] for s in SEEDS]) for _, g in archs]) for k in ("flatness", "loss", "accuracy")}
    bad = [archs[i][1] for k in table for i in np.flatnonzero(~np.isfinite(table[k]))]
    if bad:  # ranks of NaN are all NaN: the selection would be silently wrong
        raise SystemExit(f"stage2_select.py: error: non-finite proxy values for {len(bad)} architectures, e.g. {bad[0]}")
    return archs, table


def select(archs, table, n: int = N_SELECT):
    rf, rl = stats.rankdata(table["flatness"]), stats.rankdata(table["loss"])
    gap = np.abs(rf - rl)
    order = sorted(range(len(archs)), key=lambda k: (-gap[k], archs[k][0]))[:n]
    return order, rf, rl


def z(v):
    return (v - v.mean()) / v.std()


def _beta_for_effect(zf, zl, sel) -> float:
    """beta with D(FBS, loss; z(FBS) + beta z(loss)) = EFFECT_D on the selection (D falls with beta)."""
    lo, hi = 0.0, 1000.0
    for _ in range(60):
        mid = (lo + hi) / 2
        d, _ = discordant_advantage(zf[sel], zl[sel], (zf + mid * zl)[sel])
        lo, hi = (mid, hi) if d > EFFECT_D else (lo, mid)
    return (lo + hi) / 2


def _noise_for_tau(truth, rng, reps: int = 20) -> float:
    """The per-seed noise std that gives two seeds a mean Kendall tau of SEED_TAU over the pool."""
    lo, hi = 1e-3 * truth.std(), 100 * truth.std()
    for _ in range(30):
        mid = np.sqrt(lo * hi)
        tau = np.mean([stats.kendalltau(truth + mid * rng.normal(size=truth.size),
                                        truth + mid * rng.normal(size=truth.size))[0] for _ in range(reps)])
        lo, hi = (mid, hi) if tau > SEED_TAU else (lo, mid)
    return float(np.sqrt(lo * hi))


def _study(args) -> dict:
    fl, lo, gt, resamples, k = args
    return bootstrap_ci(fl, lo, gt, resamples=resamples, seed=k)


def power(archs, table, sel, studies: int, resamples: int, seed: int = 0, train_seeds: int = TRAIN_SEEDS,
          workers: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    zf, zl = z(table["flatness"]), z(table["loss"])
    sel = np.asarray(sel)
    beta = _beta_for_effect(zf, zl, sel)
    truth = zf + beta * zl
    sigma = _noise_for_tau(truth, rng)
    # the simulated ground truths are drawn in study order first, so `workers` changes no number
    gts = [truth[sel] + sigma / np.sqrt(train_seeds) * rng.normal(size=sel.size) for _ in range(studies)]
    jobs = [(table["flatness"][sel], table["loss"][sel], gt, resamples, k) for k, gt in enumerate(gts)]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.map(_study, jobs)
    else:
        results = [_study(j) for j in jobs]
    lows, widths, hits = [], [], 0
    for res in results:
        lows.append(res["ci"][0])
        widths.append(res["ci"][1] - res["ci"][0])
        hits += res["ci"][0] > 0
    return dict(effect_D=EFFECT_D, beta=beta, seed_tau=SEED_TAU, noise_std=sigma, truth_std=float(truth.std()),
                train_seeds=train_seeds, n=int(sel.size), studies=studies, bootstrap_resamples=resamples,
                power=hits / studies, mean_ci_width=float(np.mean(widths)), seed=seed)


def escalations() -> list[tuple[int, int]]:
    """(n, seeds) options beyond (120, 3) within the budget, cheapest first (ties: larger n)."""
    grid = [(n, s) for n in range(N_SELECT, MAX_SELECT + 1, 20) for s in range(TRAIN_SEEDS, MAX_SEEDS + 1)
            if (n, s) != (N_SELECT, TRAIN_SEEDS) and n * s * SECONDS_PER_RUN / 3600 <= BUDGET_HOURS]
    return sorted(grid, key=lambda o: (o[0] * o[1], -o[0]))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--status", action="store_true", help="print how far stage 1 is and exit")
    p.add_argument("-o", "--output", help="folder for selection.json, selected.txt, power.json")
    p.add_argument("--studies", type=int, default=200, help="simulated studies for the power (default 200)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per simulated study")
    p.add_argument("--workers", type=int, default=1, help="processes for the power simulation (same numbers)")
    a = p.parse_args()
    keep, rows = json.loads((HERE / "pool_keep.json").read_text()), rows_by_arch()
    done = finished_prefix(keep, rows)
    scored = sum(all(s in rows.get(g, {}) for s in SEEDS) for g in keep["genotype"])
    if a.status or not a.output:
        print(f"stage 1: {scored} of {len(keep['genotype'])} kept architectures scored at seeds {SEEDS}; "
              f"finished prefix {done} of {keep['archs']} pool positions (stage 2 needs >= {MIN_PREFIX})")
        return 0
    prefix = done  # the pre-registration: the finished prefix, no choice
    if prefix < MIN_PREFIX:
        print(f"stage2_select.py: error: finished prefix {prefix} is below the minimum {MIN_PREFIX}",
              file=sys.stderr)
        return 2
    out = Path(a.output)
    if any((out / f).exists() for f in ("selection.json", "selected.txt", "power.json")):
        print(f"stage2_select.py: error: {out} already holds a selection; choose another -o", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    archs, table = pool_table(prefix)
    n, seeds = N_SELECT, TRAIN_SEEDS
    pw = power(archs, table, select(archs, table, n)[0], a.studies, a.resamples, workers=a.workers)
    tried = [pw]
    print(f"power {pw['power']:.2f} at n = {n}, {seeds} seeds", flush=True)
    if pw["power"] < MIN_POWER:  # the pre-registered rule: raise n or seeds within the budget
        for n, seeds in escalations():
            pw = power(archs, table, select(archs, table, n)[0], a.studies, a.resamples, train_seeds=seeds,
                           workers=a.workers)
            tried.append(pw)
            print(f"power {pw['power']:.2f} at n = {n}, {seeds} seeds", flush=True)
            if pw["power"] >= MIN_POWER:
                break
    sel, rf, rl = select(archs, table, n)
    chosen = [dict(pool_index=archs[k][0], genotype=archs[k][1], rank_flatness=float(rf[k]), rank_loss=float(rl[k]),
                   **{c: float(table[c][k]) for c in table}) for k in sel]
    (out / "selection.json").write_text(json.dumps(dict(prefix=prefix, pool_architectures=len(archs),
                                                        n_select=n, train_seeds=seeds, selected=chosen), indent=1) + "\n")
    (out / "selected.txt").write_text("".join(c["genotype"] + "\n" for c in chosen))
    (out / "power.json").write_text(json.dumps(dict(chosen=pw, tried=tried), indent=1) + "\n")
    print(f"prefix {prefix}: {len(archs)} architectures, {n} selected, {seeds} training seeds -> {out}; power "
          f"{pw['power']:.2f} (mean CI width {pw['mean_ci_width']:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
