"""``genas detect train`` and ``genas detect eval``: a detector in a run folder, and its COCO scores.

Run folder (only rank 0 writes):

* ``config.json``       the resolved :class:`~genas.detection.config.DetectConfig`
* ``data.json``         both splits (paths, counts, categories, a digest of each annotation file) and
                        the image mean/std used
* ``log.jsonl``         one line per epoch: lr, losses, seconds, images/s (and the COCO summary when
                        evaluated that epoch)
* ``checkpoint.pt``     full state (model, optimizer, next epoch and step, partial loss sums) after
                        every epoch and every ``checkpoint_every`` steps: the commit point, so a kill
                        at any moment resumes exactly (``--resume``)
* ``predictions.json``  COCO results of the final model on the validation split (<= 100 per image)
* ``metrics.json``      the 12-number COCO summary in percent (AP, AP50, AP75, APs, APm, APl, AR...)
* ``final.pt``          the model ``state_dict``
* ``result.json``       written last: metrics, params and MACs, seconds, images/s, weights digest

Randomness (data order, flips) is derived from (seed, epoch, step), the global batch is drawn the
same for any number of ranks and split across them, and the learning rate is a function of the
step, so a resumed run ends with the same weights as an uninterrupted one (bitwise on CPU with the
same thread count).
"""
from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path

import torch

from .. import seeding
from ..engine.checkpoint import load_checkpoint, load_into, load_torch, save_torch
from ..engine.distributed import DistContext, training_session
from ..engine.loop import bar_disabled, wrap_ddp
from ..engine.precision import TrainPrecision, check_precision, deterministic_mode
from ..engine.step import sgd_step
from ..errors import GenasError
from ..io import append_jsonl, load_json, read_jsonl, save_json
from ..options import defaults, may_change, to_dict
from ..run_folder import RunFolder, check_new_output
from .config import (CHECKPOINT, CONFIG, DATA, FINAL, LOG, METRICS, PREDICTIONS, RESULT, DetectConfig,
                     load_detect_config, lr_at)
from .data import CocoSet
from .evaluate import check_predictions, coco_summary, predict
from .model import backbone_cost, build_detector

log = logging.getLogger("genas")
STATE_KEYS = ("model", "optimizer", "next_epoch", "next_step", "sums")
LOSS_KEYS = ("classification", "bbox_regression", "bbox_ctrness")


def load_splits(cfg: DetectConfig) -> tuple[CocoSet, CocoSet]:
    """The validated train and val splits; they must share categories and channel count."""
    p = cfg.paths()
    train = CocoSet.load(p["train_images"], p["train_annotations"])
    val = CocoSet.load(p["val_images"], p["val_annotations"])
    if train.cat_ids != val.cat_ids:
        raise GenasError(f"{p['train_annotations']} and {p['val_annotations']} have different category ids "
                         f"({train.cat_ids} vs {val.cat_ids})")
    if train.channels != val.channels:
        raise GenasError(f"the train images have {train.channels} channel(s) and the val images {val.channels}")
    return train, val


def _image_stats(cfg: DetectConfig, train: CocoSet, arch_mean, arch_std) -> tuple[list[float], list[float]]:
    if cfg.image_mean is not None:
        return list(cfg.image_mean), list(cfg.image_std)
    if arch_mean is not None and len(arch_mean) == train.channels:
        return list(arch_mean), list(arch_std)
    return train.mean_std()


def _warn_resize(cfg: DetectConfig, train: CocoSet) -> None:
    short = statistics.median(min(i["width"], i["height"]) for i in train.coco["images"])
    if cfg.min_size > 1.5 * short or cfg.min_size < short / 1.5:
        log.warning("genas: warning: images have a median shorter side of %d px and --min-size is %d: every image "
                    "is rescaled %.1fx before the backbone", short, cfg.min_size, cfg.min_size / short)


def _as_is(batch):
    return batch


