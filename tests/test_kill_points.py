"""Kill a run right after each of its durable writes, resume it, and compare the whole folder with an
uninterrupted run: a resumed folder must be indistinguishable from one never killed (timing fields
aside), at every kill point, for supernet training, search, retraining and the ground-truth bench.

The kill is simulated in-process: ``genas.io._durable`` (called after every rename into place and
every fsync'd append) raises a BaseException after the K-th write, which unwinds exactly like a
SIGKILL would stop the program at that point (nothing after the write runs; ``finally`` blocks only
release the folder lock, which a real kill leaves behind and the next run takes over as stale).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import genas.io
from genas.groundtruth import BenchConfig, run_bench
from genas.search import TabularOracle, make_config, run_search
from genas.spaces import get_space
from genas.supernet.train import train_supernet
from genas.train import recipes as rc
from genas.train.retrain import retrain

from _tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

VOLATILE = {"seconds", "images_per_s", "train_seconds", "time", "seconds_this_session", "train_seconds_this_session",
            "total_train_seconds", "run"}


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler of the program catches it."""


def _normalise(value):
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _content(obj):
    """A checkpoint's content, comparable with ==: tensors by dtype, shape and bytes (torch.save's zip
    layout may differ for equal content, e.g. after a state was loaded and saved again)."""
    import hashlib

    import torch

    if torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return ("tensor", str(t.dtype), tuple(t.shape), hashlib.sha256(raw).hexdigest())
    if isinstance(obj, dict):
        return {k: _content(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_content(v) for v in obj]
    return obj


def snapshot(folder: Path) -> dict[str, object]:
    """Every file of ``folder``: JSON/JSONL parsed (timing fields dropped), checkpoints by content,
    anything else as bytes."""
    import torch

    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        if path.suffix == ".json":
            out[rel] = _normalise(json.loads(path.read_text()))
        elif path.suffix == ".jsonl":
            out[rel] = [_normalise(json.loads(line)) for line in path.read_text().splitlines()]
        elif path.suffix == ".pt":
            out[rel] = _content(torch.load(path, weights_only=True))
        else:
            out[rel] = path.read_bytes()
    return out


def count_writes(monkeypatch, run) -> int:
    calls = []
    monkeypatch.setattr(genas.io, "_durable", lambda path: calls.append(path))
    run()
    monkeypatch.setattr(genas.io, "_durable", lambda path: None)
    return len(calls)


def kill_after(monkeypatch, k: int, run) -> None:
    n = {"writes": 0}

    def durable(path):
        n["writes"] += 1
        if n["writes"] == k:
            raise Killed(f"killed after write {k}: {path}")

    monkeypatch.setattr(genas.io, "_durable", durable)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(genas.io, "_durable", lambda path: None)


def check_every_kill_point(tmp_path, monkeypatch, start, resume, folder_of) -> int:
    """``start(dir)`` runs fresh, ``resume(dir)`` continues; returns the number of kill points."""
    ref = tmp_path / "ref"
    writes = count_writes(monkeypatch, lambda: start(ref))
    expected = snapshot(folder_of(ref))
    assert writes >= 3
    for k in range(1, writes + 1):
        run = tmp_path / f"kill{k}"
        kill_after(monkeypatch, k, lambda: start(run))
        resume(run)
        assert snapshot(folder_of(run)) == expected, f"kill after durable write {k} of {writes}"
    return writes


def test_supernet_training_every_kill_point(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=2)
    n = check_every_kill_point(
        tmp_path, monkeypatch,
        lambda d: train_supernet(cfg, d, device="cpu", progress=False),
        lambda d: train_supernet(cfg, d, resume=True, device="cpu", progress=False),
        lambda d: d)
    assert n == 11  # config, data, init, (snapshot, log line, checkpoint) x 2 epochs, final, summary


def test_search_every_kill_point(tmp_path, monkeypatch, nb201_dir):
    space = get_space("nb201")
    oracle = TabularOracle(nb201_dir / "nats_tss_test_acc_200ep.csv", "CIFAR10TestAccuracy200Epochs", space)
    cfg = make_config("evolution", seed=3, population=4, topk=2, mutations=2, crossovers=2, generations=3)
    n = check_every_kill_point(
        tmp_path, monkeypatch,
        lambda d: run_search(space, oracle, "evolution", cfg, d, progress=False),
        lambda d: run_search(space, oracle, "evolution", cfg, d, resume=True, progress=False),
        lambda d: d)
    assert n >= 3 * 4


def test_retrain_every_kill_point(tmp_path, monkeypatch):
    cfg = rc.retrain_config("quick", space="nb201", genotype="|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+"
                            "|avg_pool_3x3~0|none~1|nor_conv_3x3~2|", dataset="synthetic", channels=4,
                            cells_per_stage=1, epochs=2, batch_size=32, max_train_images=96, cutout=4)
    check_every_kill_point(
        tmp_path, monkeypatch,
        lambda d: retrain(cfg, d, device="cpu", progress=False),
        lambda d: retrain(None, d, resume=True, device="cpu", progress=False),
        lambda d: d)


def test_bench_every_kill_point(tmp_path, monkeypatch):
    cfg = BenchConfig(dataset="synthetic", num_archs=2, channels=4, epochs=1, batch_size=32, max_train_images=64,
                      val_images=32, shifted_images=32)
    check_every_kill_point(
        tmp_path, monkeypatch,
        lambda d: run_bench(d, cfg, progress=False),
        lambda d: run_bench(d, cfg, resume=True, progress=False),
        lambda d: d)
