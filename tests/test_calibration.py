"""Noise grid (measure once) and offline calibration of flatness variants."""
import json

import numpy as np
import pytest
from scipy import stats

from _tiny import train_tiny
from genas.workflows.scoring import scoring_context
from genas.analysis.calibration import calibrate, held_out_selection, sigma_lists, variant_scores
from genas.workflows.noise_grid import noise_grid, parse_grid
from genas.io import read_jsonl
from genas.cli import main
from genas.errors import GenasError
from genas.proxies import ScoringConfig, ScoringContext, get_proxy
from genas.proxies.flatness import auto_alpha, flatness_terms
from genas.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = get_space("nb201")
SMALL = dict(val_images=96, bn_images=64, bn_batch_size=32, batch_size=48)
GRID = {"filter/weights": ("filter", "weights", (0.02, 0.04, 0.08)),
        "absolute/all": ("absolute", "all", (0.001, 0.002, 0.003, 0.004))}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "run"
    train_tiny(path, epochs=2)
    return path


def archs(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.format(SPACE.sample(rng)) for _ in range(n)]


def test_grid_rows_score_like_the_online_proxy_and_resume(run, tmp_path):
    out = tmp_path / "grid.jsonl"
    genotypes = archs(3)
    assert noise_grid(genotypes[:2], run, out, [0], ScoringConfig(**SMALL), GRID, progress=False) == 2
    assert noise_grid(genotypes, run, out, [0], ScoringConfig(**SMALL), GRID, progress=False) == 1  # resumes
    rows = read_jsonl(out)
    assert [r["genotype"] for r in rows] == genotypes
    # a sigma list equal to a whole block reuses its draws level by level: offline == online exactly
    cfg = ScoringConfig(**SMALL, stds=(0.02, 0.04, 0.08), noise_scaling="filter", noise_params="weights",
                        depth_at="zero", alpha=0.7)
    ctx = scoring_context(run, cfg)
    online = [get_proxy("flatness")(ctx, SPACE.parse(g)).value for g in genotypes]
    offline, a = variant_scores(rows, "filter/weights", (0.02, 0.04, 0.08), 0.7, "zero")
    assert a == 0.7
    np.testing.assert_allclose(offline, online, rtol=1e-9)
    assert rows[0]["loss0"] == ctx.evaluation(SPACE.parse(genotypes[0]))["loss"]
    # other settings in the same file are refused, earlier rows untouched
    before = out.read_bytes()
    with pytest.raises(GenasError, match="other settings"):
        noise_grid(genotypes, run, out, [0], ScoringConfig(**{**SMALL, "val_images": 48}), GRID, progress=False)
    assert out.read_bytes() == before


def test_parse_grid_and_sigma_lists():
    g = parse_grid("filter/weights:0.1,0.05,0.2; absolute/all:0.001,0.003,0.006")
    assert g["filter/weights"] == ("filter", "weights", (0.05, 0.1, 0.2))
    assert parse_grid(None)["absolute/all"][2][:3] == (0.001, 0.002, 0.003)
    for bad in ("layer/all:0.1", "filter/bn:0.1", "filter/all:", "filter/all:x", "filter/all:0.1,0.1", "filter/all:-1"):
        with pytest.raises(GenasError, match="--grid"):
            parse_grid(bad)
    lists = sigma_lists((0.001, 0.002, 0.003, 0.004, 0.006, 0.008))
    assert (0.001, 0.002, 0.004) in lists and (0.002, 0.004, 0.008) in lists and (0.001, 0.003, 0.006) in lists
    assert len(lists) == 3


def _fake_rows(n=30, seed=0):
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for i in range(n):
        l0 = rng.uniform(0.3, 0.6)
        rise = rng.uniform(0.0, 0.5)
        losses = [l0 + rise * s * 100 + rng.normal(0, 0.01) for s in (0.001, 0.003, 0.006)]
        rows.append(dict(genotype=f"g{i}", seed=0, loss0=l0, accuracy0=1 - l0 / 2, images=100,
                         blocks={"absolute/all": dict(stds=[0.001, 0.003, 0.006], losses=losses)}))
        truth.append(dict(genotype=f"g{i}", test_accuracy=1 - l0 - 0.1 * rise + rng.normal(0, 0.02),
                          shifted_accuracy=0.5 - rise + rng.normal(0, 0.05)))
    # a second training seed of the first ten: the truth is their mean
    truth += [dict(genotype=f"g{i}", test_accuracy=truth[i]["test_accuracy"] + 0.01,
                   shifted_accuracy=truth[i]["shifted_accuracy"]) for i in range(10)]
    return rows, truth