class _StepBatches:
    """Global batch ``step`` of ``epoch``, this rank's share, decoded on the CPU (images uint8, targets):
    the order and the flips are drawn from (seed, epoch, step) alone."""

    def __init__(self, train: CocoSet, train_idx: list[int], cfg: DetectConfig, rank: int, world: int, epoch: int):
        self.train, self.train_idx, self.cfg, self.rank, self.world, self.epoch = train, train_idx, cfg, rank, world, epoch
        self.order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(
            seeding.derive_seed(cfg.seed, seeding.DATA, epoch)))

    def __len__(self) -> int:
        return len(self.train_idx) // self.cfg.batch_size

    def __getitem__(self, step: int):
        cfg = self.cfg
        idx = self.order[step * cfg.batch_size:(step + 1) * cfg.batch_size].tolist()
        flips = torch.rand(len(idx), generator=torch.Generator().manual_seed(
            seeding.derive_seed(cfg.seed, seeding.NOISE, self.epoch, step))) < 0.5
        images, targets = [], []
        for k in range(self.rank, len(idx), self.world):
            img, tgt = self.train[self.train_idx[idx[k]]]
            boxes = tgt["boxes"].clone()
            if cfg.hflip and bool(flips[k]):
                img = img.flip(-1)
                boxes[:, [0, 2]] = img.shape[-1] - boxes[:, [2, 0]]
            images.append(img)
            targets.append(dict(boxes=boxes, labels=tgt["labels"]))
        return images, targets


