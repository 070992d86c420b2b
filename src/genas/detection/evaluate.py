"""COCO evaluation with faster-coco-eval: predictions in COCO results format and the 12-number summary.

faster-coco-eval (1.8) computes the same summary as pycocotools (a test checks equality to 1e-6
on the same predictions) several times faster, and scores a run without any detection, where
pycocotools crashes. Numbers are percent, as in the paper's table; a number COCO reports as -1
(no ground truth in that area bucket) is ``None``.

Area buckets are COCO's, in px^2 of the original image: small < 32^2, medium 32^2-96^2,
large > 96^2. They are absolute sizes, so on small images (the embedded scenes are 128 px) they
say how large an item is on its canvas, not what "small" means on a 640-px COCO photograph.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
from typing import Iterable

import torch

from ..errors import GenasError

# the 12 numbers of COCOeval.summarize(), in its order
SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
MAX_DETECTIONS = 100


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, indices: Iterable[int], batch_size: int, device: torch.device,
            progress=None) -> list[dict]:
    """COCO results (image_id, category_id, bbox [x, y, w, h], score) of ``dataset[indices]``, at most
    :data:`MAX_DETECTIONS` per image, the highest scores kept."""
    model.eval()
    indices = list(indices)
    out: list[dict] = []
    cat_ids = dataset.cat_ids
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        items = [dataset[i] for i in chunk]
        images = [img.to(device).float().div_(255) for img, _ in items]
        for (img, target), det in zip(items, model(images)):
            order = det["scores"].argsort(descending=True, stable=True)[:MAX_DETECTIONS]
            boxes = det["boxes"][order].cpu()
            boxes[:, 2:] -= boxes[:, :2]
            for box, score, label in zip(boxes.tolist(), det["scores"][order].tolist(), det["labels"][order].tolist()):
                out.append(dict(image_id=int(target["image_id"]), category_id=int(cat_ids[label]),
                                bbox=[round(v, 3) for v in box], score=round(float(score), 5)))
        if progress is not None:
            progress(len(chunk))
    return out


def coco_summary(gt: dict, predictions: list[dict], image_ids: list[int] | None = None) -> dict:
    """The 12-number COCO bbox summary (percent) of ``predictions`` against the ground-truth dict
    ``gt``; ``image_ids`` restricts it to those images."""
    from faster_coco_eval import COCO, COCOeval_faster

    logging.getLogger("faster_coco_eval").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(_with_area(gt))
        # loadRes adds area/id/iscrowd/segmentation to the dicts it gets: give it copies, so the
        # caller's list stays in COCO results format (it is what predictions.json holds)
        coco_dt = coco_gt.loadRes([dict(p) for p in predictions]) if predictions else COCO()
        if not predictions:
            coco_dt.dataset = dict(images=gt["images"], categories=gt["categories"], annotations=[])
            coco_dt.createIndex()
        ev = COCOeval_faster(coco_gt, coco_dt, "bbox", print_function=lambda *a, **k: None)
        if image_ids is not None:
            ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(v) for v in ev.stats[:12]]
    return {k: (None if v < 0 else round(100.0 * v, 4)) for k, v in zip(SUMMARY_KEYS, stats)}


def _with_area(gt: dict) -> dict:
    """COCO evaluation buckets by the annotation's ``area``; records without one get w x h."""
    if all("area" in a for a in gt["annotations"]):
        return gt
    anns = [a if "area" in a else {**a, "area": float(a["bbox"][2] * a["bbox"][3])} for a in gt["annotations"]]
    return {**gt, "annotations": anns}


def _is_key(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_predictions(predictions, gt: dict, where) -> list[dict]:
    """A COCO results list: known image and category ids, 4-number boxes, a score; at most 100 per image."""
    if not isinstance(predictions, list):
        raise GenasError(f"{where}: not a COCO results list")
    images = {img["id"] for img in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    per_image: dict[int, int] = {}
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    for i, p in enumerate(predictions):
        if not isinstance(p, dict):
            raise GenasError(f"{where}: record {i} is not an object")
        for key, known in (("image_id", images), ("category_id", cats)):
            if not _is_key(p.get(key)) or p[key] not in known:
                raise GenasError(f"{where}: record {i} has an unknown {key} {p.get(key)!r}")
        box = p.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(map(number, box))) or box[2] < 0 or box[3] < 0:
            raise GenasError(f"{where}: record {i} needs bbox [x, y, w, h] of finite numbers, w and h >= 0")
        if not number(p.get("score")):
            raise GenasError(f"{where}: record {i} needs a finite score")
        per_image[p["image_id"]] = per_image.get(p["image_id"], 0) + 1
    worst = max(per_image.values(), default=0)
    if worst > MAX_DETECTIONS:
        raise GenasError(f"{where}: an image has {worst} detections; COCO scores at most {MAX_DETECTIONS}")
    return predictions


__all__ = ["MAX_DETECTIONS", "SUMMARY_KEYS", "check_predictions", "coco_summary", "predict"]
