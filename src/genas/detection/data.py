"""Detection data: COCO-format datasets from disk, their validation, and the embedded scene set.

A dataset is a folder of images plus a COCO ``instances`` JSON (``images``, ``annotations``,
``categories``), as torchvision's ``CocoDetection`` reads it. Every record is checked before any
training starts, so a bad file is one line naming the file and the record instead of a crash in
the middle of an epoch: boxes outside the image, zero or negative area, unknown image or category
ids, missing image files and duplicate ids.

:func:`make_scenes` writes the embedded default (``genas detect make-data``): seeded scenes of
items from an in-memory classification set (Fashion-MNIST by default), train-split items for the
train scenes and test-split items for the val scenes, several items per image at varied scales,
some overlapping (a box covers at most 30 % of a smaller one), some images empty, on a textured
background; category ids 1..K named after the
classes. An item's silhouette (its pixels above 40 of 255) is pasted over the background and over
earlier items, and its box is the tight box of that silhouette, so it is exact (an earlier item's
box keeps its full extent when a later one covers part of it, as an amodal box).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GenasError
from ..io import atomic_write, load_json, save_json

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
BOX_TOLERANCE = 0.5  # px a box may pass the image border (rounding in other tools); it is clipped
# the make-data layout: DIR/train/, DIR/train.json, DIR/val/, DIR/val.json, DIR/make-data.json
SCENES_META = "make-data.json"
# COCO's area buckets (px^2 of the original image), as faster-coco-eval and pycocotools use them
AREA_BUCKETS = dict(small=(0.0, 32.0 ** 2), medium=(32.0 ** 2, 96.0 ** 2), large=(96.0 ** 2, math.inf))


def layout(root: str | Path) -> dict[str, Path]:
    """The four paths of a make-data folder."""
    root = Path(root)
    return dict(train_images=root / "train", train_annotations=root / "train.json", val_images=root / "val",
                val_annotations=root / "val.json")


# --- validation ------------------------------------------------------------------------------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


RECORD_NOUN = {"categories": "category", "images": "image", "annotations": "annotation"}


def _records(coco: dict, key: str, ann_file: Path):
    """``(where, record)`` of each record of ``coco[key]``, each checked to be an object with an integer
    ``id`` not seen before in that list; ``where`` names the file, the list, the index and the id."""
    seen: set[int] = set()
    for i, rec in enumerate(coco[key]):
        where = f"{ann_file}: {key}[{i}]"
        if not isinstance(rec, dict) or not _is_id(rec.get("id")):
            raise GenasError(f"{where}: needs an integer 'id'")
        if rec["id"] in seen:
            raise GenasError(f"{where} (id {rec['id']}): duplicate {RECORD_NOUN[key]} id {rec['id']}")
        seen.add(rec["id"])
        yield f"{where} (id {rec['id']})", rec


def read_annotations(ann_file: str | Path, images_dir: str | Path | None) -> dict:
    """The instances JSON, checked record by record; an error is one line naming the file and record.
    ``images_dir`` None: the annotations alone (scoring a predictions file), image files not looked for."""
    ann_file = Path(ann_file)
    images_dir = None if images_dir is None else Path(images_dir)
    if images_dir is not None and not images_dir.is_dir():
        raise GenasError(f"image folder {images_dir} does not exist or is not a folder")
    coco = load_json(ann_file)
    if not isinstance(coco, dict):
        raise GenasError(f"{ann_file}: not a COCO instances file (expected a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise GenasError(f"{ann_file}: not a COCO instances file (no '{key}' list)")
    cats = {c["id"]: str(c.get("name", c["id"])) for _, c in _records(coco, "categories", ann_file)}
    if not cats:
        raise GenasError(f"{ann_file}: no categories")
    images: dict[int, dict] = {}
    for where, img in _records(coco, "images", ann_file):
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise GenasError(f"{where}: needs a 'file_name'")
        for key in ("width", "height"):
            if not _is_id(img.get(key)) or img[key] < 1:
                raise GenasError(f"{where}: needs a positive integer '{key}'")
        if images_dir is not None and not (images_dir / img["file_name"]).is_file():
            raise GenasError(f"{where}: image file {images_dir / img['file_name']} not found")
        images[img["id"]] = img
    for where, a in _records(coco, "annotations", ann_file):
        if a.get("image_id") not in images:
            raise GenasError(f"{where}: unknown image_id {a.get('image_id')!r}")
        if a.get("category_id") not in cats:
            raise GenasError(f"{where}: unknown category_id {a.get('category_id')!r}; known: "
                             f"{', '.join(map(str, sorted(cats)))}")
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))):
            raise GenasError(f"{where}: bbox must be 4 numbers [x, y, width, height], got {box!r}")
        x, y, w, h = box
        if w <= 0 or h <= 0:
            raise GenasError(f"{where}: bbox {box} has zero or negative area")
        img = images[a["image_id"]]
        t = BOX_TOLERANCE
        if x < -t or y < -t or x + w > img["width"] + t or y + h > img["height"] + t:
            raise GenasError(f"{where}: bbox {box} lies outside its {img['width']}x{img['height']} image "
                             f"{img['file_name']}")
        x1, y1, x2, y2 = (float(np.float32(v)) for v in (max(x, 0), max(y, 0), min(x + w, img["width"]),
                                                           min(y + h, img["height"])))
        if not (x2 > x1 and y2 > y1):  # what training sees: clipped to the image, in float32
            raise GenasError(f"{where}: bbox {box} has no area left inside its {img['width']}x{img['height']} image")
        if "area" in a and not _is_number(a["area"]):
            raise GenasError(f"{where}: area must be a number, got {a['area']!r}")
    return coco


# --- the dataset -----------------------------------------------------------------------------------

@dataclass
class CocoSet:
    """A validated COCO-format split: images decoded on demand (and cached when they are few)."""

    images_dir: Path
    ann_file: Path
    coco: dict
    channels: int = 0  # 1 (grayscale) or 3 (RGB): the mode of the first image; others are converted
    cache: bool = True
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, images_dir: str | Path, ann_file: str | Path, cache_limit_px: int = 400_000_000) -> "CocoSet":
        coco = read_annotations(ann_file, images_dir)
        if not coco["images"]:
            raise GenasError(f"{ann_file}: no images")
        s = cls(Path(images_dir), Path(ann_file), coco)
        s.ids = [img["id"] for img in coco["images"]]
        s.by_id = {img["id"]: img for img in coco["images"]}
        s.cat_ids = sorted(c["id"] for c in coco["categories"])
        s.label_of = {c: i for i, c in enumerate(s.cat_ids)}  # contiguous labels 0..K-1 for the detector
        s.anns: dict[int, list[dict]] = {i: [] for i in s.ids}
        for a in coco["annotations"]:
            s.anns[a["image_id"]].append(a)
        first = s._open(s.ids[0])
        s.channels = 1 if first.mode in ("L", "LA", "I", "I;16", "F", "1") else 3
        pixels = sum(img["width"] * img["height"] for img in coco["images"]) * s.channels
        s.cache = pixels <= cache_limit_px
        return s

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return len(self.cat_ids)

    def category_names(self) -> list[str]:
        names = {c["id"]: str(c.get("name", c["id"])) for c in self.coco["categories"]}
        return [names[c] for c in self.cat_ids]

    def _open(self, image_id: int):
        from PIL import Image

        img = self.by_id[image_id]
        path = self.images_dir / img["file_name"]
        try:
            pil = Image.open(path)
            pil.load()
        except (OSError, ValueError) as exc:
            raise GenasError(f"cannot read image {path} (image id {image_id} of {self.ann_file}): "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if pil.size != (img["width"], img["height"]):
            raise GenasError(f"{self.ann_file}: image id {image_id} is recorded as {img['width']}x{img['height']} "
                             f"but {path} is {pil.size[0]}x{pil.size[1]}")
        return pil

    def image(self, image_id: int):
        """uint8 tensor C x H x W."""
        import torch

        if image_id in self._cache:
            return self._cache[image_id]
        pil = self._open(image_id).convert("L" if self.channels == 1 else "RGB")
        x = torch.from_numpy(np.asarray(pil, dtype=np.uint8).copy())
        x = x[None] if x.ndim == 2 else x.permute(2, 0, 1).contiguous()
        if self.cache:
            self._cache[image_id] = x
        return x

    def target(self, image_id: int) -> dict:
        """Boxes (x1, y1, x2, y2; shape (n, 4), (0, 4) for an empty image) and contiguous labels;
        crowd annotations are left to the evaluation, as in torchvision's references."""
        import torch

        img = self.by_id[image_id]
        rows = [a for a in self.anns[image_id] if not a.get("iscrowd", 0)]
        boxes = torch.tensor([a["bbox"] for a in rows], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img["width"])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img["height"])
        labels = torch.tensor([self.label_of[a["category_id"]] for a in rows], dtype=torch.int64)
        return dict(boxes=boxes, labels=labels, image_id=image_id)

    def __getitem__(self, i: int):
        image_id = self.ids[i]
        return self.image(image_id), self.target(image_id)

    def mean_std(self, limit: int = 256) -> tuple[list[float], list[float]]:
        """Per-channel mean/std (0-1 scale) of the first ``limit`` images: a deterministic estimate."""
        import torch

        xs = [self.image(i).float().div(255).flatten(1) for i in self.ids[:limit]]
        x = torch.cat(xs, dim=1)
        return [round(float(v), 4) for v in x.mean(1)], [round(float(max(v, 1e-3)), 4) for v in x.std(1)]

    def describe(self) -> dict:
        """What a run records about its data (``data.json``): paths, counts and a content digest of the
        annotations (image files are identified by name, not hashed)."""
        h = hashlib.sha256(json.dumps(self.coco, sort_keys=True).encode()).hexdigest()
        return dict(images=str(self.images_dir), annotations=str(self.ann_file), n_images=len(self.ids),
                    n_annotations=len(self.coco["annotations"]), num_classes=self.num_classes, channels=self.channels,
                    categories=self.category_names(), annotations_sha256=h)