class _Session:
    def __init__(self, cfg: DetectConfig, out: Path, ctx: DistContext, progress, train: CocoSet, val: CocoSet,
                 mean, std):
        self.cfg, self.out, self.ctx, self.progress = cfg, out, ctx, progress
        self.train, self.val = train, val
        self.amp = TrainPrecision.make(cfg.precision, ctx.device, cfg.channels_last)
        self.model = self.amp.prepare(build_detector(cfg, train.num_classes, train.channels, mean, std).to(ctx.device))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "adamw":
            self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.SGD(self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        self.train_idx = list(range(len(train)))[: cfg.max_train_images]
        self.val_idx = list(range(len(val)))[: cfg.max_val_images]
        if cfg.batch_size % ctx.world:
            raise GenasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} distributed ranks")
        self.steps = len(self.train_idx) // cfg.batch_size
        if self.steps == 0:
            raise GenasError(f"{len(self.train_idx)} training images are fewer than one batch of {cfg.batch_size}; "
                             f"lower --batch-size")
        self.total = self.steps * cfg.epochs
        self.next_epoch, self.next_step, self.sums = 0, 0, {}

    def restore(self, state: dict) -> None:
        load_into(self.model, state["model"], self.out / CHECKPOINT, "the run's detector")
        self.opt.load_state_dict(state["optimizer"])
        self.next_epoch, self.next_step = int(state["next_epoch"]), int(state["next_step"])
        self.sums = dict(state["sums"]) if self.ctx.is_main else {}  # summed over the ranks when saved
        self.amp.load_state_dict(state.get("scaler"))

    def summed(self) -> dict:
        """The partial loss sums of the epoch over every rank (a collective: every rank calls it)."""
        keys = ("loss", "images") + LOSS_KEYS
        parts = self.ctx.all_gather({k: self.sums[k] for k in keys if k in self.sums})
        return {k: sum(p.get(k, 0.0) for p in parts) for k in keys if any(k in p for p in parts)}

    def checkpoint(self, sums: dict | None = None) -> None:
        """Rank 0 saves; ``sums``: the epoch's partial sums over every rank (none at an epoch's end)."""
        scaler = self.amp.state_dict()  # fp16 only: fp32 checkpoints keep their keys
        save_torch(dict(model=self.model.state_dict(), optimizer=self.opt.state_dict(), next_epoch=self.next_epoch,
                        next_step=self.next_step, sums=sums or {}, **({"scaler": scaler} if scaler else {})),
                   self.out / CHECKPOINT)

    def batches(self, epoch: int):
        """``(step, images, targets)`` of this rank for the rest of ``epoch``, on the device; decoded by
        ``workers`` DataLoader processes (0: in this process). A step's batch depends only on (seed,
        epoch, step), so any worker count and a resume give the same batches."""
        steps = _StepBatches(self.train, self.train_idx, self.cfg, self.ctx.rank, self.ctx.world, epoch)
        todo = range(self.next_step, self.steps)
        if self.cfg.workers:
            from torch.utils.data import DataLoader

            it = DataLoader(steps, batch_size=None, sampler=todo, num_workers=self.cfg.workers,
                            collate_fn=_as_is, persistent_workers=False)
        else:
            it = (steps[k] for k in todo)
        dev = self.ctx.device
        for step, (images, targets) in zip(todo, it):
            yield step, [x.to(dev).float().div_(255) for x in images], [
                {k: v.to(dev) for k, v in t.items()} for t in targets]

    def train_epoch(self, epoch: int, ddp) -> dict | None:
        """Train the rest of ``epoch``; returns its log record (None if a mid-epoch checkpoint was the last write)."""
        cfg, ctx = self.cfg, self.ctx
        from tqdm import tqdm

        self.model.train()
        t0 = time.perf_counter()
        bar = tqdm(total=self.steps, initial=self.next_step, desc=f"detect {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=bar_disabled(self.progress, ctx.is_main), dynamic_ncols=True)
        seen = 0
        for step, images, targets in self.batches(epoch):
            global_step = epoch * self.steps + step
            lr = lr_at(cfg, global_step, self.total)
            for group in self.opt.param_groups:
                group["lr"] = lr
            with self.amp.autocast():
                losses = ddp(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise GenasError(f"training diverged at epoch {epoch + 1} step {step + 1}: the loss became non-finite; "
                                 f"the last finite checkpoint is kept (lower --lr or set --grad-clip)")
            sgd_step(loss.float(), self.opt, self.params, cfg.grad_clip, self.amp.scaler)
            for k, v in losses.items():
                self.sums[k] = self.sums.get(k, 0.0) + float(v.detach()) * len(images)
            self.sums["loss"] = self.sums.get("loss", 0.0) + float(loss.detach()) * len(images)
            self.sums["images"] = self.sums.get("images", 0) + len(images)
            seen += len(images)
            bar.update(1)
            self.next_step = step + 1
            if cfg.checkpoint_every and (global_step + 1) % cfg.checkpoint_every == 0 and self.next_step < self.steps:
                summed = self.summed()  # every rank's partial sums, so a resume under any world size counts them once
                if ctx.is_main:
                    self.checkpoint(summed)
                ctx.barrier()
        bar.close()
        seconds = time.perf_counter() - t0
        ctx.broadcast_buffers(self.model)
        totals = self.summed()
        n = max(totals["images"], 1)
        record = dict(epoch=epoch, lr=lr_at(cfg, (epoch + 1) * self.steps - 1, self.total), loss=totals["loss"] / n)
        for k in LOSS_KEYS:
            if k in totals:
                record[f"loss_{k}"] = totals[k] / n
        record.update(seconds=round(seconds, 3), images_per_s=round(seen * ctx.world / max(seconds, 1e-9), 2))
        return record

    def evaluate(self) -> tuple[list[dict], dict, float]:
        """Predictions of every rank's shard, gathered; the COCO summary (on every rank)."""
        t0 = time.perf_counter()
        mine = self.val_idx[self.ctx.rank::self.ctx.world]
        preds = predict(self.model, self.val, mine, max(1, self.cfg.batch_size // self.ctx.world), self.ctx.device)
        gathered = [p for part in self.ctx.all_gather(preds) for p in part]
        gathered.sort(key=lambda p: (p["image_id"], -p["score"]))
        ids = [self.val.ids[i] for i in self.val_idx]
        metrics = coco_summary(self.val.coco, gathered, ids)
        return gathered, metrics, time.perf_counter() - t0


def _prepare(out: Path, cfg: DetectConfig | None, resume: bool) -> tuple[DetectConfig, dict | None]:
    folder = RunFolder(out, "detection run", CONFIG)
    if not folder.open(resume):
        if cfg is None:
            raise GenasError("detect train needs a config (or --resume to continue an existing run)")
        folder.require_empty()
        return cfg, None
    saved = load_detect_config(out)
    if cfg is not None:
        keep = may_change(DetectConfig)
        folder.check(to_dict(cfg), may_change=keep, defaults=defaults(DetectConfig))
        saved = dataclasses.replace(saved, **{k: getattr(cfg, k) for k in keep})
    state = load_checkpoint(out / CHECKPOINT, STATE_KEYS) if (out / CHECKPOINT).exists() else None
    return saved, state


def train_detector(cfg: DetectConfig | None, out_dir: str | Path, resume: bool = False, device: str = "auto",
                   progress: bool | None = None) -> dict:
    """Train ``cfg``'s detector into ``out_dir`` (or continue it with ``resume``; ``cfg`` may then be
    ``None``), evaluate it on the validation split, and return ``result.json``."""
    out = Path(out_dir)
    if cfg is not None:
        cfg.validate()
    with training_session(device) as ctx:
        if cfg is not None:
            check_precision(cfg.precision, ctx.device)  # before the folder is touched
        if resume and (out / RESULT).exists():
            if cfg is not None:
                RunFolder(out, "detection run", CONFIG).check(to_dict(cfg), may_change=may_change(DetectConfig),
                                                              defaults=defaults(DetectConfig))
            return load_json(out / RESULT)
        with RunFolder(out, "detection run", CONFIG).locked(ctx.is_main):
            return _train_locked(cfg, out, resume, ctx, progress)


def _check_data(recorded: dict, train: CocoSet, val: CocoSet, out: Path) -> None:
    for split, s in (("train", train), ("val", val)):
        was = recorded.get(split, {}).get("annotations_sha256")
        if was is not None and was != s.describe()["annotations_sha256"]:
            raise GenasError(f"{out} was made with other {split} annotations ({recorded[split]['annotations']}); "
                             f"pass the same data or use another folder")


def _train_locked(cfg, out: Path, resume: bool, ctx: DistContext, progress) -> dict:
    if ctx.is_main:  # rank 0 checks (and starts) the folder before the other ranks look at it
        cfg_main, state = _prepare(out, cfg, resume)
    ctx.barrier()
    if not ctx.is_main:
        cfg_main, state = _prepare(out, cfg, resume)
    cfg = cfg_main
    cfg.validate()
    check_precision(cfg.precision, ctx.device)
    with deterministic_mode(cfg.deterministic):
        return _train_session(cfg, out, resume, ctx, progress, state)


def _train_session(cfg: DetectConfig, out: Path, resume: bool, ctx: DistContext, progress, state) -> dict:
    train, val = load_splits(cfg)
    from .model import architecture

    arch = architecture(cfg)
    if (out / DATA).exists():
        recorded = load_json(out / DATA)
        _check_data(recorded, train, val, out)
        mean, std = recorded["image_mean"], recorded["image_std"]
    else:
        mean, std = _image_stats(cfg, train, arch.get("mean"), arch.get("std"))
    _warn_resize(cfg, train)
    s = _Session(cfg, out, ctx, progress, train, val, mean, std)
    if state is not None:
        s.restore(state)
    if ctx.is_main:
        if not (out / CONFIG).exists():
            save_json(to_dict(cfg), out / CONFIG)
        if not (out / DATA).exists():
            save_json(dict(train=train.describe(), val=val.describe(), image_mean=mean, image_std=std,
                           backbone=arch), out / DATA)
        if resume:
            RunFolder(out, "detection run").trim_log(LOG, lambda r: r.get("epoch", -1) < s.next_epoch)
    ctx.barrier()
    s.model.to(ctx.device)
    ddp = wrap_ddp(s.model, ctx, find_unused=True)
    for epoch in range(s.next_epoch, cfg.epochs):
        record = s.train_epoch(epoch, ddp)
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs:
            record["metrics"] = s.evaluate()[1]
        s.next_epoch, s.next_step, s.sums = epoch + 1, 0, {}
        if ctx.is_main:
            append_jsonl(record, out / LOG)
            s.checkpoint()
            if progress is not False:
                from tqdm import tqdm

                tqdm.write(f"detect {epoch + 1}/{cfg.epochs}  lr {record['lr']:.2e}  loss {record['loss']:.4f}  "
                           f"{record['images_per_s']} img/s")
        ctx.barrier()
    preds, metrics, eval_seconds = s.evaluate()
    digests = ctx.agreed_digests(s.model.state_dict())
    result = None
    if ctx.is_main:
        save_json(preds, out / PREDICTIONS)
        save_json(dict(metrics, images=len(s.val_idx), detections=len(preds)), out / METRICS)
        save_torch(s.model.state_dict(), out / FINAL)
        rows = read_jsonl(out / LOG)
        cost = backbone_cost(s.model, train.channels, cfg.min_size)
        train_s = sum(r.get("seconds", 0.0) for r in rows)
        result = dict(preset=cfg.preset, detector=cfg.detector, backbone=arch, metrics=metrics,
                      epochs=cfg.epochs, steps=s.total, train_images=len(s.train_idx), val_images=len(s.val_idx),
                      **cost, seconds=dict(train=round(train_s, 2), eval=round(eval_seconds, 2)),
                      images_per_s=dict(train=round(len(s.train_idx) * cfg.epochs / max(train_s, 1e-9), 2),
                                        eval=round(len(s.val_idx) / max(eval_seconds, 1e-9), 2)),
                      world_size=ctx.world, device=str(ctx.device), torch_threads=torch.get_num_threads(),
                      final_digest=digests[0])
        save_json(result, out / RESULT)
    ctx.barrier()
    return result if result is not None else dict(final_digest=digests[0])


# --- evaluation of a finished run, or of a predictions file -------------------------------------------

def evaluate_run(run: str | Path, out_dir: str | Path, *, val_images: str | None = None,
                 val_annotations: str | None = None, max_val_images: int | None = None,
                 predictions: str | None = None, batch_size: int = 16, device: str = "auto",
                 force: bool = False) -> dict:
    """Score a finished ``detect train`` run (its ``final.pt``) on its validation split or on
    ``val_images`` + ``val_annotations``; or score a ``predictions`` file (COCO results) against
    ``val_annotations`` without a model. Writes ``predictions.json`` and ``metrics.json`` into
    ``out_dir``; returns the metrics."""
    for name, value in (("--max-val-images", max_val_images), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise GenasError(f"{name} must be >= 1, got {value}")
    if (val_images is None) != (val_annotations is None) and predictions is None:
        raise GenasError("give both --val-images and --val-annotations (or neither, for the run's own split)")
    if run is None and predictions is None:
        raise GenasError("detect eval needs --run RUN (a finished detect train folder) or --predictions FILE")
    out = check_new_output(out_dir, force, inputs=[p for p in (run, predictions, val_annotations) if p])
    if predictions is not None:
        if val_annotations is None:
            if run is None:
                raise GenasError("--predictions needs --val-annotations (or --run, for the run's own split)")
            val_annotations = load_detect_config(run).paths()["val_annotations"]
        from .data import read_annotations

        gt = read_annotations(val_annotations, val_images)  # no image folder: the annotations alone
        preds = check_predictions(load_json(predictions), gt, predictions)
        ids = [img["id"] for img in gt["images"]][:max_val_images]
        metrics = coco_summary(gt, preds, ids)
    else:
        cfg = load_detect_config(run)
        if not (Path(run) / FINAL).exists():
            raise GenasError(f"{run} holds no final.pt; finish it with `genas detect train --resume -o {run}`")
        if val_images is not None:
            cfg = dataclasses.replace(cfg, data=None, train_images=val_images, train_annotations=val_annotations,
                                      val_images=val_images, val_annotations=val_annotations)
        val = CocoSet.load(cfg.paths()["val_images"], cfg.paths()["val_annotations"])
        recorded = load_json(Path(run) / DATA)
        if val.channels != recorded["train"]["channels"] or val.category_names() != recorded["train"]["categories"]:
            raise GenasError(f"the evaluation data's channels or categories differ from those {run} was trained on")
        with training_session(device) as ctx:
            arch = recorded["backbone"]
            cfg = dataclasses.replace(cfg, backbone_run=None, space=arch["space"], genotype=arch["genotype"],
                                      style=arch["style"], channels=arch["channels"], layers=arch["layers"],
                                      cells_per_stage=arch["cells_per_stage"])
            model = build_detector(cfg, val.num_classes, val.channels, recorded["image_mean"], recorded["image_std"])
            load_into(model, load_torch(Path(run) / FINAL), Path(run) / FINAL, "the run's detector")
            model.to(ctx.device)
            idx = list(range(len(val)))[:max_val_images]
            t0 = time.perf_counter()
            preds = predict(model, val, idx, batch_size, ctx.device)
            seconds = time.perf_counter() - t0
            metrics = coco_summary(val.coco, preds, [val.ids[i] for i in idx])
            log.info("evaluated %d images in %.1f s", len(idx), seconds)
    out.mkdir(parents=True, exist_ok=True)
    save_json(preds, out / PREDICTIONS)
    save_json(dict(metrics, detections=len(preds)), out / METRICS)
    return metrics


__all__ = ["evaluate_run", "load_splits", "train_detector"]
