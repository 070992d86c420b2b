"""Stand-alone re-training recipe (genas.train.retrain): tiny runs on synthetic data."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from genas.engine.checkpoint import load_torch, state_digest
from genas.data import Data, split_train
from genas.data.images import TensorImageSet
from genas.data.sources import make_synthetic
from genas.engine.evaluate import evaluate
from genas.errors import GenasError
from genas.spaces import darts_net
from genas.spaces.darts_genotypes import GENOTYPE_STRINGS, IMAGENET_CHANNELS
from genas.train import recipes as rc
from genas.train import retrain as rt

DARTS_G = GENOTYPE_STRINGS["DARTS_V2"]
NB201_G = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|"
FILES = ("config.json", "log.jsonl", "last.pt", "best.pt", "result.json")


pytestmark = pytest.mark.usefixtures("one_thread")


def _synthetic32(name, data_dir=None, split_seed=0, val_fraction=0.5, image_size=None, workers=2):
    """32x32 synthetic data: the DARTS auxiliary head needs CIFAR-size inputs (8x8 maps at its cell)."""
    tx, ty, vx, vy = make_synthetic(size=32, n_train=160, n_test=60)
    stats = dict(mean=(0.5,), std=(0.25,), crop_padding=2, flip=False)
    train, test = TensorImageSet(tx, ty, **stats), TensorImageSet(vx, vy, **stats)
    tr, va = split_train(len(train), split_seed, val_fraction)
    return Data("synthetic", 10, 1, 32, train, test, tr, va, split_seed)


@pytest.fixture
def data32(monkeypatch):
    monkeypatch.setattr(rt, "load_data", _synthetic32)


def darts_cfg(**kw):
    values = dict(space="darts", genotype=DARTS_G, dataset="synthetic", channels=4, layers=5, auxiliary=True,
                  cutout=8, drop_path=0.3, epochs=3, batch_size=32, lr=0.05, label_smoothing=0.1,
                  max_train_images=None, holdout_fraction=0.0)  # all 160 images; best.pt on test (see test_retrain_selection)
    return rc.retrain_config("quick", **{**values, **kw})


def nb201_cfg(**kw):
    values = dict(space="nb201", genotype=NB201_G, dataset="synthetic", channels=4, cells_per_stage=1,
                  epochs=3, batch_size=32, max_train_images=128, schedule="linear", warmup_epochs=2, cutout=4)
    return rc.retrain_config("quick", **{**values, **kw})


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


# --- whole runs -------------------------------------------------------------------------------------

def test_darts_run_files_metrics_smoothing_and_drop_path(tmp_path, data32, monkeypatch):
    cfg = darts_cfg()
    smooth_calls, probs = [], []
    real_ce, real_drop = F.cross_entropy, darts_net.drop_path

    def ce_spy(*args, **kwargs):
        smooth_calls.append((torch.is_grad_enabled(), kwargs.get("label_smoothing", 0.0)))
        return real_ce(*args, **kwargs)

    def drop_spy(x, p):
        probs.append(p)
        return real_drop(x, p)

    monkeypatch.setattr(F, "cross_entropy", ce_spy)
    monkeypatch.setattr(darts_net, "drop_path", drop_spy)
    run = tmp_path / "darts"
    result = rt.retrain(cfg, run, device="cpu", progress=False)
    monkeypatch.setattr(F, "cross_entropy", real_ce)
    monkeypatch.setattr(darts_net, "drop_path", real_drop)

    for name in FILES:
        assert (run / name).exists(), name
    assert json.loads((run / "config.json").read_text())["genotype"] == cfg.genotype
    assert json.loads((run / "result.json").read_text()) == result
    for key in ("best_top1", "best_top5", "final_top1", "final_top5"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["best_top5"] >= result["best_top1"] and result["final_top5"] >= result["final_top1"]
    assert result["best_top1"] >= result["final_top1"]
    assert result["test_images"] == 60 and result["train_images"] == 160
    assert 0 < result["params"] < result["params_total"]  # the auxiliary head is not counted
    assert result["macs"] > 0 and result["world_size"] == 1

    log = _log(run)
    assert [r["epoch"] for r in log] == [0, 1, 2]
    assert [r["lr"] for r in log] == pytest.approx([rc.lr_at(cfg, e) for e in range(3)])
    assert [r["drop_path_prob"] for r in log] == pytest.approx([0.0, 0.1, 0.2])
    assert all(0.0 <= r["top1"] <= r["top5"] <= 1.0 for r in log)
    assert max(r["top1"] for r in log) == result["best_top1"]
    # drop path: none in epoch 0 (prob 0), then the network uses exactly the scheduled value
    assert sorted({round(p, 9) for p in probs}) == [0.1, 0.2]
    # label smoothing in the training loss (main + auxiliary, with grad) and never in evaluation
    train_calls = [s for g, s in smooth_calls if g]
    eval_calls = [s for g, s in smooth_calls if not g]
    assert train_calls and set(train_calls) == {0.1} and len(train_calls) == 2 * 3 * (160 // 32)
    assert eval_calls and set(eval_calls) == {0.0}

    net = rt.build_network(cfg, 10, 1)
    net.load_state_dict(load_torch(run / "best.pt"))
    last = load_torch(run / "last.pt")
    assert last["epoch"] == 2 and set(last) >= {"model", "optimizer", "torch_rng", "best"}
    assert state_digest(last["model"]) == result["final_digest"]


def test_nb201_run_eval_every_and_existing_folder(tmp_path):
    run = tmp_path / "nb"
    result = rt.retrain(nb201_cfg(eval_every=2), run, device="cpu", progress=False)
    for name in FILES:
        assert (run / name).exists(), name
    log = _log(run)
    assert [r["top1"] is None for r in log] == [True, False, False]  # epoch 2 is the last: always evaluated
    assert 0.0 <= result["final_top1"] <= result["final_top5"] <= 1.0
    assert result["params"] == result["params_total"] and result["style"] is None
    # linear, E=3: tail T=1 (main phase 2 epochs), warm-up 2 epochs, lr 0.05
    assert [r["lr"] for r in log] == pytest.approx([0.05 * 2 / 2 * 1 / 2, 0.05 * 1 / 2, 0.05 * 1 / (2 * 1)])
    before = (run / "last.pt").read_bytes()
    with pytest.raises(GenasError, match="--resume"):
        rt.retrain(nb201_cfg(eval_every=2), run, device="cpu", progress=False)
    assert (run / "last.pt").read_bytes() == before
    assert rt.retrain(None, run, resume=True, device="cpu") == result  # finished: result.json comes back


def test_resume_after_crash_matches_uninterrupted(tmp_path, data32, monkeypatch):
    reference = rt.retrain(darts_cfg(), tmp_path / "ref", device="cpu", progress=False)

    run = tmp_path / "crashed"
    real_append, calls = rt.append_jsonl, {"n": 0}

    def crash_after_epoch_1(record, path):
        real_append(record, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(rt, "append_jsonl", crash_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        rt.retrain(darts_cfg(), run, device="cpu", progress=False)
    monkeypatch.setattr(rt, "append_jsonl", real_append)
    # the log line of epoch 1 was written, last.pt (the commit point, written last) was not
    assert not (run / "result.json").exists() and load_torch(run / "last.pt")["epoch"] == 0

    with pytest.raises(GenasError, match="epochs"):
        rt.retrain(darts_cfg(epochs=5), run, resume=True, device="cpu", progress=False)
    resumed = rt.retrain(darts_cfg(), run, resume=True, device="cpu", progress=False)
    assert resumed["final_digest"] == reference["final_digest"]
    assert state_digest(load_torch(run / "best.pt")) == state_digest(load_torch(tmp_path / "ref" / "best.pt"))
    for key in ("best_top1", "best_top5", "best_epoch", "final_top1", "final_top5"):
        assert resumed[key] == reference[key], key
    assert [r["epoch"] for r in _log(run)] == [0, 1, 2]


# --- recipe pieces ----------------------------------------------------------------------------------

def test_lr_schedules_match_hand_computed_values():
    cos = rc.retrain_config("quick", epochs=4, lr=0.1, lr_min=0.0, schedule="cosine")
    assert [rc.lr_at(cos, e) for e in range(4)] == pytest.approx(
        [0.1, 0.05 * (1 + math.sqrt(0.5)), 0.05, 0.05 * (1 - math.sqrt(0.5))])
    cos_w = rc.retrain_config("quick", epochs=4, lr=0.1, lr_min=0.01, schedule="cosine", warmup_epochs=2)
    assert rc.lr_at(cos_w, 0) == pytest.approx(0.5 * 0.1) and rc.lr_at(cos_w, 2) == pytest.approx(0.055)
    genas = rc.retrain_config("imagenet", space="darts", genotype="DARTS_V2", data_dir=None)
    assert (genas.schedule, genas.warmup_epochs, genas.epochs, genas.lr) == ("linear", 5, 250, 0.5)
    expect = {0: 0.5 * 245 / 245 * 1 / 5, 3: 0.5 * 242 / 245 * 4 / 5, 4: 0.5 * 241 / 245, 100: 0.5 * 145 / 245,
              244: 0.5 / 245, 245: 0.5 * 5 / (245 * 5), 249: 0.5 * 1 / (245 * 5)}
    for e, lr in expect.items():
        assert rc.lr_at(genas, e) == pytest.approx(lr), e
    short = rc.retrain_config("quick", epochs=10, lr=1.0, schedule="linear")  # tail 5 of 10
    assert [rc.lr_at(short, e) for e in range(10)] == pytest.approx(
        [1, 0.8, 0.6, 0.4, 0.2, 0.2, 0.16, 0.12, 0.08, 0.04])
    assert rc.lr_at(rc.retrain_config("quick", epochs=1, schedule="linear"), 0) > 0


def test_cutout_zeroes_one_square_of_the_requested_size():
    x = torch.ones(300, 2, 20, 20)
    out = rc.cutout(x, 6, torch.Generator().manual_seed(0))
    assert torch.equal(out, rc.cutout(x, 6, torch.Generator().manual_seed(0)))  # seeded
    assert torch.equal(rc.cutout(x, 0, torch.Generator()), x)
    assert torch.equal(out[:, 0], out[:, 1])  # the same square in every channel
    full = 0
    for img in out[:, 0]:
        zero = img == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert len(rows) and len(cols)
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert h <= 6 and w <= 6 and zero.sum() == h * w  # one filled rectangle, clipped at the border
        if 0 < rows[0] and rows[-1] < 19 and 0 < cols[0] and cols[-1] < 19:
            assert h == 6 and w == 6
            full += 1
    assert full > 100
    odd = rc.cutout(torch.ones(1, 1, 30, 30), 5, torch.Generator().manual_seed(3))
    assert (odd == 0).sum() <= 25


def test_train_loss_smoothing_and_aux_weight():
    cfg = darts_cfg(label_smoothing=0.2, aux_weight=0.4)
    g = torch.Generator().manual_seed(0)
    logits, aux, y = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g), torch.arange(8)
    expect = F.cross_entropy(logits, y, label_smoothing=0.2) + 0.4 * F.cross_entropy(aux, y, label_smoothing=0.2)
    assert rc.train_loss(logits, aux, y, cfg).item() == pytest.approx(expect.item())
    assert rc.train_loss(logits, None, y, cfg).item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.2).item())


def test_evaluate_top1_top5():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.arange(10.0).repeat(len(x), 1)  # ranking 9, 8, 7, 6, 5, ...

    batches = [(torch.zeros(4, 1), torch.tensor([9, 5, 4, 0]))]
    loss, top1, top5, n = evaluate(Fixed(), batches, torch.device("cpu"))["sums"]
    assert (top1, top5, n) == (1, 2, 4)


def test_presets():
    cifar = rc.retrain_config("cifar", genotype=DARTS_G)
    expect = dict(space="darts", style="cifar", dataset="cifar10", epochs=600, channels=36, layers=20,
                  batch_size=96, lr=0.025, lr_min=0.0, momentum=0.9, weight_decay=3e-4, schedule="cosine",
                  warmup_epochs=0, cutout=16, drop_path=0.2, auxiliary=True, aux_weight=0.4, grad_clip=5.0,
                  label_smoothing=0.0, nesterov=False)
    assert {k: getattr(cifar, k) for k in expect} == expect
    imnet = rc.retrain_config("imagenet", genotype="FLATNESS_CIFAR10")
    expect = dict(style="imagenet", dataset="imagefolder", epochs=250, layers=14, batch_size=1024, lr=0.5,
                  weight_decay=3e-5, schedule="linear", warmup_epochs=5, label_smoothing=0.1, auxiliary=True,
                  aux_weight=0.4, grad_clip=5.0, cutout=0, drop_path=0.0,
                  channels=IMAGENET_CHANNELS["FLATNESS_CIFAR10"])
    assert {k: getattr(imnet, k) for k in expect} == expect
    assert imnet.genotype.startswith("Genotype(normal=")  # names resolve to the canonical string
    assert rc.retrain_config("imagenet", genotype="FLATNESS_CIFAR10", channels=40).channels == 40
    assert rc.retrain_config("imagenet", genotype=DARTS_G).channels == 48
    quick = rc.retrain_config("quick")
    assert quick.dataset == "fashion-mnist" and (quick.channels, quick.layers, quick.epochs) == (8, 5, 4)
    nb = rc.retrain_config("quick", space="nb201", genotype=NB201_G)
    assert (nb.channels, nb.cells_per_stage, nb.auxiliary, nb.drop_path) == (16, 1, False, 0.0)
    nbc = rc.retrain_config("cifar", space="nb201", genotype=NB201_G)
    assert (nbc.epochs, nbc.cells_per_stage, nbc.batch_size, nbc.lr, nbc.nesterov) == (200, 5, 256, 0.1, True)


def test_errors(tmp_path):
    with pytest.raises(GenasError, match="bad darts genotype"):
        rc.retrain_config("quick", genotype="Genotype(normal=[('sep_conv_3x3', 9)])")
    with pytest.raises(GenasError, match="published name"):
        rc.retrain_config("quick", genotype="NOT_A_NAME")
    with pytest.raises(GenasError, match="bad nb201 genotype"):
        rc.retrain_config("quick", space="nb201", genotype="|conv~0|+|x~0|y~1|")
    with pytest.raises(GenasError, match="auxiliary"):
        rc.retrain_config("quick", space="nb201", genotype=NB201_G, auxiliary=True)
    with pytest.raises(GenasError, match="unknown retrain preset"):
        rc.retrain_config("huge")
    with pytest.raises(GenasError, match="space darts"):
        rc.retrain_config("imagenet", space="nb201")
    with pytest.raises(GenasError, match="schedule"):
        rc.retrain_config("quick", schedule="step")
    with pytest.raises(GenasError, match="unknown retrain option"):
        rc.retrain_config("quick", colour="red")
    with pytest.raises(GenasError, match="genotype"):
        rt.retrain(rc.retrain_config("quick", dataset="synthetic"), tmp_path / "g", device="cpu")
    with pytest.raises(GenasError, match="no config.json"):
        rt.retrain(None, tmp_path / "none", resume=True, device="cpu")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(GenasError, match="not an empty folder"):
        rt.retrain(darts_cfg(), tmp_path / "busy", device="cpu")
    # the auxiliary head cannot read 4x4 maps (16x16 inputs): a clear error, not a traceback
    with pytest.raises(GenasError, match="auxiliary head"):
        rt.retrain(darts_cfg(), tmp_path / "small", device="cpu", progress=False)


@pytest.mark.distributed
def test_torchrun_two_cpu_ranks(tmp_path):
    script = tmp_path / "ddp_retrain.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys
        import torch
        torch.set_num_threads(1)
        from genas.train import recipes as rc
        from genas.train import retrain as rt
        cfg = rc.retrain_config("quick", space="darts", genotype={DARTS_G!r}, dataset="synthetic", channels=4,
                                layers=5, auxiliary=False, cutout=4, drop_path=0.2, epochs=2, batch_size=32,
                                max_train_images=128, label_smoothing=0.1)
        res = rt.retrain(cfg, sys.argv[1], device="cpu", progress=False)
        with open(os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".json"), "w") as f:
            json.dump(dict(world=res["world_size"], digests=res["rank_digests"], top1=res["final_top1"]), f)
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path / "run"), str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]  # every rank's return value
    assert len(lines) == 2 and all(r["world"] == 2 for r in lines)
    assert len(set(lines[0]["digests"])) == 1 and lines[0] == lines[1]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["world_size"] == 2 and 0.0 <= result["final_top1"] <= 1.0
    assert state_digest(load_torch(tmp_path / "run" / "last.pt")["model"]) == result["final_digest"]
    assert [r["epoch"] for r in _log(tmp_path / "run")] == [0, 1]
