"""End-to-end CLI: supernet search with kill -9 / --resume, oracle search, `genas run`."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _tiny import train_tiny
from genas.spaces import get_space, winner_genotype

NB201 = Path(__file__).resolve().parents[2] / "shared/data/nb201/nats_tss_test_acc_200ep.csv"
SEARCH = ["--population", "4", "--topk", "2", "--mutations", "2", "--crossovers", "1", "--generations", "6",
          "--val-images", "64", "--bn-images", "32", "--bn-batch-size", "32", "--device", "cpu", "--no-progress"]


def genas(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genas", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    train_tiny(path)
    return path


def test_supernet_search_kill9_resume_gives_identical_result(run):
    ref = genas("search", "--run", str(run), "--name", "ref", *SEARCH)
    assert ref.returncode == 0, ref.stderr
    out = run / "search-killed"
    proc = subprocess.Popen([sys.executable, "-m", "genas", "search", "--run", str(run), "--name", "killed", *SEARCH],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        state = out / "state.json"
        if state.exists() and json.loads(state.read_text())["search"]["generation"] >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait() == -signal.SIGKILL, "the search finished before it could be killed"
    assert not (out / "result.json").exists()
    resumed = genas("search", "--run", str(run), "--name", "killed", "--resume", *SEARCH)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "result.json").read_bytes() == (run / "search-ref" / "result.json").read_bytes()
    log = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    result = json.loads((out / "result.json").read_text())
    scored = [r for r in log if "copy_of" not in r]
    assert len(log) == len({r["genotype"] for r in log}) and len(scored) == result["evaluations"]
    space = get_space("nb201")  # `auto` dedup runs as strict on a supernet, and says so
    assert result["config"]["dedup"] == "strict"
    assert len({space.canonical(space.parse(r["genotype"]), "strict") for r in scored}) == len(scored)
    assert (out / "report.md").exists() and (out / "loss_vs_sigma.png").exists() and (out / "best_cell.png").exists()


def test_search_refuses_to_overwrite_and_changed_settings(run):
    again = genas("search", "--run", str(run), "--name", "ref", *SEARCH)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    changed = genas("search", "--run", str(run), "--name", "ref", "--resume", *SEARCH, "--alpha", "0")
    assert changed.returncode == 2 and "scoring" in changed.stderr


@pytest.mark.parametrize("args,needle", [
    (["--metric", "sharpness"], "available"),
    (["--stds", "0.003,0.001"], "strictly increasing"),
    (["--stds", "a,b"], "--stds"),
    (["--noise-mode", "relative"], "noise-mode"),
])
def test_search_bad_input_one_line_errors(run, args, needle):
    res = genas("search", "--run", str(run), "--name", "bad", *SEARCH, *args)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and res.stderr.strip().count("\n") == 0


def test_search_on_unfinished_run_is_an_error(tmp_path):
    res = genas("search", "--run", str(tmp_path), *SEARCH)
    assert res.returncode == 2 and "final.pt" in res.stderr


@pytest.mark.skipif(not NB201.exists(), reason="NB201 table not available")
def test_oracle_search_cli(tmp_path):
    res = genas("search", "--oracle", str(NB201), "--oracle-column", "CIFAR10TestAccuracy200Epochs",
                "-o", str(tmp_path / "o"), "--generations", "4", "--no-progress")
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["evaluations"] == 200 and result["best"]["score"] > 93.0
    bad = genas("search", "--oracle", str(NB201), "--oracle-column", "nope", "-o", str(tmp_path / "p"))
    assert bad.returncode == 2 and "CIFAR10TestAccuracy200Epochs" in bad.stderr


@pytest.mark.slow
def test_run_pipeline_end_to_end_on_synthetic(tmp_path):
    res = genas("run", "--preset", "quick", "--dataset", "synthetic", "-o", str(tmp_path / "r"), "--no-progress",
                "--device", "cpu")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "r" / "run.json").read_text())
    assert summary["best"]["genotype"].startswith("|") and summary["retrained_genotype"] == winner_genotype(summary)
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["params"] > 0
    report = Path(summary["report"]).read_text()
    assert "Stand-alone retraining" in report and summary["best"]["genotype"] in report
    again = genas("run", "--preset", "quick", "--dataset", "synthetic", "-o", str(tmp_path / "r"), "--resume",
                  "--no-progress", "--device", "cpu")
    assert again.returncode == 0 and json.loads((tmp_path / "r" / "run.json").read_text())["best"] == summary["best"]
    exp = genas("export", "--run", str(tmp_path / "r"), "-o", str(tmp_path / "exp"))
    assert exp.returncode == 0, exp.stderr[-2000:]
    meta = json.loads((tmp_path / "exp" / "genotype.json").read_text())
    assert meta["genotype"] == winner_genotype(summary) and meta["test_accuracy"] == summary["test_accuracy"]
    missing = genas("export", "--run", str(tmp_path), "-o", str(tmp_path / "exp2"))
    assert missing.returncode == 2 and "retrain" in missing.stderr


def test_retrain_cli_published_genotype_and_errors(tmp_path):
    opts = ["--dataset", "synthetic", "--channels", "4", "--layers", "5", "--epochs", "1", "--batch-size", "32",
            "--max-train-images", "64", "--no-progress", "--device", "cpu"]
    res = genas("retrain", "--genotype", "DARTS_V2", "-o", str(tmp_path / "rt"), *opts)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / "rt" / "result.json").read_text())
    assert 0.0 <= result["best_top1"] <= result["best_top5"] <= 1.0
    assert (tmp_path / "rt" / "best.pt").exists() and (tmp_path / "rt" / "last.pt").exists()
    again = genas("retrain", "--genotype", "DARTS_V2", "-o", str(tmp_path / "rt"), *opts)
    assert again.returncode == 2 and "--resume" in again.stderr
    from genas.spaces import get_space
    from genas.spaces.darts_genotypes import get_genotype

    text = get_space("darts").format(get_genotype("DARTS_V2")).replace("sep_conv_3x3", "conv_9x9", 1)
    bad = genas("retrain", "--genotype", text, "-o", str(tmp_path / "bad"), *opts)
    assert bad.returncode == 2 and "conv_9x9" in bad.stderr and "Traceback" not in bad.stderr
