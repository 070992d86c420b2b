"""Honest retraining: best.pt selected on held-out training images (or labelled optimistic), the
final-epoch top-1 reported first, old folders still resuming, and fine-tuning from the supernet's
inherited weights (the extracted path loads them and computes the supernet's function)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genas.cli import main
from genas.data import load_data
from genas.engine.checkpoint import load_torch, save_torch, state_digest
from genas.errors import GenasError
from genas.io import save_json
from genas.options import to_dict
from genas.supernet.run import build_supernet_for
from genas.train import finetune
from genas.train import recipes as rc
from genas.train import retrain as rt
from genas.train.standalone import train_indices

from _tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

G = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
NEW_KEYS = ("holdout_fraction", "init_from_supernet", "supernet_digest", "supernet_affine")


def cfg_of(**kw):
    values = dict(space="nb201", genotype=G, dataset="synthetic", channels=4, cells_per_stage=1, epochs=3,
                  batch_size=32, max_train_images=64, lr=0.1)
    return rc.retrain_config("quick", **{**values, **kw})


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_holdout_split_is_disjoint_and_keeps_the_training_images():
    data = load_data("synthetic", None, 0)
    cfg = cfg_of()
    assert cfg.holdout_fraction == 0.05  # the quick recipe holds out 5 % of the training set
    train, held = rt.split_holdout(data, cfg)
    assert len(held) == round(0.05 * len(data.train)) and not set(train) & set(held)
    # taken from images the recipe does not train on: the training images are those of before
    assert np.array_equal(train, train_indices(data, cfg))
    everything = rt.split_holdout(data, cfg_of(max_train_images=None))[0]
    assert len(everything) == len(data.train) - len(held)
    assert len(rt.split_holdout(data, cfg_of(holdout_fraction=0.0))[1]) == 0
    with pytest.raises(GenasError, match="holdout-fraction"):
        rt.split_holdout(data, cfg_of(holdout_fraction=1e-6))


def test_best_pt_is_selected_on_held_out_images(tmp_path, capsys):
    run = tmp_path / "rt"
    result = rt.retrain(cfg_of(), run, device="cpu", progress=False)
    log = _log(run)
    held = [r["holdout_top1"] for r in log]
    assert all(0.0 <= h <= 1.0 for h in held)
    assert result["selection"] == "held-out" and result["holdout_images"] == 32
    assert result["best_epoch"] == int(np.argmax(held))  # the first epoch with the best held-out top-1
    assert result["best_holdout_top1"] == max(held) and result["best_top1"] == log[result["best_epoch"]]["top1"]
    assert result["final_top1"] == log[-1]["top1"]
    best = load_torch(run / "best.pt")
    assert (state_digest(best) == result["final_digest"]) == (result["best_epoch"] == 2)
    keys = list(result)
    assert keys.index("final_top1") < keys.index("best_top1")
    line = rt.summary_line(result)
    assert line.startswith(f"final top-1 {result['final_top1']}") and "held-out" in line


def test_without_a_held_out_set_best_is_labelled_optimistic(tmp_path, capsys):
    run = tmp_path / "rt"
    args = ["retrain", "--space", "nb201", "--genotype", G, "--dataset", "synthetic", "--channels", "4",
            "--cells-per-stage", "1", "--epochs", "2", "--batch-size", "32", "--max-train-images", "64",
            "--holdout-fraction", "0", "--no-progress", "--device", "cpu", "-o", str(run)]
    assert main(args) == 0
    out = capsys.readouterr().out
    result = json.loads((run / "result.json").read_text())
    assert result["selection"] == "test" and result["selection_note"] == "best on test — optimistic"
    assert result["best_top1"] == max(r["top1"] for r in _log(run)) and "holdout_top1" not in _log(run)[0]
    assert out.startswith(f"final top-1 {result['final_top1']}") and "best on test — optimistic" in out


def test_a_folder_made_before_selection_existed_resumes(tmp_path, monkeypatch):
    """An old folder (config without the new keys, killed after epoch 1) continues as it was made:
    selection on the test set; a finished one re-reports with the optimistic label."""
    run = tmp_path / "old"
    real_append, calls = rt.append_jsonl, {"n": 0}

    def kill_after_epoch_1(record, path):
        real_append(record, path)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(rt, "append_jsonl", kill_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        rt.retrain(cfg_of(holdout_fraction=0.0), run, device="cpu", progress=False)
    monkeypatch.setattr(rt, "append_jsonl", real_append)
    saved = json.loads((run / "config.json").read_text())
    save_json({k: v for k, v in saved.items() if k not in NEW_KEYS}, run / "config.json")

    resumed = rt.retrain(None, run, resume=True, device="cpu", progress=False)
    reference = rt.retrain(cfg_of(holdout_fraction=0.0), tmp_path / "ref", device="cpu", progress=False)
    assert resumed["final_digest"] == reference["final_digest"] and resumed["selection"] == "test"
    assert [r["epoch"] for r in _log(run)] == [0, 1, 2]
    old_result = {k: v for k, v in resumed.items() if k not in ("selection", "selection_note")}
    assert "best on test — optimistic" in rt.summary_line(old_result)
    # resuming with today's quick recipe (held-out selection) is other work: refused, naming the key
    with pytest.raises(GenasError, match="holdout_fraction"):
        rt.retrain(cfg_of(), run, resume=True, device="cpu", progress=False)


# --- fine-tuning from the supernet ------------------------------------------------------------------

@pytest.fixture
def supernet_run(tmp_path):
    """A supernet folder as train-supernet leaves it (config, data facts, final.pt), with non-trivial
    BN statistics so that the extracted path's eval-mode function is really compared."""
    cfg = tiny_config(epochs=1)
    data = load_data("synthetic", None, cfg.split_seed)
    supernet = build_supernet_for(cfg, data)
    gen = torch.Generator().manual_seed(3)
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    run = tmp_path / "sn"
    run.mkdir()
    save_json(to_dict(cfg), run / "config.json")
    save_json(data.describe(), run / "data.json")
    save_torch(supernet.state_dict(), run / "final.pt")
    return run, supernet.eval(), data