def test_calibrate_scores_correlates_and_writes_outputs(tmp_path):
    rows, truth = _fake_rows()
    res = calibrate(rows, truth, ["test_accuracy", "shifted_accuracy"], tmp_path, bootstrap=200, plots=True)
    assert res["architectures"] == 30
    by_label = {e["label"]: e for e in res["variants"]}
    paper = by_label["absolute/all s=0.001/0.003/0.006 a=1 depth=sigma1"]
    scores = [1 / (sum(flatness_terms(r["blocks"]["absolute/all"]["losses"], (0.001, 0.003, 0.006))) + 1e-5)
              for r in rows]  # alpha = 1: slopes + depth
    gt = {}
    for t in truth:
        gt.setdefault(t["genotype"], []).append(t["test_accuracy"])
    y = [np.mean(gt[r["genotype"]]) for r in rows]
    rows_sorted = sorted(range(30), key=lambda i: rows[i]["genotype"])
    expect = stats.kendalltau([scores[i] for i in rows_sorted], [y[i] for i in rows_sorted]).statistic
    assert paper["tau_test_accuracy"] == pytest.approx(expect)
    auto = by_label["absolute/all s=0.001/0.003/0.006 a=auto depth=zero"]
    terms = [flatness_terms(r["blocks"]["absolute/all"]["losses"], (0.001, 0.003, 0.006), r["loss0"]) for r in rows]
    assert auto["alpha_value"] == pytest.approx(auto_alpha(terms))
    assert "paper" in res["shortlist"] and res["shortlist"]["paper"]["label"] == paper["label"]
    d = res["paired_vs_loss"]["test_accuracy"]["paper"]
    assert d["ci95"][0] <= d["delta_tau"] <= d["ci95"][1]
    acc = res["paired_vs_accuracy"]["test_accuracy"]
    assert "supernet accuracy" not in acc and acc["supernet loss"]["delta_tau"] == pytest.approx(
        -res["paired_vs_loss"]["test_accuracy"]["supernet accuracy"]["delta_tau"])
    held = res["held_out_selection"]["test_accuracy"]
    assert held["splits"] == 200 and sum(held["picked"].values()) <= 200
    assert set(held["vs"]) == {"supernet loss", "supernet accuracy", "paper"}
    assert "Held-out selection" in (tmp_path / "calibration.md").read_text()
    for f in ("calibration.json", "calibration.md", "tau_vs_alpha.png", "shortlist/correlation.json"):
        assert (tmp_path / f).exists(), f
    json.loads((tmp_path / "calibration.json").read_text())
    with pytest.raises(GenasError, match="need >= 3"):
        calibrate(rows[:2], truth, ["test_accuracy"], tmp_path / "x", bootstrap=0)


def test_held_out_selection_picks_on_one_half_and_scores_on_the_other():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=40)
    scores = {"oracle": gt.copy(), "noise": rng.normal(size=40), "anti": -gt}
    res = held_out_selection(scores, {"ref": rng.normal(size=40), "self": gt.copy()}, gt, splits=25, seed=1)
    assert res["picked"] == {"oracle": 25} and res["chosen_tau"] == pytest.approx(1.0)
    assert res["vs"]["self"]["delta"] == pytest.approx(0.0) and res["vs"]["self"]["wins"] == 0.0
    assert res["vs"]["ref"]["wins"] == 1.0 and res["vs"]["ref"]["delta"] > 0.5
    # seeded: the same splits again
    again = held_out_selection(scores, {"ref": scores["noise"]}, gt, splits=25, seed=1)
    assert again["chosen_tau"] == res["chosen_tau"]
    # with pure-noise variants the held-out tau of the chosen one is near 0 although its in-sample tau is the max
    noise = {f"n{i}": rng.normal(size=40) for i in range(30)}
    in_sample = max(stats.kendalltau(v, gt).statistic for v in noise.values())
    held = held_out_selection(noise, {"ref": rng.normal(size=40)}, gt, splits=50, seed=0)
    assert in_sample > 0.2 and abs(held["chosen_tau"]) < 0.1


def test_calibrate_rejects_negative_splits(tmp_path):
    rows, truth = _fake_rows()
    with pytest.raises(GenasError, match="splits"):
        calibrate(rows, truth, ["test_accuracy"], tmp_path, bootstrap=0, splits=-1)


