"""Every command's GPU path (marked ``cuda``; skipped without a CUDA device).

Run on a GPU machine with ``pytest -m cuda tests/test_cuda.py`` (``benchmarks/gpu_check.sh`` does,
and records the outcome in results/gpu/). Sizes are tiny: these check that the paths work and agree
with the CPU, not speed (that is gpu_check's job).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from genas.engine.checkpoint import load_torch, state_digest
from genas.engine.precision import tf32
from genas.proxies import ScoringConfig, get_proxy
from genas.spaces import get_space

from _tiny import TINY, tiny_config, train_tiny

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

NB201_G = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
SCORING = dict(val_images=128, bn_images=128, bn_batch_size=64, batch_size=128)


def _train(run: Path, device: str = "cuda", **overrides) -> dict:
    from genas.supernet.train import train_supernet

    return train_supernet(tiny_config(**overrides), run, device=device, progress=False)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory) -> Path:
    """A tiny supernet trained on the CPU: the same weights scored on both devices."""
    run = tmp_path_factory.mktemp("cuda") / "cpu-run"
    train_tiny(run)
    return run


def _candidates(n: int = 8) -> list[tuple[int, ...]]:
    import numpy as np

    space, rng, out = get_space("nb201"), np.random.default_rng(0), []
    while len(out) < n:
        g = space.sample(rng)
        if space.is_connected(g) and g not in out:
            out.append(g)
    return out


# --- supernet training ----------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_supernet_trains_on_gpu(tmp_path, precision):
    summary = _train(tmp_path / precision, precision=precision, channels_last=precision != "fp32")
    assert summary["device"].startswith("cuda") and summary["numerics"]["precision"] == precision
    final = load_torch(tmp_path / precision / "final.pt")
    assert all(torch.isfinite(t.float()).all() for t in final.values())
    assert state_digest(final) == summary["final_digest"] != state_digest(load_torch(tmp_path / precision / "init.pt"))
    assert 0.0 <= summary["final_val_acc"] <= 1.0


def test_deterministic_gpu_training_repeats_and_fp16_resumes_exactly(tmp_path, monkeypatch):
    """--deterministic: two runs give the same bits; an fp16 run killed after its first epoch and
    resumed (the loss scale is checkpointed) ends where an uninterrupted one does."""
    from genas.supernet import train as st

    a = _train(tmp_path / "a", precision="fp16", deterministic=True)
    b = _train(tmp_path / "b", precision="fp16", deterministic=True)
    assert a["final_digest"] == b["final_digest"]
    assert "scaler" in load_torch(tmp_path / "a" / "checkpoint.pt")

    class Killed(Exception):
        pass

    real = st._Trainer.save_epoch

    def save_then_die(self, record):
        real(self, record)
        raise Killed

    monkeypatch.setattr(st._Trainer, "save_epoch", save_then_die)
    with pytest.raises(Killed):
        _train(tmp_path / "c", precision="fp16", deterministic=True)
    monkeypatch.setattr(st._Trainer, "save_epoch", real)
    c = st.train_supernet(tiny_config(precision="fp16", deterministic=True), tmp_path / "c", resume=True,
                          device="cuda", progress=False)
    assert c["final_digest"] == a["final_digest"]


# --- scoring --------------------------------------------------------------------------------------

def _scores(run: Path, device: str, metric: str = "flatness") -> list[dict]:
    from genas.workflows.scoring import scoring_context

    ctx = scoring_context(run, ScoringConfig(**SCORING), device)
    out = []
    for g in _candidates():
        r = get_proxy(metric)(ctx, g)
        out.append(dict(value=r.value, **r.raw))
    return out


def test_cpu_and_gpu_flatness_agree_to_1e4_even_with_global_tf32_on(cpu_run):
    cpu = _scores(cpu_run, "cpu")
    with tf32(True):  # the global setting a user may have; scoring pins exact fp32 regardless
        gpu = _scores(cpu_run, "cuda")
    for c, g in zip(cpu, gpu):
        assert abs(c["value"] - g["value"]) <= 1e-4 * abs(c["value"]), (c, g)
        for lc, lg in zip(c["losses"], g["losses"]):
            assert abs(lc - lg) <= 1e-5 * abs(lc)
    acc_cpu, acc_gpu = _scores(cpu_run, "cpu", "loss"), _scores(cpu_run, "cuda", "loss")
    assert all(abs(a["value"] - b["value"]) <= 1e-5 * abs(a["value"]) for a, b in zip(acc_cpu, acc_gpu))


def test_search_on_gpu(cpu_run):
    from genas.search import make_config
    from genas.workflows.search import search_supernet

    cfg = make_config("evolution", seed=0, population=6, topk=2, mutations=3, crossovers=3, generations=2)
    result, out = search_supernet(cpu_run, "flatness", "evolution", cfg, ScoringConfig(**SCORING), name="gpu",
                                  device="cuda", progress=False)
    assert result["best"]["score"] > 0 and (out / "result.json").exists()


# --- retrain and export ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_retrain(tmp_path_factory) -> Path:
    from genas.train import recipes as rc
    from genas.train import retrain as rt

    out = tmp_path_factory.mktemp("cuda") / "retrain"
    cfg = rc.retrain_config("quick", space="nb201", genotype=NB201_G, dataset="synthetic", channels=4,
                            cells_per_stage=1, epochs=2, batch_size=32, max_train_images=256, precision="bf16",
                            channels_last=True)
    result = rt.retrain(cfg, out, device="cuda", progress=False)
    assert result["device"].startswith("cuda") and result["numerics"]["precision"] == "bf16"
    assert 0.0 <= result["final_top1"] <= 1.0
    return out


def test_retrain_on_gpu(gpu_retrain):
    state = load_torch(gpu_retrain / "last.pt")
    assert all(torch.isfinite(t.float()).all() for t in state["model"].values())


def test_export_of_a_gpu_trained_network(gpu_retrain, tmp_path):
    from genas.export import export_run
    from genas.train.recipes import load_retrain_config
    from genas.train.retrain import build_network

    out = export_run(gpu_retrain, tmp_path / "export")
    program = torch.export.load(str(out / "model.pt2")).module()
    cfg = load_retrain_config(gpu_retrain)
    net = build_network(cfg, 10, 1)
    net.load_state_dict(load_torch(gpu_retrain / "last.pt")["model"])
    x = torch.randn(3, 1, 16, 16)
    with torch.inference_mode():
        assert torch.allclose(program(x), net.eval()(x), rtol=1e-5, atol=1e-6)


def test_bench_on_gpu(tmp_path):
    from genas.groundtruth import BenchConfig, run_bench

    cfg = BenchConfig(dataset="synthetic", num_archs=1, channels=4, epochs=1, batch_size=32, max_train_images=128,
                      val_images=64, shifted_images=64, precision="bf16")
    summary = run_bench(tmp_path / "bench", cfg, device="cuda", progress=False)
    assert summary["rows"] == 1


# --- torchrun with NCCL ---------------------------------------------------------------------------

def _torchrun(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                           *args], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)


def test_torchrun_train_supernet_on_one_gpu(tmp_path):
    run = tmp_path / "ddp"
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    proc = _torchrun(["-m", "genas", "train-supernet", "--preset", "quick", "-o", str(run), "--device", "cuda",
                      "--no-progress", "--precision", "bf16", *opts], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["device"] == "cuda:0"


def test_nccl_process_group_and_ddp_on_one_gpu(tmp_path):
    """A one-rank NCCL group (two ranks cannot share a GPU under NCCL): the collectives genas uses and
    a DDP step, as a multi-GPU run would do them."""
    script = tmp_path / "nccl.py"
    script.write_text(textwrap.dedent("""
        import json, sys
        import torch
        import torch.distributed as dist
        from genas.engine.precision import TrainPrecision
        from genas.engine.step import sgd_step
        torch.cuda.set_device(0)
        dist.init_process_group("nccl")
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).cuda()
        ddp = torch.nn.parallel.DistributedDataParallel(net, device_ids=[0])
        amp = TrainPrecision.make("bf16", "cuda")
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        x, y = torch.randn(8, 1, 8, 8, device="cuda"), torch.randint(0, 3, (8,), device="cuda")
        with amp.autocast():
            loss = torch.nn.functional.cross_entropy(ddp(x), y)
        sgd_step(loss, opt, net.parameters(), 1.0)
        t = torch.ones(3, device="cuda")
        dist.all_reduce(t)
        for buf in net.buffers():
            dist.broadcast(buf, 0)
        gathered = [None]
        dist.all_gather_object(gathered, {"loss": float(loss)})
        dist.barrier()
        json.dump(dict(world=dist.get_world_size(), backend=dist.get_backend(), sum=t.tolist(),
                       gathered=gathered), open(sys.argv[1], "w"))
        dist.destroy_process_group()
    """))
    proc = _torchrun([str(script), str(tmp_path / "out.json")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["backend"] == "nccl" and out["world"] == 1 and out["sum"] == [1.0, 1.0, 1.0]


# --- detection ------------------------------------------------------------------------------------

def test_detection_trains_on_gpu(tmp_path):
    detection = pytest.importorskip("genas.detection")
    pytest.importorskip("faster_coco_eval")  # its evaluation (a GPU machine may lack the package)
    from genas.data.sources import make_synthetic
    from genas.detection.data import SceneSpec, make_scenes

    tx, ty, vx, vy = make_synthetic(size=16, n_train=200, n_test=100)
    scenes = tmp_path / "scenes"
    make_scenes(scenes, SceneSpec(dataset="synthetic", train_scenes=16, val_scenes=4, image_size=64, min_side=12,
                                  max_side=40, seed=1),
                tx.numpy(), ty.numpy(), vx.numpy(), vy.numpy(), [f"c{k}" for k in range(10)])
    fields = {f.name for f in dataclasses.fields(detection.DetectConfig)}
    for precision in (("fp32", "bf16") if "precision" in fields else ("fp32",)):
        extra = {"precision": precision} if "precision" in fields else {}
        cfg = detection.detect_config("tiny", data=str(scenes), max_val_images=4, epochs=1, max_train_images=8,
                                      **extra)
        result = detection.train_detector(cfg, tmp_path / f"det-{precision}", device="cuda", progress=False)
        assert isinstance(result, dict) and (tmp_path / f"det-{precision}" / "result.json").exists()
