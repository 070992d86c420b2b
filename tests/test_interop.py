"""Interop with other tools: TensorBoard event files from the JSONL logs, ONNX export checked against
onnxruntime, and the timm entry point. Each needs an optional extra and skips cleanly without it;
the one-line errors without the extras are tested by faking the import failure."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from genas.cli import main
from genas.errors import GenasError

from conftest import NB201_DIR

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_TABLE = NB201_DIR / "nats_tss_test_acc_200ep.csv"
G = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
has = {name: importlib.util.find_spec(name) is not None
       for name in ("tensorboard", "onnx", "onnxscript", "onnxruntime", "timm")}
needs_tensorboard = pytest.mark.skipif(not has["tensorboard"], reason="needs the tensorboard extra")


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def run_folder(tmp_path):
    """A `genas run`-shaped folder with records in the shapes the steps write them."""
    run = tmp_path / "run"
    _write_jsonl(run / "log.jsonl", [
        {"epoch": e, "lr": 0.025 / (e + 1), "train_loss": 2.0 - 0.3 * e, "train_acc": 0.2 + 0.1 * e,
         "val_arch": G, "val_acc": 0.4 + 0.05 * e, "val_loss": 1.3 - 0.1 * e, "seconds": 16.0 + e,
         "images_per_s": 600.5} for e in range(3)])
    (run / "init.pt").write_bytes(b"")  # marks a supernet run folder
    _write_jsonl(run / "search-flatness" / "candidates.jsonl", [
        {"genotype": G, "score": 0.001 + i * 1e-5, "raw": {"losses": [0.82 + i / 100, 0.83, 0.84],
                                                         "stds": [0.001, 0.003, 0.006], "seconds": 1.25},
         "generation": i // 2, "seconds": 1.2, "time": 1796153412.381 + i, "params": 1000 + i, "macs": 5e5 + i}
        for i in range(4)])
    _write_jsonl(run / "retrain" / "log.jsonl", [
        {"epoch": 0, "lr": 0.05, "drop_path_prob": 0.0, "train_loss": 1.1, "train_acc": 0.6, "test_loss": None,
         "top1": None, "top5": None, "seconds": 37.7},
        {"epoch": 1, "lr": 0.04, "drop_path_prob": 0.0, "train_loss": 0.6, "train_acc": 0.77, "test_loss": 0.83,
         "top1": 0.6894, "top5": 0.9912, "holdout_top1": 0.7, "seconds": 39.4}])
    (run / "retrain" / "last.pt").write_bytes(b"")
    return run


def _events(folder):
    """tag -> [(step, value)] of the event files in ``folder`` (tensorboard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    out = {tag: [(e.step, float(e.value)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    for tag in acc.Tags()["tensors"]:
        out[tag] = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
    return out


def _expected(rows, by_epoch=True):
    """tag -> [(step, value)] straight from the JSONL records."""
    from genas.analysis.tensorboard import scalars

    out = {}
    for i, r in enumerate(r for r in rows if "copy_of" not in r):  # copies are not evaluations
        step = r["epoch"] if by_epoch else i + 1
        for tag, value in scalars(r):
            out.setdefault(tag, []).append((step, value))
    return out


@needs_tensorboard
def test_tensorboard_scalars_equal_the_jsonl_values(run_folder, capsys):
    assert main(["tensorboard", str(run_folder)]) == 0
    assert "tensorboard" in capsys.readouterr().out
    tb = run_folder / "tensorboard"
    assert sorted(p.name for p in tb.iterdir() if p.name != ".genas-tensorboard.json") == ["retrain", "search-flatness", "supernet"]
    for name, log, by_epoch in (("supernet", run_folder / "log.jsonl", True),
                                ("search-flatness", run_folder / "search-flatness" / "candidates.jsonl", False),
                                ("retrain", run_folder / "retrain" / "log.jsonl", True)):
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert _events(tb / name) == _expected(rows, by_epoch), name
    events = _events(tb / "search-flatness")
    assert events["raw/losses/0"] == [(i + 1, 0.82 + i / 100) for i in range(4)]  # exact doubles
    assert events["macs"][-1] == (4, 5e5 + 3)
    retrain = _events(tb / "retrain")
    assert retrain["top1"] == [(1, 0.6894)] and "val_arch" not in _events(tb / "supernet")  # None, str skipped
    # a second conversion rebuilds the files rather than appending a second copy of every point
    first = sorted(p.name for p in (tb / "retrain").iterdir())
    assert main(["tensorboard", str(run_folder)]) == 0
    assert len(list((tb / "retrain").iterdir())) == len(first) and _events(tb / "retrain") == retrain


@needs_tensorboard
@pytest.mark.skipif(not NB201_TABLE.is_file(), reason="needs the NB201 table")
def test_tensorboard_flag_writes_the_same_events_as_the_command(tmp_path):
    out = tmp_path / "oracle"
    assert main(["search", "--oracle", str(NB201_TABLE), "--oracle-column", "CIFAR10TestAccuracy200Epochs",
                 "--population", "4", "--generations", "2", "--topk", "2", "--mutations", "2", "--crossovers", "2",
                 "-o", str(out), "--no-progress", "--tensorboard"]) == 0
    rows = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    live = _events(out / "tensorboard" / "search")
    assert live == _expected(rows, by_epoch=False) and len(live["score"]) == len(rows) == 8
    assert main(["tensorboard", str(out), "-o", str(tmp_path / "later")]) == 0
    assert _events(tmp_path / "later" / "search") == live
    assert main(["tensorboard", str(out), "-o", str(tmp_path / "later")]) == 0  # its own conversion: rebuilt
    assert _events(tmp_path / "later" / "search") == live
    other = tmp_path / "other"  # another run's logs never replace these, nor a folder of other files
    assert main(["search", "--oracle", str(NB201_TABLE), "--oracle-column", "CIFAR10TestAccuracy200Epochs",
                 "--population", "4", "--generations", "1", "--topk", "2", "--mutations", "2", "--crossovers", "2",
                 "--seed", "1", "-o", str(other), "--no-progress"]) == 0
    assert main(["tensorboard", str(other), "-o", str(tmp_path / "later")]) == 2
    assert _events(tmp_path / "later" / "search") == live
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("x")
    assert main(["tensorboard", str(out), "-o", str(tmp_path / "notes")]) == 2
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]


def test_tensorboard_without_the_extra_is_one_line(run_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import now fails
    assert main(["tensorboard", str(run_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genas: error:") and "pip install 'genas[tensorboard]'" in err[0]
    assert not (run_folder / "tensorboard").exists()
    # the live option fails before the command does any work
    out = tmp_path / "never"
    assert main(["search", "--oracle", "x.csv", "--oracle-column", "c", "-o", str(out), "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "genas[tensorboard]" in err[0] and not out.exists()


def test_tensorboard_of_a_folder_without_logs(tmp_path, capsys):
    if not has["tensorboard"]:
        pytest.skip("needs the tensorboard extra")
    assert main(["tensorboard", str(tmp_path)]) == 2
    assert "no log.jsonl or candidates.jsonl" in capsys.readouterr().err


# --- export: ONNX and timm ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny retrained NB201 network exported with genas export (ONNX too when the extra is there)."""
    from genas.export import export_run
    from genas.train import recipes as rc
    from genas.train.retrain import retrain

    torch.set_num_threads(1)
    w = tmp_path_factory.mktemp("export")
    cfg = rc.retrain_config("quick", space="nb201", genotype=G, dataset="synthetic", channels=4, cells_per_stage=1,
                            epochs=1, batch_size=32, max_train_images=64)
    retrain(cfg, w / "rt", device="cpu", progress=False)
    onnx = has["onnx"] and has["onnxscript"]
    return export_run(w / "rt", w / "exp", onnx=onnx), onnx


@pytest.mark.slow
@pytest.mark.skipif(not (has["onnx"] and has["onnxscript"] and has["onnxruntime"]),
                    reason="needs the onnx extra (onnx, onnxscript) and onnxruntime")
def test_onnx_outputs_equal_the_torch_export_program(exported):
    import numpy as np
    import onnxruntime as ort

    out, _ = exported
    meta = json.loads((out / "genotype.json").read_text())
    assert meta["onnx"]["file"] == "model.onnx" and meta["onnx"]["input"] == "images"
    program = torch.export.load(str(out / "model.pt2")).module()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch" and session.get_outputs()[0].name == "logits"
    gen = torch.Generator().manual_seed(0)
    for batch in (1, 7):  # one graph, dynamic batch
        x = torch.randn(batch, *meta["input_shape"], generator=gen)
        with torch.no_grad():
            ref = program(x).numpy()
        got = session.run(["logits"], {"images": x.numpy()})[0]
        assert got.shape == ref.shape == (batch, meta["network"]["num_classes"])
        assert np.abs(got - ref).max() <= 1e-4, np.abs(got - ref).max()


def test_onnx_without_the_extra_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    out = tmp_path / "exp"
    assert main(["export", "--run", str(tmp_path / "nothing"), "-o", str(out), "--onnx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "genas: error: ONNX export needs the onnx extra: pip install 'genas[onnx]'"
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not has["timm"], reason="needs the timm extra")
def test_timm_entry_point_builds_the_exported_network(exported):
    import timm
    from timm.data import resolve_data_config

    from genas.export import register_timm

    out, _ = exported
    meta = json.loads((out / "genotype.json").read_text())
    name = register_timm(out)
    assert name in timm.list_models("genas_*")
    model = timm.create_model(name, num_classes=3, in_chans=3)
    assert model(torch.zeros(2, 3, *meta["input_shape"][1:])).shape == (2, 3)
    cfg = resolve_data_config(model=model)
    assert cfg["input_size"] == (3, *meta["input_shape"][1:])
    assert cfg["mean"] == pytest.approx([meta["mean"][0]] * 3) and cfg["std"] == pytest.approx([meta["std"][0]] * 3)
    # pretrained: the exported weights, computing what the torch.export program computes
    same = timm.create_model(name, pretrained=True).eval()
    x = torch.randn(5, *meta["input_shape"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(same(x), torch.export.load(str(out / "model.pt2")).module()(x), atol=1e-6)
    assert same.pretrained_cfg["num_classes"] == meta["network"]["num_classes"]
    with pytest.raises(GenasError, match="identifier"):
        register_timm(out, name="not a name")


def test_timm_without_the_extra_is_one_line(tmp_path, monkeypatch):
    from genas.export import register_timm

    monkeypatch.setitem(sys.modules, "timm.models", None)
    with pytest.raises(GenasError, match=r"pip install 'genas\[timm\]'"):
        register_timm(tmp_path)


def test_export_refuses_its_own_run_and_a_failure_leaves_nothing(exported, monkeypatch, capsys):
    import genas.export as ex

    out, _ = exported
    run = out.parent / "rt"
    before = sorted(p.name for p in run.iterdir())
    assert main(["export", "--run", str(run), "-o", str(run), "--force"]) == 2  # would write into the run
    assert "its own input" in capsys.readouterr().err and sorted(p.name for p in run.iterdir()) == before

    def broken(*a, **k):
        raise RuntimeError("exporter failed\nsecond line")

    monkeypatch.setattr(torch.export, "export", broken)
    target = out.parent / "never"
    assert main(["export", "--run", str(run), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "export failed (RuntimeError: exporter failed)" in err, err
    assert not target.exists() and not any(p.name.startswith(".tmp-") for p in out.parent.iterdir())
    assert ex.MODEL in {p.name for p in out.iterdir()}  # the earlier export is untouched