def collate(batch):
    return tuple(zip(*batch))


# --- the embedded scene set ------------------------------------------------------------------------

def _background(rng: np.random.Generator, size: int, channels: int) -> np.ndarray:
    """A smooth random texture (a bilinearly upsampled coarse grid) plus fine grain, dark enough that
    items stand out, different in every image."""
    import torch

    coarse = rng.uniform(0, 60, size=(1, channels, 6, 6)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(size, size), mode="bilinear",
                                             align_corners=False)[0].numpy()
    grain = rng.normal(0, 8, size=(channels, size, size)).astype(np.float32)
    stripes = 10 * np.sin(np.arange(size, dtype=np.float32) * rng.uniform(0.2, 0.9) + rng.uniform(0, 6.3))
    smooth += stripes[None, :, None] if rng.random() < 0.5 else stripes[None, None, :]
    return np.clip(smooth + grain, 0, 255)


def _overlap(a, b) -> float:
    """Intersection over the smaller box's area: 1 when one box lies inside the other (IoU would let
    a small item hide completely under a large one)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / smaller if smaller > 0 else 0.0


def _scenes(items: np.ndarray, labels: np.ndarray, n: int, size: int, rng: np.random.Generator,
            max_items: int, empty_fraction: float, scale: tuple[int, int], max_overlap: float):
    """Yield (image C x H x W uint8, [(x, y, w, h, label), ...]) per scene."""
    import torch

    channels = items.shape[1]
    lo, hi = math.log(scale[0]), math.log(scale[1])
    for _ in range(n):
        canvas = _background(rng, size, channels)
        boxes: list[tuple] = []
        k = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_items + 1))
        for _ in range(k):
            idx = int(rng.integers(0, len(items)))
            side = int(round(math.exp(rng.uniform(lo, hi))))
            side = min(side, size)
            item = torch.nn.functional.interpolate(torch.from_numpy(items[idx][None].astype(np.float32)),
                                                   size=(side, side), mode="bilinear", align_corners=False)[0].numpy()
            mask = item.max(0) > 40.0
            if not mask.any():
                continue
            rows, cols = np.where(mask)
            y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            for _attempt in range(20):
                ox, oy = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
                box = (ox + x0, oy + y0, ox + x1, oy + y1)
                if all(_overlap(box, b[:4]) <= max_overlap for b in boxes):
                    break
            else:
                continue
            region = canvas[:, oy:oy + side, ox:ox + side]
            contrast = rng.uniform(0.75, 1.0)
            np.copyto(region, item * contrast, where=mask[None])  # the item occludes what lies under it
            boxes.append((*box, int(labels[idx])))
        out = [(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]), b[4]) for b in boxes]
        yield np.clip(np.rint(canvas), 0, 255).astype(np.uint8), out


@dataclass(frozen=True)
class SceneSpec:
    """The knobs of the embedded scene set (recorded in ``make-data.json``)."""

    dataset: str = "fashion-mnist"
    train_scenes: int = 6000
    val_scenes: int = 500
    image_size: int = 128
    max_items: int = 5
    empty_fraction: float = 0.05
    min_side: int = 20  # side of the pasted 28x28 item (the item itself fills most of it)
    max_side: int = 128
    max_overlap: float = 0.3  # items overlap, but cover at most this share of the smaller one's box
    seed: int = 0


def make_scenes(out: str | Path, spec: SceneSpec, train_items, train_labels, test_items, test_labels,
                class_names: list[str], source: dict | None = None) -> dict:
    """Write the scene set into ``out`` (train/, train.json, val/, val.json, then make-data.json, the
    mark of a complete set, once; ``source``: what the items came from, recorded in it)."""
    from PIL import Image

    import dataclasses

    out = Path(out)
    meta: dict[str, Any] = dict(spec=dataclasses.asdict(spec), splits={})
    categories = [dict(id=i + 1, name=name, supercategory="item") for i, name in enumerate(class_names)]
    for split, items, labels, n, key in (("train", train_items, train_labels, spec.train_scenes, 1),
                                         ("val", test_items, test_labels, spec.val_scenes, 2)):
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, key]))
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        buckets = {k: 0 for k in AREA_BUCKETS}
        for i, (img, boxes) in enumerate(_scenes(np.asarray(items), np.asarray(labels), n, spec.image_size, rng,
                                                 spec.max_items, spec.empty_fraction,
                                                 (spec.min_side, spec.max_side), spec.max_overlap)):
            name = f"{i:06d}.png"
            pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
            atomic_write(folder / name, lambda f, pil=pil: pil.save(f, format="PNG"))
            images.append(dict(id=i + 1, file_name=name, width=spec.image_size, height=spec.image_size))
            for x, y, w, h, label in boxes:
                area = w * h
                buckets[next(k for k, (a, b) in AREA_BUCKETS.items() if a <= area < b)] += 1
                anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=label + 1, bbox=[x, y, w, h],
                                 area=area, iscrowd=0))
        save_json(dict(info=dict(description=f"genas scenes of {spec.dataset} items ({split})", seed=spec.seed),
                       images=images, annotations=anns, categories=categories), out / f"{split}.json")
        meta["splits"][split] = dict(images=len(images), annotations=len(anns),
                                     empty_images=len(images) - len({a["image_id"] for a in anns}),
                                     objects_per_area_bucket=buckets)
    if source is not None:
        meta["source"] = source
    save_json(meta, out / SCENES_META)
    return meta


def make_data(out: str | Path, spec: SceneSpec, data_dir: str | None = None, force: bool = False) -> dict:
    """``genas detect make-data``: scenes of ``spec.dataset``'s items (an in-memory dataset of
    :data:`genas.data.DATASETS`) written into a new folder ``out``."""
    from ..data import load_data
    from ..run_folder import check_new_output

    for name in ("train_scenes", "val_scenes", "image_size", "max_items"):
        if getattr(spec, name) < 1:
            raise GenasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(spec, name)}")
    if not 0 <= spec.empty_fraction <= 1 or not 0 <= spec.max_overlap <= 1:
        raise GenasError("--empty-fraction and --max-overlap must lie in [0, 1]")
    if spec.min_side < 4 or spec.max_side < spec.min_side or spec.max_side > spec.image_size:
        raise GenasError(f"need 4 <= --min-side <= --max-side <= --image-size, got {spec.min_side}, {spec.max_side}, "
                         f"{spec.image_size}")
    out = check_new_output(out, force)
    data = load_data(spec.dataset, data_dir)
    if not hasattr(data.train, "x"):
        raise GenasError(f"make-data needs an in-memory dataset (fashion-mnist, cifar10, cifar100, synthetic), not "
                         f"{spec.dataset}")
    names = list(FASHION_MNIST_CLASSES) if spec.dataset == "fashion-mnist" else [
        f"class_{k}" for k in range(data.num_classes)]
    return make_scenes(out, spec, data.train.x.numpy(), data.train.y.numpy(), data.test.x.numpy(),
                       data.test.y.numpy(), names, source=data.describe())


__all__ = ["AREA_BUCKETS", "CocoSet", "FASHION_MNIST_CLASSES", "SCENES_META", "SceneSpec", "collate", "layout",
           "make_data", "make_scenes", "read_annotations"]
