"""SPOS supernet training: one uniformly sampled single path per step (Guo et al., 2020).

The run folder (:mod:`genas.supernet.run`) holds everything a later command needs; nothing passes
through memory. Randomness per epoch (data order, augmentation, sampled paths, the logged val
architecture) is derived from (seed, epoch), so a run resumed from the checkpoint of epoch k draws
exactly what an uninterrupted run draws and ends with bitwise-identical weights on CPU.

Differences from the official GeNAS code, on purpose: the cosine schedule is stepped after each
epoch (the official code steps it before, so its epoch 0 already uses the second LR value).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from .. import seeding
from ..data import Data, load_data
from ..engine.bn import recalibrate_bn
from ..engine.checkpoint import load_checkpoint, load_into, load_torch, save_torch
from ..engine.distributed import DistContext, training_session
from ..engine.evaluate import evaluate
from ..engine.loop import EpochStats, bar_disabled, train_one_epoch, wrap_ddp
from ..engine.precision import TrainPrecision, check_precision, deterministic_mode, numerics_record
from ..errors import GenasError
from ..io import append_jsonl, load_json, read_jsonl, save_json
from ..options import defaults, may_change, to_dict
from ..spaces import get_space
from . import run as rf
from .config import SupernetConfig

STATE_KEYS = ("model", "optimizer", "scheduler", "epoch", "torch_rng")


def _validate(model, genotype, data: Data, train_idx, val_idx, device) -> dict:
    """Accuracy of one sampled path on search-validation images, on a copy whose BatchNorm is
    recalibrated on 512 supernet-train images (the shared statistics mix every path)."""
    net = model.extract(genotype)
    recalibrate_bn(net, [(x.to(device), y) for x, y in data.train.batches(train_idx[:512], 128, train=False)])
    return evaluate(net, data.train.batches(val_idx, 256, train=False), device)


@dataclass
class _Trainer:
    """The state of one training session: config, data, model, optimiser, where to write."""

    cfg: SupernetConfig
    run: Path
    ctx: DistContext
    data: Data
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    progress: bool | None
    amp: TrainPrecision  # --precision / --channels-last (its fp16 scaler state is checkpointed)

    @property
    def train_idx(self):
        idx = self.data.train_idx
        return idx[: self.cfg.max_train_images] if self.cfg.max_train_images else idx

    def restore(self, start_epoch: int) -> None:
        """Initial weights (fresh: saved as init.pt) or the checkpoint of ``start_epoch - 1``."""
        run, cfg = self.run, self.cfg
        if start_epoch == 0 and not (run / rf.INIT).exists():
            if self.ctx.is_main:
                run.mkdir(parents=True, exist_ok=True)
                save_json(to_dict(cfg), run / rf.CONFIG)
                save_json(self.data.describe(), run / rf.DATA)
                save_torch(self.model.state_dict(), run / rf.INIT)
        elif start_epoch == 0:
            load_into(self.model, load_torch(run / rf.INIT), run / rf.INIT, "the run's supernet")
        else:
            state = load_checkpoint(run / rf.CHECKPOINT, STATE_KEYS)
            load_into(self.model, state["model"], run / rf.CHECKPOINT, "the run's supernet")
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
            self.amp.load_state_dict(state.get("scaler"))

    def epoch(self, epoch: int, ddp: torch.nn.Module) -> dict:
        """Train one epoch on uniformly sampled paths; return its log record."""
        cfg, ctx, space = self.cfg, self.ctx, get_space(self.cfg.space)
        per_rank_batch = cfg.batch_size // ctx.world
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.PATHS, epoch, 1))  # whatever uses the global RNG
        self.model.train()
        paths = seeding.derive_rng(cfg.seed, seeding.PATHS, epoch)

        def step(x, y):
            logits = ddp(x, space.sample(paths))  # same stream on every rank -> same path everywhere
            return F.cross_entropy(logits, y), logits

        batches = self.data.train.batches(self.train_idx, per_rank_batch, train=True,
                                          seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch),
                                          shard=(ctx.rank, ctx.world))
        stats: EpochStats = train_one_epoch(
            step, batches, self.opt, self.model.parameters(), cfg.grad_clip, ctx.device,
            total=(len(self.train_idx) // ctx.world) // per_rank_batch, desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=bar_disabled(self.progress, ctx.is_main), precision=self.amp)
        lr = self.opt.param_groups[0]["lr"]
        self.sched.step()
        ctx.broadcast_buffers(self.model)
        val_arch = space.sample(seeding.derive_rng(cfg.seed, seeding.VAL_ARCH, epoch))
        self.model.eval()
        val = (_validate(self.model, val_arch, self.data, self.train_idx, self.data.val_idx[: cfg.val_images],
                         ctx.device) if ctx.is_main else None)
        return dict(epoch=epoch, lr=lr, train_loss=stats.loss, train_acc=stats.accuracy, val_arch=space.format(val_arch),
                    val_acc=val["accuracy"] if val else None, val_loss=val["loss"] if val else None,
                    seconds=round(stats.seconds, 3), images_per_s=round(stats.seen * ctx.world / stats.seconds, 1))

    def save_epoch(self, record: dict) -> None:
        """Snapshot, log line, then the checkpoint (rank 0 only). The checkpoint is the commit point:
        killed before it, the epoch is redone on resume (its log line is trimmed, its snapshot
        rewritten with the same bytes); so no kill point leaves a folder without an epoch's files."""
        epoch, run = record["epoch"], self.run
        if (epoch + 1) % self.cfg.save_every == 0:
            save_torch(self.model.state_dict(), run / rf.snapshot_name(epoch + 1))
        append_jsonl(record, run / rf.LOG)
        state = dict(model=self.model.state_dict(), optimizer=self.opt.state_dict(),
                     scheduler=self.sched.state_dict(), epoch=epoch, torch_rng=torch.get_rng_state())
        if self.amp.scaler is not None:
            state["scaler"] = self.amp.state_dict()
        save_torch(state, run / rf.CHECKPOINT)
        logging.getLogger("genas").info(
            f"supernet epoch {epoch + 1}/{self.cfg.epochs}: loss {record['train_loss']:.4f}, acc "
            f"{record['train_acc']:.4f}, val_acc {record['val_acc']:.4f}, {record['images_per_s']:.0f} img/s, "
            f"{record['seconds']:.1f} s")

    def finish(self, session_seconds: float) -> dict:
        final_state = self.model.state_dict()
        digests = self.ctx.agreed_digests(final_state)
        log = read_jsonl(self.run / rf.LOG) if self.ctx.is_main else []
        summary = dict(run=str(self.run), epochs=self.cfg.epochs, world_size=self.ctx.world,
                       device=str(self.ctx.device), torch_threads=torch.get_num_threads(),
                       final_digest=digests[0], rank_digests=digests,
                       final_train_loss=log[-1]["train_loss"] if log else None,
                       final_val_acc=log[-1]["val_acc"] if log else None,
                       images_per_s=round(sum(r["images_per_s"] for r in log) / len(log), 1) if log else None,
                       train_seconds_this_session=round(session_seconds, 2),
                       numerics=dict(precision=self.cfg.precision, channels_last=self.cfg.channels_last,
                                     **numerics_record(self.cfg.deterministic)))
        if self.ctx.is_main:
            save_torch(final_state, self.run / rf.FINAL)
            save_json(summary, self.run / rf.SUMMARY)
        self.ctx.barrier()
        return summary


