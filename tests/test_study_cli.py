"""The ground-truth study commands end to end on tiny synthetic data: bench -> score -> correlate."""
import json
import subprocess
import sys

import pytest

from _tiny import train_tiny

BENCH = ["--dataset", "synthetic", "--channels", "4", "--cells-per-stage", "1", "--epochs", "1", "--batch-size", "32",
         "--max-train-images", "64", "--val-images", "64", "--shifted-images", "32", "--no-progress"]
SCORE = ["--val-images", "64", "--bn-images", "32", "--bn-batch-size", "32", "--device", "cpu", "--no-progress"]


def genas(*args):
    return subprocess.run([sys.executable, "-m", "genas", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_bench_score_correlate(tmp_path):
    run, bench, scores, corr = tmp_path / "run", tmp_path / "bench", tmp_path / "scores.jsonl", tmp_path / "corr"
    train_tiny(run)
    res = genas("bench", "-o", str(bench), "--num-archs", "5", *BENCH)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = "flatness,angle,accuracy,loss,angle+flatness,synflow,params"
    res = genas("score", "--bench", str(bench), "--run", str(run), "--metrics", metrics,
                "--noise-modes", "independent,cumulative", "--seeds", "0,1", "-o", str(scores), *SCORE)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(rows) == 10 and {r["seed"] for r in rows} == {0, 1}
    for col in ("flatness_independent", "flatness_cumulative", "flatness_alpha0_independent", "angle", "accuracy",
                "synflow", "params", "flatness_losses_cumulative"):
        assert col in rows[0], col
    # independent and cumulative agree at the first std (same noise), differ after
    r = rows[0]
    assert r["flatness_losses_independent"][0] == r["flatness_losses_cumulative"][0]
    assert r["flatness_losses_independent"][2] != r["flatness_losses_cumulative"][2]
    again = genas("score", "--bench", str(bench), "--run", str(run), "--metrics", metrics,
                  "--noise-modes", "independent,cumulative", "--seeds", "0,1", "-o", str(scores), *SCORE)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    res = genas("correlate", "--truth", str(bench / "results.jsonl"), "--proxies", str(scores), "-o", str(corr),
                "--truth-columns", "test_accuracy,shifted_accuracy", "--proxy-columns",
                "flatness_independent,angle,accuracy,synflow,params", "--bootstrap", "20")
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads((corr / "correlation.json").read_text())
    assert (corr / "correlation.md").exists() and (corr / "pairwise_tau.png").exists()
    assert "conventions" in out


def test_score_needs_run_for_supernet_metrics(tmp_path):
    bench = tmp_path / "bench"
    assert genas("bench", "-o", str(bench), "--num-archs", "1", *BENCH).returncode == 0
    res = genas("score", "--bench", str(bench), "--metrics", "flatness", "-o", str(tmp_path / "s.jsonl"), *SCORE)
    assert res.returncode == 2 and "--run" in res.stderr
    res = genas("score", "--bench", str(bench), "--metrics", "params,synflow", "-o", str(tmp_path / "s.jsonl"), *SCORE)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.slow
def test_bench_kill9_mid_run_then_resume_has_no_duplicate_or_lost_rows(tmp_path):
    import signal
    import time

    bench = tmp_path / "bench"
    args = [sys.executable, "-m", "genas", "bench", "-o", str(bench), "--num-archs", "6", *BENCH]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = bench / "results.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait() == -signal.SIGKILL, "the benchmark finished before it could be killed"
    before = results.read_text()
    assert 2 <= len(before.splitlines()) < 6
    res = genas("bench", "-o", str(bench), "--num-archs", "6", "--resume", *BENCH)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert results.read_text().startswith(before)  # append-only: earlier rows untouched
    assert len(rows) == 6 and len({r["genotype"] for r in rows}) == 6
    assert sorted(r["index"] for r in rows) == list(range(6))
