"""The public Python API on data made in memory (no dataset name): supernet training, a flatness
search and scoring from arrays; a run refuses other arrays (resume, search) in one line; data from
a torch Dataset; ``import genas`` is light (no torch until an entry point is used)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import genas
import genas.supernet.train as train_mod
from genas.data import from_dataset, from_tensors

pytestmark = pytest.mark.usefixtures("one_thread")

CFG = dict(space="nb201", channels=4, cells_per_stage=1, epochs=2, batch_size=32, max_train_images=96,
           val_images=48, save_every=1)
SEARCH = dict(population=4, topk=2, generations=2, mutations=2, crossovers=1, val_images=48, bn_images=32,
              bn_batch_size=32)


def make_arrays(seed: int = 0, n_train: int = 240, n_test: int = 60, classes: int = 4, size: int = 12):
    """A learnable toy set as a user would have it: numpy uint8 N x C x H x W images, int labels."""
    rng = np.random.default_rng(seed)
    templates = rng.random((classes, 1, size, size))

    def draw(n):
        y = np.arange(n) % classes
        x = templates[y] * 0.7 + rng.random((n, 1, size, size)) * 0.3
        return (x * 255).round().astype(np.uint8), y.astype(np.int64)

    return (*draw(n_train), *draw(n_test))


def one_line(exc_info, *needles) -> str:
    msg = str(exc_info.value)
    assert msg and "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


@pytest.fixture(scope="module")
def arrays():
    return make_arrays()


@pytest.fixture(scope="module")
def data(arrays):
    return from_tensors(*arrays, name="toy")


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("api") / "run"
    genas.train_supernet(genas.supernet_config("quick", **CFG), path, device="cpu", progress=False, data=data)
    return path


def test_import_genas_is_light():
    code = ("import sys, genas; assert 'torch' not in sys.modules; "
            "genas.get_space('nb201'); genas.supernet_config('quick'); genas.data; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert callable(genas.search_run) and callable(genas.export_run); "
            "genas.data.from_tensors; genas.train_supernet; assert 'torch' in sys.modules; print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_public_names():
    for name in ("train_supernet", "search_run", "retrain", "export_run", "score", "correlate", "get_space", "register_space",
                 "NetworkSpec", "SupernetConfig", "supernet_config", "ScoringConfig", "retrain_config", "GenasError"):
        assert name in genas.__all__ and getattr(genas, name) is not None, name
    assert genas.score is genas.workflows.score.score_archs
    with pytest.raises(AttributeError):
        genas.no_such_thing


def test_data_describes_and_fingerprints_arrays(arrays, data):
    desc = data.describe()
    assert desc["dataset"] == "toy" and desc["source"] == "arrays"
    assert (desc["num_classes"], desc["in_channels"], desc["image_size"]) == (4, 1, 12)
    assert (desc["n_supernet_train"], desc["n_search_val"], desc["n_test"]) == (120, 120, 60)
    x = arrays[0].astype(np.float64) / 255
    assert desc["mean"] == pytest.approx([x.mean()], abs=1e-5) and desc["std"] == pytest.approx([x.std()], abs=1e-5)
    assert len(desc["fingerprint"]) == 64
    # the same content from torch tensors gives the same fingerprint; one changed pixel another
    same = from_tensors(*(torch.from_numpy(a) for a in arrays), name="toy")
    assert same.fingerprint == data.fingerprint
    changed = [a.copy() for a in arrays]
    changed[0][7, 0, 3, 3] ^= 1
    assert from_tensors(*changed).fingerprint != data.fingerprint
    relabelled = [a.copy() for a in arrays]
    relabelled[3][0] = (relabelled[3][0] + 1) % 4
    assert from_tensors(*relabelled).fingerprint != data.fingerprint
    # copied: changing the caller's arrays afterwards does not change the Data
    mine = [a.copy() for a in arrays]
    d = from_tensors(*mine)
    mine[0][:] = 0
    assert d.fingerprint == data.fingerprint
    x_batch, y_batch = next(data.train.batches(data.val_idx, 16, train=False))
    assert x_batch.shape == (16, 1, 12, 12) and x_batch.dtype == torch.float32 and y_batch.dtype == torch.int64


def test_named_datasets_are_fingerprinted_too():
    from genas.data import load_data

    a, b = load_data("synthetic"), load_data("synthetic", split_seed=1)
    assert a.describe()["fingerprint"] == b.describe()["fingerprint"] and a.describe()["source"] == "named"
    assert a.describe()["mean"] == [0.5] and a.describe()["std"] == [0.25]


def test_float_images_and_explicit_normalisation(arrays):
    tx, ty, vx, vy = arrays
    d = from_tensors(tx / 255.0, ty, vx / 255.0, vy, mean=0.5, std=(0.25,), num_classes=6, crop_padding=1, flip=True)
    assert d.num_classes == 6 and d.describe()["mean"] == [0.5] and d.describe()["std"] == [0.25]
    x, _ = next(d.train.batches(d.train_idx, 8, train=False))
    want = (torch.from_numpy(tx[d.train_idx[:8]]).float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, want, atol=1e-5)
    x_aug, _ = next(d.train.batches(d.train_idx, 8, train=True, seed=0))
    assert x_aug.shape == (8, 1, 12, 12)


@pytest.mark.parametrize("bad, needle", [
    (lambda a: (a[0][:, 0, :, :6], a[1], a[2], a[3]), "square"),
    (lambda a: (np.transpose(a[0], (0, 2, 3, 1)).repeat(3, axis=3)[:, :, :10], a[1], a[2], a[3]), "channels-last"),
    (lambda a: (a[0], a[1][:-1], a[2], a[3]), "labels"),
    (lambda a: (a[0], a[1].astype(np.float32), a[2], a[3]), "integer"),
    (lambda a: (a[0], -a[1], a[2], a[3]), "negative"),
    (lambda a: (a[0].astype(np.int32), a[1], a[2], a[3]), "uint8"),
    (lambda a: (a[0], a[1], a[2][:, :, :6, :6], a[3]), "differ in shape"),
    (lambda a: (a[0], a[1], a[2] / 255.0, a[3]), "same scale"),
    (lambda a: (a[0][:0], a[1][:0], a[2], a[3]), "no images"),
    (lambda a: (a[0].tolist(), a[1], a[2], a[3]), "numpy array or a torch tensor"),
])
def test_bad_arrays_are_one_line_errors(arrays, bad, needle):
    with pytest.raises(genas.GenasError) as exc:
        from_tensors(*bad(arrays))
    one_line(exc, needle)


def test_bad_options_are_one_line_errors(arrays):
    for kwargs, needle in [(dict(num_classes=3), "num_classes"), (dict(std=0.0), "std"),
                           (dict(mean=(0.1, 0.2)), "mean"), (dict(val_fraction=1.0), "val fraction"),
                           (dict(crop_padding=-1), "crop_padding"), (dict(name=""), "name")]:
        with pytest.raises(genas.GenasError) as exc:
            from_tensors(*arrays, **kwargs)
        one_line(exc, needle)


def test_from_dataset(arrays, data):
    from torch.utils.data import TensorDataset

    tx, ty, vx, vy = (torch.from_numpy(a) for a in arrays)
    d = from_dataset(TensorDataset(tx, ty), TensorDataset(vx, vy), name="toy")
    assert d.fingerprint == data.fingerprint and d.describe() == data.describe()

    class Pairs(torch.utils.data.Dataset):  # ToTensor-style float images, python int labels
        def __len__(self):
            return 20

        def __getitem__(self, i):
            return tx[i].float() / 255, int(ty[i])

    f = from_dataset(Pairs(), Pairs())
    assert f.train.x.dtype == torch.float32 and f.num_classes == 4 and len(f.test) == 20

    class Bad(Pairs):
        def __getitem__(self, i):
            return tx[i].float() / 255, 0.5

    with pytest.raises(genas.GenasError) as exc:
        from_dataset(Bad(), Pairs())
    one_line(exc, "train_ds[0]", "label")
    with pytest.raises(genas.GenasError) as exc:
        from_dataset([], Pairs())
    one_line(exc, "train_ds", "empty")


def test_train_and_search_from_arrays(run, data):
    facts = json.loads((run / "data.json").read_text())
    assert facts == json.loads(json.dumps(data.describe()))
    found = genas.search_run(run, "flatness", seed=0, data=data, device="cpu", **SEARCH)
    assert found["evaluations"] == 8 and found["space"] == "nb201"
    assert genas.get_space("nb201").parse(found["best"]["genotype"])
    assert (run / "search-flatness" / "result.json").exists() and found["folder"].endswith("search-flatness")
    # scoring fixed architectures on the same run and data
    out = run.parent / "scores.jsonl"
    assert genas.score([found["best"]["genotype"]], ["flatness", "params"], out, [0],
                       genas.ScoringConfig(val_images=48, bn_images=32, bn_batch_size=32), run=run, data=data) == 1
    row = json.loads(out.read_text())
    assert np.isfinite(row["flatness"]) and row["params"] > 0
    # data-only proxies on fresh networks: no run, no dataset name
    fresh = run.parent / "zero_cost.jsonl"
    assert genas.score([found["best"]["genotype"]], ["synflow", "params"], fresh, [0], genas.ScoringConfig(),
                       network=dict(channels=4, cells_per_stage=1), data=data, space="nb201") == 1
    assert np.isfinite(json.loads(fresh.read_text())["synflow"])


def test_search_options_are_checked(run, data):
    with pytest.raises(genas.GenasError) as exc:
        genas.search_run(run, "flatness", data=data, populaton=3)
    one_line(exc, "populaton")
    with pytest.raises(genas.GenasError) as exc:
        genas.search_run(run, "flatness", strategy="annealing", data=data)
    one_line(exc, "annealing")


def test_run_from_arrays_needs_its_arrays(run, arrays, data):
    with pytest.raises(genas.GenasError) as exc:  # no data: the run cannot reload arrays by name
        genas.search_run(run, "flatness", name="nodata", device="cpu", **SEARCH)
    one_line(exc, "in-memory", "toy", "data=")
    other = make_arrays(seed=1)
    with pytest.raises(genas.GenasError) as exc:
        genas.search_run(run, "flatness", name="other", data=from_tensors(*other, name="toy"), device="cpu", **SEARCH)
    one_line(exc, "other data", "fingerprint")
    with pytest.raises(genas.GenasError) as exc:  # same arrays, another split
        genas.search_run(run, "flatness", name="split", data=from_tensors(*arrays, name="toy", split_seed=1), **SEARCH)
    one_line(exc, "split")
    assert not (run / "search-other").exists() and not (run / "search-nodata").exists()


def test_resume_with_modified_arrays_is_refused(tmp_path, arrays, data, run, monkeypatch):
    changed = [a.copy() for a in arrays]
    changed[0][0, 0, 0, 0] ^= 0xFF
    cfg = genas.supernet_config("quick", **CFG)
    # a finished run
    with pytest.raises(genas.GenasError) as exc:
        genas.train_supernet(cfg, run, resume=True, device="cpu", progress=False, data=from_tensors(*changed))
    one_line(exc, "other data")
    assert genas.train_supernet(cfg, run, resume=True, device="cpu", progress=False, data=data)["epochs"] == 2

    # a run killed after its first epoch
    crashed = tmp_path / "crashed"
    real_append = train_mod.append_jsonl

    def killed_after_one_epoch(record, path):
        real_append(record, path)
        raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(train_mod, "append_jsonl", killed_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        genas.train_supernet(cfg, crashed, device="cpu", progress=False, data=data)
    monkeypatch.setattr(train_mod, "append_jsonl", real_append)
    assert not (crashed / "final.pt").exists()
    with pytest.raises(genas.GenasError) as exc:
        genas.train_supernet(cfg, crashed, resume=True, device="cpu", progress=False, data=from_tensors(*changed))
    one_line(exc, "other data")
    assert not (crashed / "final.pt").exists()
    summary = genas.train_supernet(cfg, crashed, resume=True, device="cpu", progress=False, data=data)
    assert summary["final_digest"] == json.loads((run / "summary.json").read_text())["final_digest"]
