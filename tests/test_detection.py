"""Transfer to object detection (genas.detection): the backbone adaptor, weights from a retrain run,
the COCO evaluation against pycocotools, a tiny train + eval through the CLI, exact resume after a
kill, and one-line errors for every class of bad input."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import genas.io
from genas.cli import main
from genas.detection import detect_config, train_detector
from genas.detection.backbone import CellFeatures, CellFPNBackbone, load_backbone_weights
from genas.detection.data import SceneSpec, make_scenes
from genas.detection.evaluate import SUMMARY_KEYS, coco_summary
from genas.errors import GenasError
from genas.spaces import NetworkSpec, get_space

import test_kill_points as kp

pytestmark = pytest.mark.usefixtures("one_thread")

NB201_CELL = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """A small scene set: 64-px scenes of the synthetic 16-px items."""
    from genas.data.sources import make_synthetic

    out = tmp_path_factory.mktemp("scenes")
    tx, ty, vx, vy = make_synthetic(size=16, n_train=200, n_test=100)
    make_scenes(out, SceneSpec(dataset="synthetic", train_scenes=24, val_scenes=8, image_size=64, min_side=12,
                               max_side=40, seed=1),
                tx.numpy(), ty.numpy(), vx.numpy(), vy.numpy(), [f"c{k}" for k in range(10)])
    return out


def tiny(scenes: Path, **over):
    return detect_config("tiny", data=str(scenes), max_val_images=4, **over)


# --- the adaptor --------------------------------------------------------------------------------------

@pytest.mark.parametrize("space,style,genotype,fields,channels", [
    ("nb201", "cifar", NB201_CELL, dict(channels=4, cells_per_stage=1), [4, 8, 16]),
    ("darts", "cifar", "PC_DARTS", dict(channels=4, layers=3), [16, 32, 64]),
    ("darts", "imagenet", "DARTS_V2", dict(channels=4, layers=5), [16, 32, 64]),
])
def test_adaptor_returns_maps_at_strides_8_16_32(space, style, genotype, fields, channels):
    sp = get_space(space)
    g = sp.published()[genotype] if genotype in sp.published() else sp.parse(genotype)
    net = sp.build_network(g, NetworkSpec(in_channels=1, style=style, **fields))
    features = CellFeatures(net)
    maps = features(torch.zeros(2, 1, 64, 96))
    assert list(maps) == ["c3", "c4", "c5"] and features.strides == [8, 16, 32] and features.channels == channels
    for (name, m), stride, c in zip(maps.items(), features.strides, channels):
        assert tuple(m.shape) == (2, c, 64 // stride, 96 // stride), name
    fpn = CellFPNBackbone(features, out_channels=8, levels=5)
    out = fpn(torch.zeros(2, 1, 64, 96))
    assert isinstance(fpn.out_channels, int) and list(out) == ["p3", "p4", "p5", "p6", "p7"]
    assert fpn.strides == [8, 16, 32, 64, 128]
    assert [tuple(v.shape[1:]) for v in out.values()] == [(8, 8, 12), (8, 4, 6), (8, 2, 3), (8, 1, 2), (8, 1, 1)]


def test_p6_source_is_explicit_even_when_widths_match():
    """torchvision's LastLevelP6P7 silently takes P5 when C5 and the FPN have the same width."""
    net = get_space("nb201").build_network(get_space("nb201").parse(NB201_CELL),
                                           NetworkSpec(channels=4, cells_per_stage=1, in_channels=1))
    c5 = CellFPNBackbone(CellFeatures(copy.deepcopy(net)), out_channels=16, levels=5, p6_from="c5")
    p5 = CellFPNBackbone(CellFeatures(net), out_channels=16, levels=5, p6_from="p5")
    assert c5.fpn.extra_blocks.use_P5 is False and p5.fpn.extra_blocks.use_P5 is True


def test_frozen_stages_and_frozen_bn(scenes, retrain_run):
    from torchvision.ops import FrozenBatchNorm2d

    from genas.detection.model import build_detector

    with pytest.raises(GenasError, match="--backbone-run"):  # frozen random weights would stay random
        tiny(scenes, frozen_stages=2)
    partly = build_detector(tiny(scenes, backbone_run=str(retrain_run), frozen_stages=2), 10, 1, [0.5], [0.25])
    stages = partly.backbone.features.stages()
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for m in stages[0] + stages[1] for x in m.modules())
    assert any(isinstance(x, torch.nn.BatchNorm2d) for m in stages[2] for x in m.modules())  # frozen stages only
    model = build_detector(tiny(scenes, backbone_run=str(retrain_run), frozen_stages=2, frozen_bn=True), 10, 1,
                           [0.5], [0.25])
    body = model.backbone.features.body
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in body.modules())
    assert all(not p.requires_grad for p in body.stem.parameters())
    stages = model.backbone.features.stages()
    assert all(not p.requires_grad for m in stages[1] for p in m.parameters())
    assert all(p.requires_grad for m in stages[2] for p in m.parameters())