def test_fine_tune_starts_from_the_supernets_function(supernet_run, tmp_path):
    run, supernet, data = supernet_run
    cfg = rc.retrain_config("quick", genotype=G, init_from_supernet=str(run), epochs=1, batch_size=32,
                            max_train_images=64)
    # the supernet's size, data and digest, whatever the recipe says (quick NB201: C=16)
    assert (cfg.space, cfg.channels, cfg.cells_per_stage, cfg.dataset) == ("nb201", 4, 1, "synthetic")
    assert cfg.supernet_digest == finetune.digest(run / "final.pt") and not cfg.auxiliary
    net = rt.build_network(cfg, data.num_classes, data.in_channels)
    genotype = rc.resolve_genotype("nb201", G)
    finetune.inherit(cfg, genotype, net, data)
    x = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(net.eval()(x), supernet(x, genotype))
    assert sorted(net.state_dict()) == sorted(supernet.subnet_state_dict(genotype))

    out = tmp_path / "ft"
    result = rt.retrain(cfg, out, device="cpu", progress=False)
    assert result["supernet_digest"] == cfg.supernet_digest and result["final_top1"] is not None
    assert json.loads((out / "config.json").read_text())["init_from_supernet"] == str(run)
    # a resumed run rebuilds the same network from its config (not from the supernet folder)
    again = rt.build_network(rc.load_retrain_config(out), data.num_classes, data.in_channels)
    again.load_state_dict(load_torch(out / "last.pt")["model"])


def test_fine_tune_refusals(supernet_run, tmp_path, capsys):
    run, _, data = supernet_run
    with pytest.raises(GenasError, match="channels"):
        rc.retrain_config("quick", genotype=G, init_from_supernet=str(run), channels=8)
    with pytest.raises(GenasError, match="not a finished train-supernet"):
        rc.retrain_config("quick", genotype=G, init_from_supernet=str(tmp_path))
    cfg = rc.retrain_config("quick", genotype=G, init_from_supernet=str(run))
    (run / "final.pt").write_bytes((run / "final.pt").read_bytes() + b"x")  # other weights now
    net = rt.build_network(cfg, data.num_classes, data.in_channels)
    with pytest.raises(GenasError, match="not the supernet"):
        finetune.inherit(cfg, rc.resolve_genotype("nb201", G), net, data)
    # the CLI takes the run's own search winner, and needs one search to pick from
    assert main(["retrain", "--init-from-supernet", str(run), "-o", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "give --genotype or --result" in capsys.readouterr().err
    save_json(dict(space="nb201", best=dict(genotype=G, score=1.0)), run / "search-a" / "result.json")
    assert main(["retrain", "--init-from-supernet", str(run), "-o", str(tmp_path / "x"), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["genotype"] == G and printed["channels"] == 4 and printed["init_from_supernet"] == str(run)
    # a winner with an op that cannot reach the output is retrained without it, from either source
    dead = "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    live = "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    save_json(dict(space="nb201", best=dict(genotype=dead, score=1.0)), run / "search-a" / "result.json")
    for source in (["--init-from-supernet", str(run)], ["--result", str(run / "search-a" / "result.json")]):
        assert main(["retrain", *source, "-o", str(tmp_path / "x"), "--print-config"]) == 0
        assert json.loads(capsys.readouterr().out)["genotype"] == live
    # a retraining started before pruning existed (the scored string stored) resumes with that string
    started = tmp_path / "started"
    save_json(dict(genotype=dead), started / "config.json")
    assert main(["retrain", "--result", str(run / "search-a" / "result.json"), "-o", str(started), "--resume",
                 "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["genotype"] == dead
