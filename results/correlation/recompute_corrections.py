"""Recompute the corrections of issue #16, item 3, from the committed raw files only.

Run from the repository root (numpy + scipy, one core, about a minute):

    .venv/bin/python results/correlation/recompute_corrections.py

Every number quoted in the "Corrections (issue #16)" notes of results/correlation/README.md and
results/flatness-calibration/README.md is printed here, numbered like the notes (1-9).
It reads files only; it writes nothing.
"""
import glob
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

R = Path("results")
C = R / "correlation"
SN = C / "supernet"
STDS = np.array([0.001, 0.003, 0.006])


def jsonl(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def tau(x, y):
    return stats.kendalltau(x, y, variant="b").statistic


def fbs_terms(losses, stds=STDS):
    """slope sum = sum_k |dL/dsigma| between consecutive sigma; depth = |L(sigma1)/sigma1| (GeNAS, alpha = 1)."""
    L = np.asarray(losses, dtype=float)
    return float(np.abs(np.diff(L) / np.diff(stds)).sum()), float(abs(L[0] / stds[0]))


def seed_mean(rows, col):
    acc = {}
    for r in rows:
        v = r.get(col)
        if v is not None and math.isfinite(v):
            acc.setdefault(r["genotype"], []).append(v)
    return {g: float(np.mean(v)) for g, v in acc.items()}


def paired_boot(x, base, y, B=1000, seed=0):
    """tau(x, y) - tau(base, y) with a percentile 95 % CI over architecture resamples (the scheme of
    genas.analysis.calibration._paired_delta: rng = default_rng(seed), B x rng.integers(0, n, n))."""
    rng = np.random.default_rng(seed)
    d = []
    for _ in range(B):
        i = rng.integers(0, len(y), len(y))
        d.append(tau(x[i], y[i]) - tau(base[i], y[i]))
    d = np.array([v for v in d if math.isfinite(v)])
    return tau(x, y) - tau(base, y), np.percentile(d, [2.5, 97.5]), float((d <= 0).mean())


def boot_ci(x, y, B=1000, seed=0):
    rng = np.random.default_rng(seed)
    t = [tau(x[i], y[i]) for i in (rng.integers(0, len(y), len(y)) for _ in range(B))]
    return np.percentile(t, [2.5, 97.5])


def main():
    bench = jsonl(C / "bench/results.jsonl")
    order = [r["genotype"] for r in bench]              # join order of `genas correlate` (truth file order)
    truth = {r["genotype"]: r for r in bench}
    sup = jsonl(C / "scores_supernet.jsonl")
    zc = jsonl(C / "scores_zero_cost.jsonl")

    print("== 1. size of the extraction fix ==")
    truth_all = dict(truth)
    truth_all.update({r["genotype"]: r for r in jsonl(C / "bench-winners/results.jsonl")})
    winners = ([], [])
    # (a) the same search settings and seeds before (search-outcome-flatness-s*, code of 1df5bfa) and after the
    #     fix (search-outcome7-paper-s*, paper preset = the same settings): identical generation 0, so many
    #     genotypes are scored by both code versions with the same noise seed, 500 val + 448 BN images.
    for s in range(3):
        old = {}
        new = {}
        for d, D in ((f"search-outcome-flatness-s{s}", old), (f"search-outcome7-paper-s{s}", new)):
            for r in jsonl(SN / d / "candidates.jsonl"):
                D.setdefault(r["genotype"], r)
        common = [g for g in old if g in new]
        rel = np.array([abs(new[g]["score"] - old[g]["score"]) / abs(old[g]["score"]) for g in common])
        rel_l1 = np.array([abs(new[g]["raw"]["losses"][0] - old[g]["raw"]["losses"][0]) / old[g]["raw"]["losses"][0]
                           for g in common])
        g0 = [[r["genotype"] for r in jsonl(SN / d / "candidates.jsonl") if r["generation"] == 0]
              for d in (f"search-outcome-flatness-s{s}", f"search-outcome7-paper-s{s}")]
        wo = json.load(open(SN / f"search-outcome-flatness-s{s}/result.json"))["best"]["genotype"]
        wn = json.load(open(SN / f"search-outcome7-paper-s{s}/result.json"))["best"]["genotype"]
        t_on = tau(np.array([old[g]["score"] for g in common]), np.array([new[g]["score"] for g in common]))
        so = np.array([fbs_terms(old[g]["raw"]["losses"])[0] for g in common])
        sn = np.array([fbs_terms(new[g]["raw"]["losses"])[0] for g in common])
        print(f"seed {s}: generation 0 identical: {g0[0] == g0[1]}; {len(common)} genotypes scored by both; "
              f"relative FBS change |new - old| / old: median {np.median(rel):.2e}, max {rel.max():.3g} "
              f"(next largest {np.sort(rel)[-2]:.2e}); median relative L(sigma1) change {np.median(rel_l1):.2e}; "
              f"tau(old, new scores) {t_on:.3f}; slope sums (alpha = 0 part): median relative change "
              f"{np.median(np.abs(sn - so) / so):.3f}, tau(old, new) {tau(so, sn):.3f}; same winner: {wo == wn}")
        winners[0].append(truth_all[wo])
        winners[1].append(truth_all[wn])
        for g in common:
            if rel[common.index(g)] > 1e-2:
                print(f"    changed by {rel[common.index(g)]:.1f}x its old score: {g}  FBS {old[g]['score']:.3g} -> {new[g]['score']:.3g}, "
                      f"losses {np.round(old[g]['raw']['losses'], 3).tolist()} -> {np.round(new[g]['raw']['losses'], 3).tolist()}")
    for name, w in (("before the fix (search-outcome-flatness-s*)", winners[0]),
                    ("after the fix (search-outcome7-paper-s*)", winners[1])):
        t = [100 * r["test_accuracy"] for r in w]
        sh = [100 * r["shifted_accuracy"] for r in w]
        print(f"winners {name}, training seed 0 ground truth: test {np.round(t, 2).tolist()} = "
              f"{np.mean(t):.2f} +- {np.std(t, ddof=1):.2f}, shifted {np.mean(sh):.2f} +- {np.std(sh, ddof=1):.2f}")
    # (b) the 1000-image study rows (seed 0, old code) vs the noise grid (seed 0, new code): the grid's sigma = 0.001
    #     is the same draw (first level); its 0.003 / 0.006 are other draws, so only L0 and L(0.001) compare.
    grid = {r["genotype"]: r for r in jsonl(R / "flatness-calibration/grid.jsonl")}
    s0 = {r["genotype"]: r for r in sup if r["seed"] == 0}
    cg = [g for g in grid if g in s0]
    l0 = np.array([abs(grid[g]["loss0"] + s0[g]["loss"]) / abs(s0[g]["loss"]) for g in cg])
    l1 = np.array([abs(grid[g]["blocks"]["absolute/all"]["losses"][0] - s0[g]["flatness_losses_independent"][0])
                   / s0[g]["flatness_losses_independent"][0] for g in cg])
    a0_new = []
    for g in cg:
        b = grid[g]["blocks"]["absolute/all"]
        a0_new.append(1 / (fbs_terms([b["losses"][b["stds"].index(v)] for v in STDS])[0] + 1e-5))
    a0_old = [s0[g]["flatness_alpha0_independent"] for g in cg]
    print(f"study seed 0 vs grid, {len(cg)} architectures, 1000 images: unperturbed loss median relative change "
          f"{np.median(l0):.1e}; L(sigma1) median {np.median(l1):.2e} (the depth term only); "
          f"tau(study alpha = 0, grid alpha = 0) {tau(np.array(a0_old), np.array(a0_new)):.3f} "
          f"(other draws at 0.003 / 0.006, so this mixes the fix with the noise draw)")

    big = {r["genotype"] for r in sup if max(r["flatness_losses_independent"]) > 1.0}
    print(f"architectures of the 100-sample with a perturbed loss > 1 in scores_supernet.jsonl: "
          f"{[truth[g]['index'] for g in big]} (disconnected: {[truth[g]['disconnected'] for g in big]})")

    print("== 2. slope sum vs depth term (paper sigma, alpha = 1) ==")
    T = np.array([fbs_terms(r["flatness_losses_independent"]) for r in sup])
    mad = lambda v: float(np.median(np.abs(v - np.median(v))))
    print(f"correlation study (scores_supernet.jsonl, flatness_losses_independent, {len(T)} rows = 100 archs x 3 seeds): "
          f"median depth {np.median(T[:, 1]):.1f}, median slope sum {np.median(T[:, 0]):.2f}, "
          f"ratio {np.median(T[:, 1]) / np.median(T[:, 0]):.0f}x; MAD depth {mad(T[:, 1]):.1f} vs slope {mad(T[:, 0]):.2f} "
          f"({mad(T[:, 1]) / mad(T[:, 0]):.1f}x)")
    Tg = []
    for r in grid.values():
        b = r["blocks"]["absolute/all"]
        Tg.append(fbs_terms([b["losses"][b["stds"].index(v)] for v in STDS]))
    Tg = np.array(Tg)
    print(f"calibration grid (grid.jsonl absolute/all at 0.001/0.003/0.006, {len(Tg)} archs, seed 0): "
          f"median depth {np.median(Tg[:, 1]):.1f}, median slope sum {np.median(Tg[:, 0]):.2f}, "
          f"ratio {np.median(Tg[:, 1]) / np.median(Tg[:, 0]):.0f}x; MAD {mad(Tg[:, 1]):.1f} vs {mad(Tg[:, 0]):.2f} "
          f"({mad(Tg[:, 1]) / mad(Tg[:, 0]):.1f}x)")

    print("== 3. synflow on NB201 (results/nb201-tables/) ==")
    anchors = json.load(open(R / "nb201-tables/anchors.json"))["checks"]
    for a in anchors:
        if "synflow" in a["check"] or "few_shot" in a["check"] and "all archs: Spearman" in a["check"]:
            print(f"anchors.json: {a['check']}: {a['ours']}")
    res = json.load(open(R / "nb201-tables/correlation.json"))["results"]
    for gt in ("CIFAR10TestAccuracy200Epochs", "val_acc"):
        sr = res[gt]["synflow"]["spearman_rho"]
        print(f"correlation.json: synflow vs {gt}: Spearman {sr['estimate']:.3f} "
              f"[{sr['ci'][0]:.3f}, {sr['ci'][1]:.3f}] (n {res[gt]['synflow']['n']})")

    print("== 4. ground-truth noise ceiling (seed 0 vs seed 1, first 50 architectures) ==")
    s1 = {r["genotype"]: r for r in jsonl(C / "bench-seed1/results.jsonl")}
    g50 = [g for g in order if g in s1]
    for col in ("test_accuracy", "shifted_accuracy"):
        a = np.array([truth[g][col] for g in g50])
        b = np.array([s1[g][col] for g in g50])
        r_p = stats.pearsonr(a, b).statistic
        t = tau(a, b)
        r_t = math.sin(math.pi * t / 2)                  # Greiner: tau = (2/pi) arcsin r  =>  r = sin(pi tau / 2)
        print(f"{col}: n {len(g50)}, Kendall tau {t:.3f}, Pearson r {r_p:.3f}, Spearman {stats.spearmanr(a, b).statistic:.3f}, "
              f"r implied by tau sin(pi*tau/2) = {r_t:.3f}")
        for name, rel in (("Pearson r", r_p), ("tau-implied r", r_t)):
            one = math.sqrt(rel)                         # perfect predictor of the expected accuracy vs one seed
            two = math.sqrt(2 * rel / (1 + rel))         # vs the mean of two seeds (Spearman-Brown reliability)
            print(f"    reliability = {name} {rel:.3f}: ceiling r {one:.3f} -> tau {2 / math.pi * math.asin(one):.3f} "
                  f"(one seed); r {two:.3f} -> tau {2 / math.pi * math.asin(two):.3f} (two-seed mean)")
        if col == "test_accuracy":
            k = int(np.argmax(np.abs(a - b)))
            m = np.arange(len(a)) != k
            print(f"    sd of seed0-seed1 difference {100 * np.std(a - b, ddof=1):.2f} points, sd of the two-seed mean "
                  f"{100 * np.std((a + b) / 2, ddof=1):.2f} points; largest |difference| {100 * abs(a[k] - b[k]):.2f} "
                  f"points (bench index {truth[g50[k]]['index']}); Pearson r without it "
                  f"{stats.pearsonr(a[m], b[m]).statistic:.3f}, tau without it {tau(a[m], b[m]):.3f}")

    print("== 5./6. paired bootstrap on the correlation study's own data (seed-averaged proxies, vs test accuracy, "
          "100 architectures, B = 1000, seed 0) ==")
    cols = {"fbs": seed_mean(sup, "flatness_independent"), "accuracy": seed_mean(sup, "accuracy"),
            "loss": seed_mean(sup, "loss"), "angle": seed_mean(sup, "angle"),
            "synflow": seed_mean(zc, "synflow"), "params": seed_mean(zc, "params")}
    y = np.array([truth[g]["test_accuracy"] for g in order])
    X = {k: np.array([v[g] for g in order]) for k, v in cols.items()}
    lo, hi = boot_ci(X["synflow"], y)
    print(f"check of the resampling against table/correlation.md: synflow tau {tau(X['synflow'], y):.3f} [{lo:.3f}, {hi:.3f}] "
          f"(table: 0.388 [0.278, 0.494])")
    for a, b in (("fbs", "accuracy"), ("synflow", "fbs"), ("params", "fbs"), ("fbs", "loss")):
        d, ci, p = paired_boot(X[a], X[b], y)
        print(f"tau({a}) - tau({b}) = {d:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]  (share of resamples <= 0: {p:.3f})")
    # robustness of the synflow - FBS lower end: other resample seeds, another row order, connected only
    lows = []
    for name, o in (("table order", order), ("sorted genotypes", sorted(order)),
                    ("connected only", [g for g in order if not truth[g]["disconnected"]])):
        yy = np.array([truth[g]["test_accuracy"] for g in o])
        for sd in (0, 1, 2):
            d, ci, p = paired_boot(np.array([cols["synflow"][g] for g in o]), np.array([cols["fbs"][g] for g in o]),
                                   yy, seed=sd)
            lows.append(ci[0])
            print(f"    synflow - fbs, {name}, bootstrap seed {sd}: {d:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}], <= 0: {p:.3f}")
    print(f"    lower CI end over these 9 variants: {min(lows):+.3f} to {max(lows):+.3f}")

    print("== 7. NB201 anchors ==")
    print(f"anchors.json: {len(anchors)} checks, all pass: {all(a['pass'] for a in anchors)}; the anchor values are "
          "SOURCE.md's own scipy rank correlations of the same CSV tables (shared/data/nb201/SOURCE.md, "
          "'Rank correlation ... (scipy)' and 'Quick check'), not numbers from a paper")

    print("== 8. ties in the angle searches ==")
    for f in sorted(glob.glob(str(SN / "search-outcome-angle-s*/candidates.jsonl"))):
        rows = jsonl(f)
        m = max(r["score"] for r in rows)
        tied = {r["genotype"] for r in rows if r["score"] == m}
        win = json.load(open(Path(f).with_name("result.json")))["best"]["genotype"]
        print(f"{Path(f).parent.name}: {len(tied)} of {len(rows)} candidates at the maximum angle {m:.6f} exactly; "
              f"winner among them: {win in tied}")

    print("== 9. the disconnected architecture ==")
    dis = [g for g in order if truth[g]["disconnected"]]
    print(f"disconnected rows in bench/results.jsonl: {len(dis)} (index {[truth[g]['index'] for g in dis]}, "
          f"test accuracy {[truth[g]['test_accuracy'] for g in dis]}); in scores_supernet.jsonl: "
          f"{sum(r['genotype'] in dis for r in sup)} rows, scores_zero_cost.jsonl: {sum(r['genotype'] in dis for r in zc)}")
    keep = np.array([not truth[g]["disconnected"] for g in order])
    for k in ("fbs", "loss", "accuracy", "angle", "synflow", "params"):
        rank = int((X[k] > X[k][~keep][0]).sum()) + 1
        print(f"{k}: tau vs test with it {tau(X[k], y):.3f}, without it {tau(X[k][keep], y[keep]):.3f}; "
              f"its proxy value ranks {rank} of 100 (100 = lowest)")


if __name__ == "__main__":
    main()