def test_cli_noise_grid_bad_input_is_one_line(tmp_path, capsys):
    assert main(["noise-grid", "--bench", str(tmp_path), "--run", str(tmp_path), "-o", str(tmp_path / "g.jsonl"),
                 "--grid", "layer/all:0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genas: error:") and "--grid" in err[0]


def test_search_outcome_looks_winners_up_and_lists_the_missing(tmp_path):
    from genas.analysis.outcome import search_outcome

    def search(name, metric, seed, winner, **scoring):
        d = tmp_path / name
        d.mkdir()
        (d / "result.json").write_text(json.dumps(dict(metric=metric, config=dict(seed=seed), evaluations=10,
                                                       best=dict(genotype=winner, score=1.0), scoring=scoring)))
        return d

    dirs = [search("a", "flatness", 0, "g1"), search("b", "flatness", 1, "g2"), search("c", "angle", 0, "g3")]
    truth = [dict(genotype="g1", test_accuracy=0.8, shifted_accuracy=0.5),
             dict(genotype="g1", test_accuracy=0.82, shifted_accuracy=0.5),  # second training seed: averaged
             dict(genotype="g2", test_accuracy=0.9, shifted_accuracy=0.4)]
    res = search_outcome(dirs, truth, tmp_path / "out")
    flat = res["summary"]["flatness"]
    assert flat["test_accuracy"]["mean"] == pytest.approx((0.81 + 0.9) / 2)
    assert flat["test_accuracy"]["std"] == pytest.approx(np.std([0.81, 0.9], ddof=1))
    assert res["summary"]["angle"]["test_accuracy"]["mean"] is None and res["missing"] == ["g3"]
    assert (tmp_path / "out" / "missing.txt").read_text() == "g3\n"
    assert "flatness" in (tmp_path / "out" / "outcome.md").read_text()
    with pytest.raises(GenasError, match="no finished search"):
        search_outcome([tmp_path / "out"], truth, tmp_path / "o2")
    # one metric with two flatness settings: two methods, each named by its settings
    dirs.append(search("d", "flatness", 0, "g2", alpha="auto", noise_scaling="filter", noise_params="weights"))
    res = search_outcome(dirs, truth, tmp_path / "o3")
    assert set(res["summary"]) == {"flatness [absolute/all s=0.001/0.003/0.006 a=1 depth=sigma1 independent]",
                                   "flatness [filter/weights s=0.001/0.003/0.006 a=auto depth=sigma1 independent]",
                                   "angle"}
    assert res["summary"]["flatness [absolute/all s=0.001/0.003/0.006 a=1 depth=sigma1 independent]"]["searches"] == 2


def test_combine_derives_the_proxies_combined_metrics(tmp_path, capsys):
    import math

    from genas.proxies.combined import combine

    scores = tmp_path / "s.jsonl"
    scores.write_text(json.dumps(dict(genotype="g", seed=0, angle=1.2, accuracy=0.8, flatness_independent=0.003)) + "\n")
    assert main(["combine", "--scores", str(scores), "--noise-mode", "independent", "-o", str(tmp_path / "c.jsonl")]) == 0
    row = read_jsonl(tmp_path / "c.jsonl")[0]
    assert row["angle+flatness_independent"] == pytest.approx(1.2 / math.pi + 16 / 0.001 * 0.003)
    assert row["accuracy+flatness_independent"] == pytest.approx(0.8 + 48.0)
    assert row["accuracy+flatness_share_independent"] == pytest.approx(100 * 48 / 48.8)
    assert combine(0.8, 0.003, 16, 0.001)[0] == row["accuracy+flatness_independent"]
    assert main(["combine", "--scores", str(scores), "-o", str(tmp_path / "d.jsonl")]) == 2  # no plain flatness
    assert capsys.readouterr().err.count("\n") == 1


def test_share_reports_the_flatness_share_per_gamma_and_solves_target_shares(tmp_path, capsys):
    import math

    from genas.proxies.combined import combine

    scores = tmp_path / "s.jsonl"
    rows = [dict(genotype=f"g{i}", seed=0, angle=0.5 + 0.1 * i, flatness=0.002 + 0.0005 * i) for i in range(6)]
    scores.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "share.json"
    assert main(["share", "--scores", str(scores), "--gammas", "0,16", "--target-shares", "0,20,75", "-o", str(out)]) == 0
    table = json.loads(out.read_text())
    by_hand = sum(combine(r["angle"] / math.pi, r["flatness"], 16, 0.001)[2] for r in rows) / len(rows)
    assert table["gammas"][0]["mean_share"] == 0 and table["gammas"][1]["mean_share"] == pytest.approx(by_hand)
    for t in table["targets"]:  # the solved gamma gives the target share, and the shares grow with gamma
        assert t["mean_share"] == pytest.approx(t["target_share"], abs=1e-6)
    assert 0 == table["targets"][0]["gamma"] < table["targets"][1]["gamma"] < table["targets"][2]["gamma"]
    assert "(target 75 %)" in capsys.readouterr().out
    assert main(["share", "--scores", str(scores), "--target-shares", "100"]) == 2  # no gamma gives 100 %
    assert main(["share", "--scores", str(scores), "--base", "accuracy"]) == 2  # no accuracy column
    assert main(["share", "--scores", str(scores), "-o", str(out)]) == 2  # never replaces earlier output
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and err.count("genas: error:") == 3
