"""Training precision options and exact scoring (genas.engine.precision), on CPU.

The GPU side (bf16/fp16 speed, TF32 on real cuDNN convolutions, CPU-GPU agreement) is in
tests/test_cuda.py; here: option validation (one-line errors), the scoring context pinning fp32
with TF32 off whatever the global flags and restoring them, the fp32 default being exactly the old
loop, the fp16 scaler branch of the optimiser step, and the options recorded in the run folder.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genas import cli
from genas.data import load_data
from genas.engine import precision as pr
from genas.engine.loop import train_one_epoch
from genas.engine.step import sgd_step
from genas.errors import GenasError
from genas.options import check_resume, defaults
from genas.proxies import ScoringConfig, ScoringContext, get_proxy
from genas.spaces import NetworkSpec, get_space
from genas.supernet.config import SupernetConfig
from genas.train.recipes import RetrainConfig

from _tiny import tiny_config, train_tiny

pytestmark = pytest.mark.usefixtures("one_thread")
B = torch.backends


@pytest.fixture
def restore_tf32():
    """Tests set the global TF32 flags; put back what was there (new API only: see precision.py)."""
    saved = [(obj, obj.fp32_precision) for obj in (B.cudnn.conv, B.cudnn.rnn, B.cuda.matmul, B.mkldnn.conv,
                                                   B.mkldnn.matmul)]
    yield
    for obj, value in saved:
        obj.fp32_precision = value


def _cli(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err.strip()


# --- option validation --------------------------------------------------------------------------

def test_check_precision_one_line_errors():
    assert pr.check_precision("bf16", "cpu") == "bf16" and pr.check_precision("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(GenasError, match=r"--precision fp16 needs a CUDA device .*use bf16 or fp32 on cpu"):
        pr.check_precision("fp16", "cpu")
    with pytest.raises(GenasError, match=r"unknown --precision 'fp64'; available: fp32, bf16, fp16"):
        pr.check_precision("fp64", "cpu")
    assert pr.make_scaler("cpu", "bf16") is None and pr.make_scaler("cpu", "fp32") is None
    with pr.autocast("cpu", "fp32"):  # fp32: no autocast at all
        assert not torch.is_autocast_enabled("cpu")
    with pr.autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_fields_declared_with_choices_and_cli_flags():
    from genas.groundtruth import BenchConfig

    for cls in (SupernetConfig, RetrainConfig, BenchConfig):
        assert {"precision": "fp32", "channels_last": False, "deterministic": False}.items() <= defaults(cls).items()
        with pytest.raises(GenasError, match="unknown --precision 'half'"):
            cls(precision="half").validate()
    from genas.options import choices_of
    import dataclasses

    for cls in (SupernetConfig, RetrainConfig, BenchConfig, ScoringConfig):
        field = {f.name: f for f in dataclasses.fields(cls)}["precision"]
        assert tuple(choices_of(field)) == pr.PRECISIONS, cls


@pytest.mark.parametrize("argv", [
    ["train-supernet", "--preset", "quick", "--dataset", "synthetic", "--device", "cpu", "--precision", "fp16"],
    ["retrain", "--genotype", "DARTS_V2", "--dataset", "synthetic", "--device", "cpu", "--precision", "fp16"],
    ["bench", "--dataset", "synthetic", "--num-archs", "1", "--precision", "fp16"],
])
def test_cli_fp16_on_cpu_is_one_line_and_writes_nothing(capsys, tmp_path, argv):
    out = tmp_path / "out"
    code, err = _cli(capsys, *argv, "-o", str(out), "--no-progress")
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("genas: error: --precision fp16 needs a CUDA device"), err
    assert not out.exists()


def test_cli_unknown_precision_and_refused_scoring_precision(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train-supernet", "--precision", "fp8", "-o", str(tmp_path / "x")])
    assert exc.value.code == 2 and "fp8" in capsys.readouterr().err
    code, err = _cli(capsys, "search", "--run", str(tmp_path / "missing"), "--scoring-precision", "bf16")
    assert code == 2 and err.count("\n") == 0, err
    assert err.startswith("genas: error: --scoring-precision bf16 is refused: flatness measures"), err
    with pytest.raises(GenasError, match="--scoring-precision fp16 is refused"):
        ScoringConfig(precision="fp16").validate()
    assert ScoringConfig().validate().precision == "fp32"


# --- exact scoring ------------------------------------------------------------------------------

def test_exact_fp32_pins_ieee_and_restores_new_and_legacy_settings(restore_tf32):
    B.cudnn.conv.fp32_precision = B.cuda.matmul.fp32_precision = "tf32"  # the global flag on
    with pr.exact_fp32():
        assert pr.tf32_state() == {"cudnn.conv": "ieee", "cudnn.rnn": "ieee", "cuda.matmul": "ieee"}
        with pr.exact_fp32():  # nested: still exact, and the inner exit restores the outer state
            pass
        assert B.cudnn.conv.fp32_precision == "ieee"
    assert B.cudnn.conv.fp32_precision == "tf32" and B.cuda.matmul.fp32_precision == "tf32"
    with pr.tf32(True):
        assert B.cudnn.conv.fp32_precision == "tf32" and B.cuda.matmul.fp32_precision == "tf32"
    # a user who set the legacy flags reads them back unchanged after scoring
    B.cudnn.conv.fp32_precision = B.cudnn.rnn.fp32_precision = "ieee"
    B.cuda.matmul.fp32_precision = "none"
    torch.backends.cuda.matmul.allow_tf32 = True
    with pr.exact_fp32():
        assert B.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.allow_tf32 is True
    # oneDNN's reduced fp32 modes on CPU are switched off too, and put back
    B.mkldnn.conv.fp32_precision = "bf16"
    with pr.exact_fp32():
        assert B.mkldnn.conv.fp32_precision == "ieee"
    assert B.mkldnn.conv.fp32_precision == "bf16"


def test_exact_fp32_switches_autocast_off():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(2, 1, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16
        with pr.exact_fp32():
            assert not torch.is_autocast_enabled("cpu") and conv(x).dtype == torch.float32
        assert torch.is_autocast_enabled("cpu")


def _tiny_scoring_context(cfg: ScoringConfig) -> ScoringContext:
    data = load_data("synthetic")
    space = get_space("nb201")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        supernet = space.build_supernet(NetworkSpec(channels=4, cells_per_stage=1, num_classes=data.num_classes,
                                                    in_channels=data.in_channels))
    return ScoringContext(space, supernet, data, cfg)


def test_scoring_runs_exact_even_with_global_tf32_on_and_restores_it(restore_tf32, monkeypatch):
    from genas.proxies import context, measure

    cfg = ScoringConfig(val_images=64, bn_images=64, bn_batch_size=32, batch_size=64).validate()
    genotype = (1, 2, 3, 4, 0, 1)
    reference = {m: get_proxy(m)(_tiny_scoring_context(cfg), genotype).value for m in ("flatness", "accuracy")}
    seen = []

    def spy(fn, where):
        def wrapped(*args, **kwargs):
            seen.append((where, pr.tf32_state(), torch.is_autocast_enabled("cpu")))
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(measure, "_summed_loss", spy(measure._summed_loss, "noise"))
    monkeypatch.setattr(context, "recalibrate_bn", spy(context.recalibrate_bn, "bn"))
    monkeypatch.setattr(context, "evaluate", spy(context.evaluate, "eval"))
    B.cudnn.conv.fp32_precision = B.cuda.matmul.fp32_precision = "tf32"
    ctx = _tiny_scoring_context(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a caller's autocast does not reach the scoring
        got = {m: get_proxy(m)(ctx, genotype).value for m in ("flatness", "accuracy")}
    assert {w for w, _, _ in seen} == {"noise", "bn", "eval"}
    exact = {"cudnn.conv": "ieee", "cudnn.rnn": "ieee", "cuda.matmul": "ieee"}
    assert all(state == exact and not amp for _, state, amp in seen), seen
    assert B.cudnn.conv.fp32_precision == "tf32" and B.cuda.matmul.fp32_precision == "tf32"
    assert got == reference  # on CPU the pinned settings change no bit


# --- training -----------------------------------------------------------------------------------

def _toy(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 2, 6, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    return net, batches


def _step(net):
    return lambda x, y: (torch.nn.functional.cross_entropy(logits := net(x), y), logits)


def test_fp32_default_is_the_plain_loop_bitwise_and_bf16_channels_last_train():
    net, batches = _toy()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    train_one_epoch(_step(net), batches, opt, net.parameters(), 1.0, torch.device("cpu"), disable=True)
    plain, _ = _toy()
    popt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches:  # the loop as it was before the precision options
        popt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(plain(x), y).backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        popt.step()
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), plain.state_dict().values()))
    for amp in (pr.TrainPrecision.make("bf16", "cpu"), pr.TrainPrecision.make("fp32", "cpu", channels_last=True)):
        net, batches = _toy()
        amp.prepare(net)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        stats = train_one_epoch(_step(net), batches, opt, net.parameters(), 1.0, torch.device("cpu"), disable=True,
                                precision=amp)
        assert np.isfinite(stats.loss) and stats.seen == 32
        assert amp.channels_last == net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_scaler_step_equals_plain_step_and_skips_non_finite():
    """The fp16 branch of the step (scale, unscale before clipping, skip on inf), with the CPU scaler."""
    net, batches = _toy()
    twin, _ = _toy()
    x, y = batches[0]
    opt, topt = torch.optim.SGD(net.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
    sgd_step(torch.nn.functional.cross_entropy(net(x), y), opt, net.parameters(), 0.5)
    scaler = torch.amp.GradScaler("cpu")
    sgd_step(torch.nn.functional.cross_entropy(twin(x), y), topt, twin.parameters(), 0.5, scaler=scaler)
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), twin.parameters()))  # power-of-2 scale: exact
    before = [p.detach().clone() for p in twin.parameters()]
    sgd_step(twin(x).sum() * float("inf"), topt, twin.parameters(), 0.5, scaler=scaler)
    assert all(torch.equal(a, b) for a, b in zip(before, twin.parameters())) and scaler.get_scale() < 65536.0


def test_deterministic_mode_sets_and_restores():
    before = (torch.are_deterministic_algorithms_enabled(), B.cudnn.deterministic, B.cudnn.benchmark)
    with pr.deterministic_mode(True) as record:
        assert torch.are_deterministic_algorithms_enabled() and B.cudnn.deterministic and not B.cudnn.benchmark
        assert record["deterministic"] and record["warn_only"] and record["cublas_workspace_config"]
    assert (torch.are_deterministic_algorithms_enabled(), B.cudnn.deterministic, B.cudnn.benchmark) == before
    with pr.deterministic_mode(False) as record:
        assert record["deterministic"] is False


def test_options_recorded_in_the_run_folder_and_old_folders_resume(tmp_path):
    run = tmp_path / "bf16"
    summary = train_tiny(run, epochs=1, precision="bf16", channels_last=True, deterministic=True)
    saved = json.loads((run / "config.json").read_text())
    assert (saved["precision"], saved["channels_last"], saved["deterministic"]) == ("bf16", True, True)
    assert summary["numerics"]["precision"] == "bf16" and summary["numerics"]["deterministic_algorithms"]
    assert np.isfinite(summary["final_train_loss"]) and not torch.are_deterministic_algorithms_enabled()
    # a folder made before the options existed (no keys) resumes with the defaults, and only with them
    old = tmp_path / "old"
    train_tiny(old, epochs=1)
    cfg_path = old / "config.json"
    stored = json.loads(cfg_path.read_text())
    for key in ("precision", "channels_last", "deterministic"):
        del stored[key]
    cfg_path.write_text(json.dumps(stored))
    from genas.supernet.train import train_supernet

    again = train_supernet(tiny_config(epochs=1), old, resume=True, device="cpu", progress=False)
    assert again["final_digest"] == json.loads((old / "summary.json").read_text())["final_digest"]
    with pytest.raises(GenasError, match="started with precision='fp32'; cannot resume with precision='bf16'"):
        train_supernet(tiny_config(epochs=1, precision="bf16"), old, resume=True, device="cpu", progress=False)


def test_check_resume_defaults_fill_only_missing_keys():
    check_resume({"a": 1}, {"a": 1, "precision": "fp32"}, "x", defaults={"precision": "fp32"})
    with pytest.raises(GenasError, match="precision"):
        check_resume({"a": 1}, {"a": 1, "precision": "bf16"}, "x", defaults={"precision": "fp32"})
    with pytest.raises(GenasError, match="precision"):  # a recorded value is never replaced by the default
        check_resume({"precision": "bf16"}, {"precision": "fp32"}, "x", defaults={"precision": "fp32"})


def test_the_cli_sets_the_cublas_workspace_before_a_deterministic_command(monkeypatch, tmp_path):
    """cuBLAS reads CUBLAS_WORKSPACE_CONFIG at its first handle: set before the command, gone after."""
    import os

    import genas.supernet.train as st
    from genas.cli import main

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    seen = []

    def fake(cfg, out, **kw):
        seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
        return dict(final_val_acc=0.0, images_per_s=0.0)

    monkeypatch.setattr(st, "train_supernet", fake)
    assert main(["train-supernet", "--preset", "quick", "--dataset", "synthetic", "--deterministic",
                 "-o", str(tmp_path / "a"), "--no-progress"]) == 0
    assert main(["train-supernet", "--preset", "quick", "--dataset", "synthetic",
                 "-o", str(tmp_path / "b"), "--no-progress"]) == 0
    assert seen == [":4096:8", None] and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
