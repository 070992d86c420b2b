"""Reliability classes of the fault audit that need real processes or whole runs: the run-folder
lock, divergence, damaged logs, checkpoint content (see also test_kill_points.py and
test_fault_corpus.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genas.errors import GenasError
from genas.io import append_jsonl, read_jsonl
from genas.run_folder import LOCK, RunFolder

TINY = ["--preset", "quick", "--dataset", "synthetic", "--channels", "4", "--cells-per-stage", "1",
        "--batch-size", "32", "--max-train-images", "192", "--val-images", "64", "--no-progress"]


def genas(*args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "genas", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def one_error_line(res) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genas: error: ") and "Traceback" not in res.stderr, res.stderr
    return lines[0]


class Payload:
    """Not a tensor: a checkpoint holding it must be refused, never unpickled."""


def test_a_second_process_on_a_running_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "genas", "train-supernet", *TINY, "--epochs", "200",
                              "-o", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 120
        while not (run / "log.jsonl").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (run / LOCK).exists()
        before = {name: (run / name).read_bytes() for name in ("config.json", "data.json", "init.pt")}
        line = one_error_line(genas("train-supernet", *TINY, "--epochs", "200", "-o", run, "--resume"))
        assert f"in use by pid {first.pid}" in line
        line = one_error_line(genas("train-supernet", *TINY, "--epochs", "200", "-o", run))
        assert "in use" in line or "already holds" in line
        for name, data in before.items():  # nothing of the running process was touched
            assert (run / name).read_bytes() == data, name
    finally:
        first.kill()
        first.wait()
    # the killed process left its lock: the next run takes it over as stale and resumes
    assert (run / LOCK).exists()
    res = genas("train-supernet", *TINY, "--epochs", "2", "-o", run, "--resume")
    assert res.returncode == 2 and "epochs" in res.stderr  # a changed config is still refused, in one line


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    folder = RunFolder(tmp_path / "run", "test run")
    (tmp_path / "run").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run" / LOCK).write_text(f"{os.uname().nodename} {int(dead.stdout)}")
    with folder.locked():
        assert (tmp_path / "run" / LOCK).read_text().split()[1] == str(os.getpid())
    assert not (tmp_path / "run" / LOCK).exists()


def test_lock_of_a_live_process_on_another_host_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).write_text("elsewhere 1")
    with pytest.raises(GenasError, match="in use by pid 1 on elsewhere"):
        RunFolder(tmp_path / "run", "test run").lock()


def test_a_failed_start_leaves_no_folder(tmp_path):
    res = genas("train-supernet", *TINY, "--data-dir", tmp_path / "missing", "-o", tmp_path / "run")
    one_error_line(res)
    assert not (tmp_path / "run").exists()


def test_divergence_stops_with_one_line_and_keeps_the_last_finite_checkpoint(tmp_path):
    run = tmp_path / "run"
    one_error_line(genas("train-supernet", *TINY, "--epochs", "3", "--lr", "1e6", "-o", run))
    import torch

    weights = sorted(run.glob("*.pt"))
    assert weights, "at least init.pt, the last finite state, is kept"
    for path in weights:  # no file holds non-finite weights
        state = torch.load(path, weights_only=True)
        state = state.get("model", state)
        assert all(t.isfinite().all() for t in state.values() if t.is_floating_point()), path.name
    assert not (run / "final.pt").exists() and not (run / "summary.json").exists()
    log = run / "log.jsonl"
    for line in (log.read_text().splitlines() if log.exists() else []):
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in log.jsonl"))
    one_error_line(genas("train-supernet", *TINY, "--lr", "nan", "-o", tmp_path / "nan"))
    assert not (tmp_path / "nan").exists()


def test_a_damaged_middle_line_is_an_error_and_nothing_is_rewritten(tmp_path):
    log = tmp_path / "candidates.jsonl"
    for i in range(4):
        append_jsonl({"i": i}, log)
    lines = log.read_text().splitlines()
    lines[1] = lines[1][:-3]
    log.write_text("\n".join(lines) + "\n")
    before = log.read_bytes()
    with pytest.raises(GenasError, match=r"candidates.jsonl: line 2 is not valid JSON"):
        read_jsonl(log)
    assert log.read_bytes() == before


def test_only_a_torn_last_line_is_dropped_and_cut_before_the_next_append(tmp_path):
    log = tmp_path / "log.jsonl"
    append_jsonl({"i": 0}, log)
    with open(log, "a") as f:
        f.write('{"i": 1, "cut')
    assert read_jsonl(log) == [{"i": 0}]
    append_jsonl({"i": 2}, log)
    assert log.read_text() == '{"i": 0}\n{"i": 2}\n'


def test_json_outputs_are_strict(tmp_path):
    from genas.io import save_json

    save_json({"a": float("nan"), "b": [float("inf"), 1.0]}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.0]}


def test_checkpoints_of_the_wrong_kind_are_one_line(tmp_path):
    import torch

    run = tmp_path / "run"
    assert genas("train-supernet", *TINY, "--epochs", "1", "-o", run).returncode == 0
    (run / "summary.json").unlink()
    for content in (b"", b"not a zip"):
        (run / "checkpoint.pt").write_bytes(content)
        assert "checkpoint.pt" in one_error_line(genas("train-supernet", *TINY, "--epochs", "1", "-o", run,
                                                        "--resume"))
    torch.save({"model": {"x": torch.zeros(1)}}, run / "checkpoint.pt")
    assert "not a genas training checkpoint" in one_error_line(
        genas("train-supernet", *TINY, "--epochs", "1", "-o", run, "--resume"))
    torch.save({"model": Payload()}, run / "checkpoint.pt")
    assert "objects other than tensors" in one_error_line(
        genas("train-supernet", *TINY, "--epochs", "1", "-o", run, "--resume"))


def test_a_moved_run_folder_resumes_and_reports(tmp_path):
    """Run folders are tied to their content, not their path: a search killed in one place, moved
    (here: renamed; another disk or machine is the same), resumes to the uninterrupted result."""
    import shutil

    search = ["--population", "3", "--topk", "2", "--mutations", "1", "--crossovers", "1", "--generations", "3",
              "--val-images", "32", "--bn-images", "32", "--no-progress"]
    a = tmp_path / "a" / "run"
    assert genas("train-supernet", *TINY, "--epochs", "1", "-o", a).returncode == 0
    b = tmp_path / "b" / "run"
    shutil.copytree(a, b)
    assert genas("search", "--run", a, *search).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "genas", "search", "--run", str(b), *search], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = b / "search-flatness" / "candidates.jsonl"
    deadline = time.time() + 120
    while (not log.exists() or len(log.read_text().splitlines()) < 4) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    moved = tmp_path / "elsewhere" / "renamed"
    moved.parent.mkdir()
    shutil.move(str(b), str(moved))
    res = genas("search", "--run", moved, *search, "--resume")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (moved / "search-flatness" / "result.json").read_bytes() == (a / "search-flatness" / "result.json").read_bytes()
    other = tmp_path / "other"
    assert genas("train-supernet", *TINY, "--epochs", "1", "--seed", "1", "-o", other).returncode == 0
    shutil.copytree(moved / "search-flatness", other / "search-flatness")
    line = one_error_line(genas("search", "--run", other, *search, "--resume"))
    assert "supernet" in line  # another supernet (by digest) is refused, wherever the folders are


def test_a_results_file_in_use_is_refused(tmp_path):
    """`genas score` / `noise-grid` append to one file: a second process on it is refused."""
    out = tmp_path / "scores.jsonl"
    (tmp_path / "scores.jsonl.lock").write_text("elsewhere 7")
    from genas.run_folder import FileLock

    with pytest.raises(GenasError, match="in use by pid 7 on elsewhere"):
        with FileLock(out):
            pass
    (tmp_path / "scores.jsonl.lock").unlink()
    with FileLock(out):
        assert (tmp_path / "scores.jsonl.lock").read_text().split()[1] == str(os.getpid())
    assert not (tmp_path / "scores.jsonl.lock").exists()