# --- weights from a retrain run ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def retrain_run(tmp_path_factory) -> Path:
    from genas.train import recipes as rc
    from genas.train.retrain import retrain

    out = tmp_path_factory.mktemp("rt") / "run"
    cfg = rc.retrain_config("quick", space="nb201", genotype=NB201_CELL, dataset="synthetic", channels=4,
                            cells_per_stage=1, epochs=1, batch_size=32, max_train_images=64, test_images=32)
    retrain(cfg, out, device="cpu", progress=False)
    return out


def test_a_retrain_checkpoint_loads_into_the_backbone(scenes, retrain_run):
    from genas.detection.model import build_detector

    state = torch.load(retrain_run / "last.pt", weights_only=True)["model"]
    model = build_detector(tiny(scenes, backbone_run=str(retrain_run)), 10, 1, [0.5], [0.25])
    body = model.backbone.features.body.state_dict()
    kept = [k for k in state if not k.startswith("classifier.")]
    assert kept and all(torch.equal(body[k], state[k]) for k in kept)
    fresh = build_detector(tiny(scenes), 10, 1, [0.5], [0.25]).backbone.features.body.state_dict()
    assert not all(torch.equal(fresh[k], state[k]) for k in kept if state[k].is_floating_point())


def test_a_mismatched_checkpoint_names_the_first_differing_key(retrain_run, tmp_path):
    sp = get_space("nb201")
    net = sp.build_network(sp.parse(NB201_CELL), NetworkSpec(channels=8, cells_per_stage=1, in_channels=1))
    state = torch.load(retrain_run / "last.pt", weights_only=True)["model"]
    with pytest.raises(GenasError, match=r"first differing key: stem\.0\.weight, shape"):
        load_backbone_weights(net, state, retrain_run / "last.pt")
    small = sp.build_network(sp.parse(NB201_CELL), NetworkSpec(channels=4, cells_per_stage=1, in_channels=1))
    del state["cells.0.edges.0.1.weight"]
    with pytest.raises(GenasError, match=r"cells\.0\.edges\.0\.1\.weight, missing from the checkpoint"):
        load_backbone_weights(small, state, retrain_run / "last.pt")


# --- COCO evaluation ---------------------------------------------------------------------------------------

def _gt(scenes: Path) -> dict:
    return json.loads((scenes / "val.json").read_text())


def test_ground_truth_as_predictions_scores_100(scenes):
    gt = _gt(scenes)
    preds = [dict(image_id=a["image_id"], category_id=a["category_id"], bbox=a["bbox"], score=1.0)
             for a in gt["annotations"]]
    m = coco_summary(gt, preds)
    assert set(m) == set(SUMMARY_KEYS)
    assert m["AP"] == 100.0 and m["AP50"] == 100.0 and m["AP75"] == 100.0 and m["AR100"] == 100.0


