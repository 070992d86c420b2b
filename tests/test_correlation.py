"""Rank-correlation analysis (genas.analysis.correlation): exact small cases, conventions, outputs, NB201 anchor."""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from genas.analysis.correlation import correlate, load_table, load_tables, precision_at_k
from genas.errors import GenasError

NB201 = Path(__file__).resolve().parents[2] / "shared/data/nb201"


def tables(x, y, xname="proxy", yname="acc"):
    gt = [{"genotype": f"a{i}", yname: v} for i, v in enumerate(y)]
    px = [{"genotype": f"a{i}", xname: v} for i, v in enumerate(x)]
    return gt, px


def run(x, y, **kw):
    gt, px = tables(x, y)
    kw.setdefault("bootstrap", 0)
    return correlate(gt, px, ["acc"], ["proxy"], **kw)["results"]["acc"]["proxy"]


def tau_b_by_hand(x, y):
    """Kendall τ-b by counting pairs: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tx += sx == 0
        ty += sy == 0
        if sx and sy:
            c += sx == sy
            d += sx != sy
    n0 = len(x) * (len(x) - 1) // 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


def test_perfect_and_reversed_ranking():
    y = [91.0, 85.5, 70.2, 93.1, 60.0, 88.8, 75.0, 80.1, 65.3, 90.0]
    r = run([2 * v + 1 for v in y], y)
    assert r["n"] == 10
    assert r["kendall_tau"]["estimate"] == pytest.approx(1.0)
    assert r["spearman_rho"]["estimate"] == pytest.approx(1.0)
    assert r["precision_at_k"]["estimate"] == 1.0 and r["precision_at_k"]["k"] == 1
    r = run([-v for v in y], y)
    assert r["kendall_tau"]["estimate"] == pytest.approx(-1.0)
    assert r["spearman_rho"]["estimate"] == pytest.approx(-1.0)
    assert r["precision_at_k"]["estimate"] == 0.0


def test_ties_match_hand_computation_and_scipy():
    x, y = [1, 2, 2, 3, 4], [2, 1, 3, 3, 5]
    # pairs: C = 7, D = 1 (items 0,1), one tie in x (1,2), one in y (2,3): τ-b = 6 / sqrt(9 * 9)
    assert tau_b_by_hand(x, y) == pytest.approx(6 / 9)
    r = run(x, y)
    assert r["kendall_tau"]["estimate"] == pytest.approx(6 / 9)
    assert r["kendall_tau"]["estimate"] == pytest.approx(stats.kendalltau(x, y, variant="b").statistic)
    # Spearman: Pearson of average ranks, x -> [1, 2.5, 2.5, 4, 5], y -> [2, 1, 3.5, 3.5, 5]
    rho = np.corrcoef([1, 2.5, 2.5, 4, 5], [2, 1, 3.5, 3.5, 5])[0, 1]
    assert r["spearman_rho"]["estimate"] == pytest.approx(rho)
    assert r["spearman_rho"]["estimate"] == pytest.approx(stats.spearmanr(x, y).statistic)
    rng = np.random.default_rng(3)
    xs, ys = rng.integers(0, 4, 12).astype(float), rng.integers(0, 5, 12).astype(float)
    assert run(xs, ys)["kendall_tau"]["estimate"] == pytest.approx(tau_b_by_hand(xs, ys))


def test_precision_at_k_hand_examples():
    # k = ceil(0.3 * 10) = 3: proxy top 3 = {0, 1, 2}, truth top 3 = {0, 1, 5} -> 2 / 3
    proxy = [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    truth = [9, 8, 1, 2, 3, 7, 0, 0.5, 0.2, 0.1]
    pk = precision_at_k(proxy, truth, 0.3)
    assert pk["k"] == 3 and pk["estimate"] == pytest.approx(2 / 3) and pk["tie_range"] == pytest.approx([2 / 3] * 2)
    # proxy ties across the boundary: item 0 is in, 2 slots for the tie {1, 2, 3}; truth top 3 = {0, 1, 9}
    proxy = [5, 4, 4, 4, 1, 1, 1, 1, 1, 1]
    truth = [10, 9, 1, 2, 3, 4, 5, 6, 7, 8]
    pk = precision_at_k(proxy, truth, 0.3)
    assert pk["estimate"] == pytest.approx((1 + 2 / 3) / 3)  # item 1 is picked with probability 2/3
    assert pk["tie_range"] == pytest.approx([1 / 3, 2 / 3])  # conservative: item 1 left out
    assert precision_at_k(range(30), range(30), 0.1)["k"] == 3  # 0.1 * 30 is not rounded up to 4
    assert precision_at_k([1.0] * 10, range(10), 0.2)["estimate"] == pytest.approx(0.2)  # constant = chance


def test_precision_at_k_is_mean_over_random_tie_breaks():
    proxy = np.array([3, 3, 2, 2, 2, 1, 0], float)
    truth = np.array([5, 1, 5, 4, 0, 3, 3], float)
    k = 3
    overlaps = []
    for px_order in itertools.permutations(range(7)):  # every tie-break order of both columns at once
        tie_key = np.array(px_order)
        top_p = set(np.lexsort((tie_key, -proxy))[:k])
        top_g = set(np.lexsort((tie_key[::-1], -truth))[:k])
        overlaps.append(len(top_p & top_g) / k)
    assert precision_at_k(proxy, truth, 3 / 7)["estimate"] == pytest.approx(np.mean(overlaps))


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    x = y + rng.normal(size=60)
    gt, px = tables(x, y)
    a = correlate(gt, px, ["acc"], ["proxy"], bootstrap=300, seed=7)
    b = correlate(gt, px, ["acc"], ["proxy"], bootstrap=300, seed=7)
    c = correlate(gt, px, ["acc"], ["proxy"], bootstrap=300, seed=8)
    for name in ("kendall_tau", "spearman_rho", "precision_at_k"):
        m = a["results"]["acc"]["proxy"][name]
        assert m["ci"][0] <= m["estimate"] <= m["ci"][1]
        assert m == b["results"]["acc"]["proxy"][name]
    assert a["results"]["acc"]["proxy"]["kendall_tau"]["ci"] != c["results"]["acc"]["proxy"]["kendall_tau"]["ci"]
    assert a["pairwise"][0]["kendall_tau"] == a["results"]["acc"]["proxy"]["kendall_tau"]  # same resamples


def test_missing_values_are_dropped_pairwise_and_n_reported():
    gt = [{"genotype": f"a{i}", "acc": v, "acc2": float(i)} for i, v in
          enumerate([1.0, 2.0, None, 4.0, 5.0, float("nan"), 7.0, 8.0])]
    px = [{"genotype": f"a{i}", "p": v, "q": float(-i)} for i, v in
          enumerate([1.0, 3.0, 2.0, "", 4.0, 6.0, float("inf"), 9.0])]
    px.append({"genotype": "only-proxy", "p": 1.0, "q": 1.0})
    res = correlate(gt, px, ["acc", "acc2"], ["p", "q"], bootstrap=0)
    r = res["results"]["acc"]["p"]
    keep = [0, 1, 4, 7]  # rows 2, 5 lack acc; rows 3, 6 lack p
    x = np.array([1.0, 3.0, 2.0, 0, 4.0, 6.0, 0, 9.0])[keep]
    y = np.array([1.0, 2, 0, 4, 5, 0, 7, 8])[keep]
    assert r["n"] == 4
    assert r["kendall_tau"]["estimate"] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert res["results"]["acc2"]["q"]["n"] == 8 and res["results"]["acc2"]["p"]["n"] == 6
    assert res["results"]["acc2"]["q"]["kendall_tau"]["estimate"] == pytest.approx(-1.0)
    assert res["inputs"]["joined"] == 8 and res["inputs"]["proxy_only"] == 1
    pair = next(e for e in res["pairwise"] if (e["a"], e["b"]) == ("p", "q"))
    both = [0, 1, 2, 4, 5, 7]  # p is missing in rows 3 and 6; q is never missing
    assert pair["n"] == 6 and pair["kendall_tau"]["estimate"] == pytest.approx(
        stats.kendalltau([1.0, 3.0, 2.0, 4.0, 6.0, 9.0], [-i for i in both]).statistic)


def test_negate_flips_sign():
    rng = np.random.default_rng(1)
    y = rng.normal(size=30)
    loss = -y + rng.normal(size=30)
    plain, neg = run(loss, y), run(loss, y, negate=["proxy"])
    assert run(loss, y, negate="proxy") == neg
    assert neg["kendall_tau"]["estimate"] == pytest.approx(-plain["kendall_tau"]["estimate"])
    assert neg["spearman_rho"]["estimate"] == pytest.approx(-plain["spearman_rho"]["estimate"])
    assert neg["kendall_tau"]["estimate"] > 0.3
    assert neg["precision_at_k"]["estimate"] == pytest.approx(run(-loss, y)["precision_at_k"]["estimate"])
    with pytest.raises(GenasError, match="cannot negate unknown column"):
        run(loss, y, negate=["nope"])


def test_seed_averaging_and_per_seed_summary(tmp_path):
    y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    s0 = [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]
    s1 = [3.0, 2.0, 1.0, 4.0, 5.0, 8.0]
    gt = [{"genotype": f"a{i}", "acc": v} for i, v in enumerate(y)]
    for s, vals in ((0, s0), (1, s1)):  # one proxy file per seed
        (tmp_path / f"p{s}.jsonl").write_text("".join(
            json.dumps({"genotype": f"a{i}", "seed": s, "proxy": v}) + "\n" for i, v in enumerate(vals)))
    px = load_tables([tmp_path / "p0.jsonl", tmp_path / "p1.jsonl"], key="genotype")
    res = correlate(gt, px, ["acc"], ["proxy"], bootstrap=0)
    mean = (np.array(s0) + np.array(s1)) / 2
    assert res["results"]["acc"]["proxy"]["kendall_tau"]["estimate"] == pytest.approx(
        stats.kendalltau(mean, y).statistic)
    assert res["inputs"]["seeds"] == ["0", "1"] and res["inputs"]["proxy_keys_with_several_rows"] == 6
    per = res["per_seed"]["results"]["acc"]["proxy"]["kendall_tau"]
    taus = [stats.kendalltau(s, y).statistic for s in (s0, s1)]
    assert per["values"] == pytest.approx(taus)
    assert per["mean"] == pytest.approx(np.mean(taus)) and per["std"] == pytest.approx(np.std(taus, ddof=1))


def _no_nan(text: str) -> dict:
    def reject(const):
        raise AssertionError(f"JSON contains {const}")
    return json.loads(text, parse_constant=reject)


def test_outputs_written_without_nan(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.normal(size=40)
    gt = [{"genotype": f"a{i}", "test_accuracy": v, "val_accuracy": v + 0.1 * rng.normal()} for i, v in enumerate(y)]
    px = [{"genotype": f"a{i}", "flatness": v + rng.normal(), "angle": rng.normal(), "constant": 1.0,
           "loss": -v} for i, v in enumerate(y)]
    res = correlate(gt, px, ["test_accuracy", "val_accuracy"], ["flatness", "angle", "constant", "loss"],
                    out_dir=tmp_path / "out", bootstrap=50, negate=["loss"], split="NB201 test (200 epochs)",
                    sources={"ground_truth": "gt.jsonl", "proxies": ["p0.jsonl"]})
    out = tmp_path / "out"
    data = _no_nan((out / "correlation.json").read_text())
    assert data["results"]["test_accuracy"]["constant"]["kendall_tau"]["estimate"] is None
    assert data["results"]["test_accuracy"]["constant"]["note"]
    assert data["results"]["test_accuracy"]["loss"]["kendall_tau"]["estimate"] == pytest.approx(1.0)
    assert data["conventions"]["split"] == "NB201 test (200 epochs)"
    assert data["inputs"]["sources"]["proxies"] == ["p0.jsonl"]
    assert data["tau_matrix"]["labels"][-2:] == ["test_accuracy (GT)", "val_accuracy (GT)"]
    md = (out / "correlation.md").read_text()
    assert "Kendall τ-b" in md and "`flatness`" in md and "NB201 test (200 epochs)" in md and "n/a" in md
    for name in ("scatter_test_accuracy.png", "scatter_val_accuracy.png", "pairwise_tau.png"):
        assert (out / name).stat().st_size > 1000
    assert res["files"]["heatmap"] == "pairwise_tau.png"


def test_degenerate_inputs_give_null(tmp_path):
    res = correlate([{"genotype": "a", "acc": 1.0}, {"genotype": "b", "acc": 2.0}],
                    [{"genotype": "a", "p": 1.0}, {"genotype": "b", "p": 3.0}],
                    ["acc"], ["p"], out_dir=tmp_path, bootstrap=20)
    r = res["results"]["acc"]["p"]
    assert r["n"] == 2 and r["kendall_tau"]["estimate"] is None and r["precision_at_k"]["estimate"] is None
    assert any("need 3" in n for n in res["notes"])
    _no_nan((tmp_path / "correlation.json").read_text())


def test_loader_and_input_errors(tmp_path):
    with pytest.raises(GenasError, match="not found"):
        load_table(tmp_path / "missing.csv")
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("genotype,acc,name\nx,1.5,foo\ny,,bar\n")
    rows = load_table(csv_path, key="genotype", columns=["acc"])
    assert rows == [{"genotype": "x", "acc": 1.5, "name": "foo"}, {"genotype": "y", "acc": None, "name": "bar"}]
    with pytest.raises(GenasError, match="no key column 'arch'.*available: genotype, acc, name"):
        load_table(csv_path, key="arch")
    with pytest.raises(GenasError, match="unknown.*'tau'.*available: genotype, acc, name"):
        load_table(csv_path, columns=["tau"])
    jl = tmp_path / "t.jsonl"
    jl.write_text('{"genotype": "x", "p": "2"}\n{"genotype": "y", "p": 3}\n')
    assert load_table(jl, key="genotype") == [{"genotype": "x", "p": 2.0}, {"genotype": "y", "p": 3}]
    jl.write_text('{"genotype": "x", "p": 2}\nnot json\n{"genotype": "y", "p": 3}\n')
    with pytest.raises(GenasError, match="line 2 is not valid JSON"):
        load_table(jl)
    with pytest.raises(GenasError, match="unsupported format"):
        (tmp_path / "t.txt").write_text("a")
        load_table(tmp_path / "t.txt")
    gt, px = tables([1, 2, 3], [1, 2, 3])
    with pytest.raises(GenasError, match="unknown ground-truth column.*'test'.*available: genotype, acc"):
        correlate(gt, px, ["test"], ["proxy"])
    with pytest.raises(GenasError, match="proxy rows have no key column 'arch_str'"):
        correlate(gt, px, ["acc"], ["proxy"], proxy_key="arch_str")
    with pytest.raises(GenasError, match="not a number"):
        correlate(gt, [{"genotype": "a0", "proxy": "high"}], ["acc"], ["proxy"])


def test_nb201_one_shot_anchor():
    """SOURCE.md: one-shot supernet accuracy vs NATS CIFAR-10 test accuracy, all 15,625 archs: τ = 0.484."""
    if not (NB201 / "nb201_supernet_acc_fewshotnas_cifar10.csv").is_file():
        pytest.skip(f"NB201 tables not found at {NB201}")
    gt = load_table(NB201 / "nats_tss_test_acc_200ep.csv", key="ArchitectureString")
    px = load_table(NB201 / "nb201_supernet_acc_fewshotnas_cifar10.csv", key="arch_str")
    res = correlate(gt, px, ["CIFAR10TestAccuracy200Epochs"], ["one_shot_supernet_acc"],
                    key="ArchitectureString", proxy_key="arch_str", bootstrap=0)
    r = res["results"]["CIFAR10TestAccuracy200Epochs"]["one_shot_supernet_acc"]
    assert r["n"] == 15625
    assert r["kendall_tau"]["estimate"] == pytest.approx(0.484, abs=0.001)
    assert r["spearman_rho"]["estimate"] == pytest.approx(0.676, abs=0.001)
