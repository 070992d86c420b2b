import json
import os
import subprocess
import sys

import pytest
import torch

from _tiny import TINY, tiny_config, train_tiny
from genas.engine.checkpoint import load_torch, state_digest
from genas.errors import GenasError
from genas.supernet import train as train_mod


def test_run_folder_contents_and_training_progress(tmp_path):
    run = tmp_path / "run"
    summary = train_tiny(run, epochs=3)
    for name in ("config.json", "data.json", "init.pt", "final.pt", "checkpoint.pt", "log.jsonl", "summary.json",
                 "weights_epoch_1.pt", "weights_epoch_3.pt"):
        assert (run / name).exists(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["seed"] == 0 and cfg["dataset"] == "synthetic" and cfg["weight_decay"] == 5e-4
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert all(0.0 <= r["val_acc"] <= 1.0 for r in log)
    init, final = load_torch(run / "init.pt"), load_torch(run / "final.pt")
    assert state_digest(init) != state_digest(final)
    assert summary["final_digest"] == state_digest(final)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = train_tiny(tmp_path / "a")
    b = train_tiny(tmp_path / "b")
    c = train_tiny(tmp_path / "c", seed=1)
    assert a["final_digest"] == b["final_digest"]
    assert a["final_digest"] != c["final_digest"]


def test_resume_after_crash_matches_uninterrupted(tmp_path, monkeypatch):
    reference = train_tiny(tmp_path / "ref", epochs=4)

    run = tmp_path / "crashed"
    real_append = train_mod.append_jsonl
    calls = {"n": 0}

    def crash_after_two_epochs(record, path):
        real_append(record, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(train_mod, "append_jsonl", crash_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(run, epochs=4)
    monkeypatch.setattr(train_mod, "append_jsonl", real_append)
    assert not (run / "final.pt").exists()
    # the log line of epoch 1 was written, its checkpoint (the commit point, written last) was not
    assert load_torch(run / "checkpoint.pt")["epoch"] == 0

    resumed = train_mod.train_supernet(tiny_config(epochs=4), run, resume=True, device="cpu", progress=False)
    assert resumed["final_digest"] == reference["final_digest"]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2, 3]


def test_existing_run_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    train_tiny(run)
    before = (run / "final.pt").read_bytes()
    with pytest.raises(GenasError, match="--resume"):
        train_tiny(run)
    assert (run / "final.pt").read_bytes() == before


def test_resume_without_run_is_an_error(tmp_path):
    with pytest.raises(GenasError, match="no config.json"):
        train_mod.train_supernet(tiny_config(), tmp_path / "empty", resume=True, device="cpu", progress=False)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    train_tiny(run)
    (run / "summary.json").unlink()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(GenasError, match="cannot load checkpoint"):
        train_mod.train_supernet(tiny_config(), run, resume=True, device="cpu", progress=False)


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "genas", *args], capture_output=True, text=True, **kw)


def test_cli_resume_refuses_changed_config(tmp_path):
    run = tmp_path / "run"
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    first = _cli("train-supernet", "--preset", "quick", "-o", str(run), "--no-progress", "--device", "cpu", *opts)
    assert first.returncode == 0, first.stderr
    assert "run folder" in first.stdout
    again = _cli("train-supernet", "--preset", "quick", "-o", str(run), "--resume", "--epochs", "9", "--no-progress")
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "epochs" in again.stderr and "Traceback" not in again.stderr
    same = _cli("train-supernet", "-o", str(run), "--resume", "--no-progress")
    assert same.returncode == 0, same.stderr


@pytest.mark.distributed
def test_torchrun_two_cpu_ranks_end_identical(tmp_path):
    run = tmp_path / "ddp"
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "genas", "train-supernet", "--preset", "quick", "-o", str(run), "--device", "cpu",
                           "--no-progress", *opts], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert len(summary["rank_digests"]) == 2 and len(set(summary["rank_digests"])) == 1
    final = load_torch(run / "final.pt")
    assert state_digest(final) == summary["final_digest"]
    assert state_digest(final) != state_digest(load_torch(run / "init.pt"))
    assert all(torch.isfinite(t.float()).all() for t in final.values())


def test_darts_supernet_trains_and_resumes(tmp_path):
    cfg = dict(space="darts", channels=4, layers=5, epochs=2)
    ref = train_tiny(tmp_path / "ref", **cfg)
    cfg_json = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert cfg_json["space"] == "darts" and cfg_json["weight_decay"] == 3e-4 and cfg_json["layers"] == 5
    log = [json.loads(line) for line in (tmp_path / "ref" / "log.jsonl").read_text().splitlines()]
    assert log[0]["val_arch"].startswith("Genotype(normal=")
    again = train_tiny(tmp_path / "again", **cfg)
    assert again["final_digest"] == ref["final_digest"]