@pytest.mark.parametrize("change,message", [
    (dict(score=float("nan")), "finite score"),
    (dict(bbox=[1.0, 2.0, -3.0, 4.0]), "w and h >= 0"),
    (dict(image_id=True), "unknown image_id"),
    (dict(image_id=[1]), "unknown image_id"),
    (dict(category_id=999), "unknown category_id"),
])
def test_bad_predictions_file_is_one_line(scenes, tmp_path, capsys, change, message):
    gt = _gt(scenes)
    a = gt["annotations"][0]
    preds = [{**dict(image_id=a["image_id"], category_id=a["category_id"], bbox=a["bbox"], score=1.0), **change}]
    (tmp_path / "p.json").write_text(json.dumps(preds))
    code = main(["detect", "eval", "--predictions", str(tmp_path / "p.json"), "--val-annotations",
                 str(scenes / "val.json"), "-o", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("genas: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "ev").exists()


def test_predictions_are_scored_against_checked_annotations(scenes, tmp_path, capsys):
    """Without an image folder the annotations are still checked record by record."""
    gt = _gt(scenes)
    del gt["annotations"][0]["id"]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "p.json").write_text("[]")
    code = main(["detect", "eval", "--predictions", str(tmp_path / "p.json"), "--val-annotations",
                 str(tmp_path / "gt.json"), "-o", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert code == 2 and "annotations[0]" in err and "integer 'id'" in err and err.count("\n") == 1, err


def test_our_summary_equals_pycocotools(scenes):
    pytest.importorskip("pycocotools")
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = _gt(scenes)
    rng = np.random.default_rng(0)
    preds = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        jitter = rng.normal(0, 0.15, 4) * [w, h, w, h]
        cat = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 11))
        preds.append(dict(image_id=a["image_id"], category_id=cat, bbox=[x + jitter[0], y + jitter[1],
                      max(1.0, w + jitter[2]), max(1.0, h + jitter[3])], score=float(rng.random())))
    for img in gt["images"]:  # false positives
        for _ in range(3):
            preds.append(dict(image_id=img["id"], category_id=int(rng.integers(1, 11)),
                              bbox=[float(v) for v in rng.uniform(0, 40, 4) + [0, 0, 4, 4]], score=float(rng.random())))
    ours = coco_summary(gt, preds)
    with contextlib.redirect_stdout(io.StringIO()):
        ref_gt = COCO()
        ref_gt.dataset = copy.deepcopy(gt)
        ref_gt.createIndex()
        ev = COCOeval(ref_gt, ref_gt.loadRes(copy.deepcopy(preds)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for key, ref in zip(SUMMARY_KEYS, ev.stats):
        if ref < 0:
            assert ours[key] is None, key
        else:
            assert abs(ours[key] / 100 - ref) < 1e-6, (key, ours[key], ref)
    assert 5 < ours["AP"] < 95  # a real comparison, not a trivial one


def test_a_run_without_detections_scores_zero(scenes):
    m = coco_summary(_gt(scenes), [])
    assert m["AP"] == 0.0 and m["AR100"] == 0.0


# --- end to end ------------------------------------------------------------------------------------------

def test_tiny_make_data_train_eval_through_the_cli(scenes, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["detect", "make-data", "-o", str(data), "--dataset", "synthetic", "--train-scenes", "12",
                 "--val-scenes", "4", "--image-size", "64", "--min-side", "12", "--max-side", "40"]) == 0
    assert json.loads((data / "train.json").read_text())["categories"][0] == dict(id=1, name="class_0",
                                                                                  supercategory="item")
    run = tmp_path / "run"
    assert main(["detect", "train", "--preset", "tiny", "--data", str(data), "--max-train-images", "8",
                 "--epochs", "1", "-o", str(run), "--no-progress", "--device", "cpu"]) == 0
    result = json.loads((run / "result.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(metrics) and result["metrics"]["AP"] == metrics["AP"]
    preds = json.loads((run / "predictions.json").read_text())
    per_image = {}
    for p in preds:
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
        assert set(p) == {"image_id", "category_id", "bbox", "score"}  # COCO results format, nothing added
    assert max(per_image.values(), default=0) <= 100
    assert result["backbone_params"] > 0 and result["detector_macs"] > result["backbone_macs"] > 0
    assert len(json.loads((run / "data.json").read_text())["image_mean"]) == 1  # grayscale stays 1 channel
    assert main(["detect", "eval", "--run", str(run), "-o", str(tmp_path / "ev"), "--device", "cpu"]) == 0
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {k: again[k] for k in SUMMARY_KEYS} == {k: metrics[k] for k in SUMMARY_KEYS}
    assert main(["detect", "eval", "--predictions", str(run / "predictions.json"), "--val-annotations",
                 str(data / "val.json"), "-o", str(tmp_path / "ev2")]) == 0
    assert json.loads((tmp_path / "ev2" / "metrics.json").read_text())["AP"] == metrics["AP"]
    capsys.readouterr()
    assert main(["detect", "train", "--resume", "-o", str(run), "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((run / "result.json").read_text()) == result


def test_data_loading_workers_give_the_same_weights(scenes, tmp_path):
    """--workers decodes the same seeded batches in other processes: same final weights."""
    cfg = tiny(scenes, epochs=1, max_train_images=8)
    here = train_detector(cfg, tmp_path / "w0", device="cpu", progress=False)
    there = train_detector(dataclasses.replace(cfg, workers=2), tmp_path / "w2", device="cpu", progress=False)
    assert here["final_digest"] == there["final_digest"]


def test_fcos_through_the_same_adaptor(scenes, tmp_path):
    r = train_detector(tiny(scenes, detector="fcos", epochs=1, max_train_images=4), tmp_path / "fcos", device="cpu",
                       progress=False)
    assert set(SUMMARY_KEYS) == set(r["metrics"])


def test_kill_and_resume_give_the_same_folder(scenes, tmp_path, monkeypatch):
    """Killed right after a mid-epoch checkpoint, an epoch's log line (before its checkpoint) and the
    predictions (before final.pt), the resumed run ends with the same files and weights."""
    cfg = tiny(scenes, epochs=2, max_train_images=12, checkpoint_every=2)
    ref = tmp_path / "ref"
    paths = []
    monkeypatch.setattr(genas.io, "_durable", lambda path: paths.append(Path(path).name))
    train_detector(cfg, ref, device="cpu", progress=False)
    monkeypatch.setattr(genas.io, "_durable", lambda path: None)
    expected = kp.snapshot(ref)
    assert paths.count("checkpoint.pt") == 4  # after steps 2 and 5, after each of the 2 epochs
    points = [paths.index("checkpoint.pt") + 1, paths.index("log.jsonl") + 1, paths.index("predictions.json") + 1]
    for k in points:
        run = tmp_path / f"kill{k}"
        kp.kill_after(monkeypatch, k, lambda: train_detector(cfg, run, device="cpu", progress=False))
        train_detector(None, run, resume=True, device="cpu", progress=False)
        assert kp.snapshot(run) == expected, f"killed after write {k} ({paths[k - 1]})"


# --- bad input: one line each -----------------------------------------------------------------------------

def _broken(scenes: Path, tmp_path: Path, change) -> Path:
    """A copy of the scene set whose train.json ``change`` edits."""
    import shutil

    out = tmp_path / "bad"
    shutil.copytree(scenes, out)
    coco = json.loads((out / "train.json").read_text())
    change(coco)
    (out / "train.json").write_text(json.dumps(coco))
    return out


def _first_with_ann(coco):
    return coco["annotations"][0]


BAD_DATA = {
    "out of the image": (lambda c: _first_with_ann(c).update(bbox=[50.0, 50.0, 30.0, 5.0]), "lies outside"),
    "zero area": (lambda c: _first_with_ann(c).update(bbox=[5.0, 5.0, 0.0, 3.0]), "zero or negative area"),
    "negative area": (lambda c: _first_with_ann(c).update(bbox=[5.0, 5.0, 4.0, -3.0]), "zero or negative area"),
    "unknown category": (lambda c: _first_with_ann(c).update(category_id=99), "unknown category_id 99"),
    "unknown image": (lambda c: _first_with_ann(c).update(image_id=12345), "unknown image_id 12345"),
    "missing file": (lambda c: c["images"][0].update(file_name="nope.png"), "nope.png not found"),
    "duplicate image id": (lambda c: c["images"][1].update(id=c["images"][0]["id"]), "duplicate image id"),
    "duplicate annotation id": (lambda c: c["annotations"][1].update(id=c["annotations"][0]["id"]),
                                "duplicate annotation id"),
    "duplicate category id": (lambda c: c["categories"][1].update(id=c["categories"][0]["id"]),
                              "duplicate category id"),
    "bad bbox": (lambda c: _first_with_ann(c).update(bbox=[1, 2, 3]), "bbox must be 4 numbers"),
    "no area inside the image": (lambda c: _first_with_ann(c).update(bbox=[_width_of_first(c) + 0.2, 5.0, 0.2, 3.0]),
                                 "no area left inside"),
}


def _width_of_first(coco):
    ann = _first_with_ann(coco)
    return next(img["width"] for img in coco["images"] if img["id"] == ann["image_id"])


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_annotations_are_one_line(case, scenes, tmp_path, capsys):
    change, message = BAD_DATA[case]
    data = _broken(scenes, tmp_path, change)
    run = tmp_path / "run"
    code = main(["detect", "train", "--preset", "tiny", "--data", str(data), "-o", str(run), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("genas: error: ") and err.count("\n") == 1, err
    assert message in err and "train.json" in err and ("annotations[" in err or "images[" in err
                                                        or "categories[" in err), err
    assert not run.exists()


@pytest.mark.parametrize("args,message", [
    (["--image-mean", "0.5,0.5,0.5", "--image-std", "0.2"], "1 (grayscale) or 3 (RGB) values"),
    (["--image-mean", "0.5,0.5,0.5", "--image-std", "0.2,0.2,0.2"], "image mean/std have 3/3 values"),
    (["--fpn-levels", "6"], "--fpn-levels must be <= 5"),
    (["--genotype", "|bogus~0|"], "bad nb201 genotype"),
    (["--detections-per-img", "300"], "--detections-per-img must be <= 100"),
    (["--max-size", "32"], "must be >= --min-size"),
    (["--detector", "fcos", "--head-norm", "none"], "FCOS heads always use GroupNorm"),
    (["--backbone-run", "/nonexistent/run"], "does not exist"),
    (["--precision", "fp16"], "--precision fp16 needs a CUDA device"),
])
def test_bad_options_are_one_line(args, message, scenes, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["detect", "train", "--preset", "tiny", "--data", str(scenes), "-o", str(run), "--no-progress",
                 "--device", "cpu", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("genas: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not (run / "config.json").exists()


def test_a_bad_backbone_checkpoint_is_one_line(scenes, retrain_run, tmp_path, capsys):
    import shutil

    bad = tmp_path / "rt"
    shutil.copytree(retrain_run, bad)
    state = torch.load(bad / "last.pt", weights_only=True)
    state["model"]["stem.0.weight"] = torch.zeros(1)
    torch.save(state, bad / "last.pt")
    code = main(["detect", "train", "--preset", "tiny", "--data", str(scenes), "--backbone-run", str(bad), "-o",
                 str(tmp_path / "run"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "first differing key: stem.0.weight" in err, err


def test_the_run_pipeline_detection_step_uses_the_retrained_winner(scenes, retrain_run, tmp_path):
    """`genas run --detect PRESET`'s step: RUN/retrain's weights initialise RUN/detect's backbone."""
    import shutil

    from genas.detection.transfer import detect_winner

    run = tmp_path / "run"
    shutil.copytree(retrain_run, run / "retrain")
    result = detect_winner(run, "tiny", str(scenes), seed=0, device="cpu", progress=False)
    assert result["backbone"]["genotype"] == NB201_CELL and (run / "detect" / "metrics.json").exists()
    data = json.loads((run / "detect" / "data.json").read_text())
    assert data["image_mean"] == json.loads((retrain_run / "data.json").read_text())["mean"]
    assert detect_winner(run, "tiny", str(scenes), seed=0, device="cpu", progress=False) == result  # resumes


def test_rgb_scenes_load_as_three_channels(tmp_path):
    from genas.detection.data import CocoSet
    from genas.detection.model import build_detector

    rng = np.random.default_rng(0)
    items = rng.integers(0, 255, (20, 3, 16, 16), dtype=np.uint8)
    labels = np.arange(20) % 3
    make_scenes(tmp_path, SceneSpec(dataset="rgb", train_scenes=2, val_scenes=2, image_size=64, min_side=12,
                                    max_side=32), items, labels, items, labels, ["a", "b", "c"])
    s = CocoSet.load(tmp_path / "val", tmp_path / "val.json")
    img, target = s[0]
    assert s.channels == 3 and tuple(img.shape) == (3, 64, 64) and target["boxes"].shape[1] == 4
    model = build_detector(detect_config("tiny", data=str(tmp_path)), 3, 3, *s.mean_std()).eval()
    with torch.no_grad():
        out = model([img.float() / 255])
    assert out[0]["boxes"].shape[1] == 4 and len(out[0]["boxes"]) <= 100
    with pytest.raises(GenasError, match="1/1 values but the images have 3"):
        build_detector(detect_config("tiny", data=str(tmp_path)), 3, 3, [0.5], [0.2])


def test_empty_images_have_boxes_of_shape_0_4_and_train(tmp_path):
    from genas.detection.data import CocoSet
    from genas.detection.model import build_detector

    items = np.full((4, 1, 16, 16), 200, dtype=np.uint8)
    make_scenes(tmp_path, SceneSpec(dataset="x", train_scenes=2, val_scenes=1, image_size=64, min_side=12, max_side=32,
                                    empty_fraction=1.0), items, np.zeros(4, int), items, np.zeros(4, int), ["a"])
    s = CocoSet.load(tmp_path / "train", tmp_path / "train.json")
    targets = [s[i][1] for i in range(len(s))]
    assert all(tuple(t["boxes"].shape) == (0, 4) and tuple(t["labels"].shape) == (0,) for t in targets)
    model = build_detector(detect_config("tiny", data=str(tmp_path)), 1, 1, [0.5], [0.25]).train()
    losses = model([s[i][0].float() / 255 for i in range(len(s))],
                   [dict(boxes=t["boxes"], labels=t["labels"]) for t in targets])
    assert all(torch.isfinite(v) for v in losses.values())
    assert coco_summary(json.loads((tmp_path / "val.json").read_text()), [])["AP"] is None  # no ground truth at all