def _start_epoch(run: Path, cfg: SupernetConfig, resume: bool) -> int:
    """Check the folder against ``resume`` (and a resumed config); return the epoch to start from."""
    folder = rf.folder(run)
    if not folder.open(resume):
        folder.require_empty()
        return 0
    folder.check(to_dict(cfg), may_change=may_change(SupernetConfig), defaults=defaults(SupernetConfig))
    if not (run / rf.CHECKPOINT).exists():
        return 0  # killed before the first epoch finished: start over from the saved init
    return int(load_checkpoint(run / rf.CHECKPOINT, STATE_KEYS)["epoch"]) + 1


def train_supernet(cfg: SupernetConfig, run: str | Path, resume: bool = False, device: str = "auto",
                   progress: bool | None = None, data: Data | None = None) -> dict:
    """Train (or resume) a SPOS supernet into the run folder ``run``; returns the summary dict.

    ``data`` trains on a user's own :class:`~genas.data.Data` (e.g. :func:`genas.data.from_tensors`)
    instead of ``cfg.dataset``; its fingerprint is recorded, and a resume with other data is refused.
    """
    run = Path(run)
    with training_session(device) as ctx:
        return _train(cfg, run, resume, ctx, progress, data)


def _train(cfg: SupernetConfig, run: Path, resume: bool, ctx: DistContext, progress: bool | None,
           data: Data | None) -> dict:
    cfg.validate()
    check_precision(cfg.precision, ctx.device)
    if resume and (run / rf.SUMMARY).exists():  # finished: the same work comes back, other work is refused
        rf.folder(run).check(to_dict(cfg), may_change=may_change(SupernetConfig), defaults=defaults(SupernetConfig))
        if data is not None:
            rf.check_data(run, data)
        return load_json(run / rf.SUMMARY)
    with rf.folder(run).locked(ctx.is_main), deterministic_mode(cfg.deterministic):
        return _train_locked(cfg, run, resume, ctx, progress, data)


def _train_locked(cfg: SupernetConfig, run: Path, resume: bool, ctx: DistContext, progress: bool | None,
                  data: Data | None) -> dict:
    start_epoch = _start_epoch(run, cfg, resume)
    ctx.barrier()  # every rank has checked the folder before rank 0 writes into it
    if cfg.batch_size % ctx.world:
        raise GenasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} distributed ranks")
    if data is None:
        data = load_data(cfg.dataset, cfg.data_dir, cfg.split_seed, cfg.val_fraction, workers=cfg.workers)
    if (run / rf.DATA).exists():  # resumed: only on the data it was started with
        rf.check_data(run, data)
    model = rf.build_supernet_for(cfg, data)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    trainer = _Trainer(cfg, run, ctx, data, model, opt, sched, progress,
                       TrainPrecision.make(cfg.precision, ctx.device, cfg.channels_last))
    trainer.restore(start_epoch)
    if ctx.is_main and resume:  # drop log lines of epochs that the checkpoint does not contain
        rf.folder(run).trim_log(rf.LOG, lambda r: r.get("epoch", -1) < start_epoch)
    ctx.barrier()
    trainer.amp.prepare(model.to(ctx.device))
    ddp = wrap_ddp(model, ctx, find_unused=True)
    total_time = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        record = trainer.epoch(epoch, ddp)
        total_time += record["seconds"]
        if ctx.is_main:
            trainer.save_epoch(record)
        ctx.barrier()
    return trainer.finish(total_time)


__all__ = ["train_supernet"]
