"""Stand-alone re-training of one found cell from scratch (``genas retrain``), recipe in
:mod:`genas.train.recipes`.

Run folder (only rank 0 writes):

* ``config.json``  the resolved :class:`~genas.train.recipes.RetrainConfig`
* ``log.jsonl``    one line per epoch: lr, drop-path probability, train loss/acc, test loss and
                   top-1/top-5 (when evaluated), seconds, images/s
* ``last.pt``      full state after the last finished epoch (model, optimizer, epoch, RNG, best
                   so far), for ``--resume``
* ``best.pt``      the model ``state_dict`` of the epoch with the best top-1 on the held-out part
                   of the training set (``holdout_fraction``: the tail of the recipe's training
                   order, never trained on); a recipe without one selects on the test set, and
                   ``result.json`` labels that "best on test — optimistic"
* ``weights_epoch_K.pt``  optional snapshots every ``save_every`` epochs
* ``result.json``  written last: final-epoch top-1/top-5 (the number to report), best.pt's epoch,
                   its top-1/top-5 and how it was selected, params (auxiliary head excluded),
                   MACs, genotype, seconds

With ``init_from_supernet`` the network is the supernet's extracted path, started from its
inherited weights (:mod:`genas.train.finetune`) instead of from scratch.

Randomness per epoch (data order, cutout squares, drop-path masks) is derived from
(seed, epoch, rank), so a run resumed from ``last.pt`` ends with the same weights as an
uninterrupted one (bitwise on CPU). Under ``torchrun`` the global batch is split across ranks
(DDP; ``find_unused_parameters`` only when a probe finds parameters without gradient) and the
test set is evaluated in shards whose counts are summed, so every rank reports the same numbers.

Differences from the official code, on purpose: data augmentation is the dataset's own (random
crop + flip for the in-memory sets; torchvision ``RandomResizedCrop`` + flip + mean/std
normalisation for image folders, not the GeNAS cv2 crop + PCA lighting without normalisation);
epoch e uses the cosine value at e (DARTS calls ``scheduler.step()`` at the start of the epoch,
which gives the same under the PyTorch of its time but skips the first value on current PyTorch);
cutout of odd length ``L`` covers L x L pixels (DARTS: (L-1) x (L-1)). Finding parameters without
gradient (``probe_unused``) matters for NB201 cells with dead edges; valid DARTS cells use every op.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import time
from pathlib import Path

import torch

from .. import seeding
from ..data import Data, check_same_data, load_data
from ..engine.checkpoint import load_checkpoint, load_into, save_torch
from ..engine.cost import count_macs, count_params
from ..engine.distributed import DistContext, training_session
from ..engine.evaluate import evaluate, metrics_from_sums
from ..engine.loop import bar_disabled, train_one_epoch, wrap_ddp
from ..engine.precision import TrainPrecision, check_precision, deterministic_mode, numerics_record
from ..errors import GenasError
from ..io import append_jsonl, load_json, read_jsonl, save_json
from ..options import defaults, may_change, to_dict
from ..run_folder import RunFolder
from ..spaces import NetworkSpec, get_space
from .recipes import (BEST, CONFIG, DATA, LAST, LOG, RESULT, RetrainConfig, cutout, drop_path_at, load_retrain_config,
                      lr_at, resolve_genotype, train_loss)
from . import finetune
from .standalone import train_indices

log = logging.getLogger("genas")
STATE_KEYS = ("model", "optimizer", "epoch", "torch_rng", "best", "last_eval")


def build_network(cfg: RetrainConfig, num_classes: int, in_channels: int) -> torch.nn.Module:
    """The stand-alone network of ``cfg.genotype``, with deterministic initial weights (a fine-tune:
    the supernet's extracted path, whose weights :func:`genas.train.finetune.inherit` loads)."""
    genotype = resolve_genotype(cfg.space, cfg.genotype)
    if cfg.init_from_supernet is not None:
        return finetune.subnet_network(cfg, genotype, num_classes, in_channels)
    spec = NetworkSpec(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, layers=cfg.layers,
                       num_classes=num_classes, in_channels=in_channels, style=cfg.style, auxiliary=cfg.auxiliary)
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT, 1))
        try:
            return get_space(cfg.space).build_network(genotype, spec)
        except ValueError as exc:
            raise GenasError(f"cannot build the {cfg.space} network: {exc}") from None


def probe_unused(net: torch.nn.Module, input_shape: tuple[int, ...], space_name: str = "") -> list[str]:
    """One training-mode forward/backward of a copy on two blank images: the names of parameters
    that get no gradient (DDP then needs ``find_unused_parameters``). Inputs too small for the
    network (e.g. the auxiliary head on 28x28 images) become a :class:`GenasError`."""
    probe = copy.deepcopy(net).train()
    x = torch.zeros(2, *input_shape)
    with torch.random.fork_rng():
        try:
            logits, aux = probe(x, return_aux=True)
        except (RuntimeError, ValueError) as exc:
            size = "x".join(str(s) for s in input_shape)
            hint = ""
            if getattr(net, "auxiliary", False):
                try:
                    probe(x)
                    hint = ("; the auxiliary head needs feature maps of 8x8 or more after the second reduction "
                            "cell (CIFAR-size 32x32 inputs); retrain with the auxiliary head off")
                except (RuntimeError, ValueError):
                    pass
            raise GenasError(f"the {space_name or 'stand-alone'} network cannot run on {size} images: "
                             f"{str(exc).splitlines()[0]}{hint}") from None
        loss = logits.sum() + (aux.sum() if aux is not None else 0.0)
        loss.backward()
    return [name for name, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def _prepare(out: Path, cfg: RetrainConfig | None, resume: bool) -> tuple[RetrainConfig, int]:
    """Check the folder against ``resume``; return the config to use and the epoch to start from."""
    folder = RunFolder(out, "retrain run", CONFIG)
    if not folder.open(resume):
        if cfg is None:
            raise GenasError("retrain needs a config (or --resume to continue an existing run)")
        folder.require_empty()
        return cfg, 0
    saved = load_retrain_config(out)
    if cfg is not None:
        keep = may_change(RetrainConfig)
        folder.check(to_dict(cfg), may_change=keep, defaults=defaults(RetrainConfig))
        saved = dataclasses.replace(saved, **{k: getattr(cfg, k) for k in keep})
    if not (out / LAST).exists():
        return saved, 0  # killed before the first epoch finished: start over (initial weights are seeded)
    return saved, int(load_checkpoint(out / LAST, STATE_KEYS)["epoch"]) + 1


def retrain(cfg: RetrainConfig | None, out_dir: str | Path, resume: bool = False, device: str = "auto",
            progress: bool | None = None, data: Data | None = None) -> dict:
    """Re-train ``cfg.genotype`` from scratch into ``out_dir`` (or continue it with ``resume``; then
    ``cfg`` may be ``None`` to use the stored config). ``data``: a user's own :class:`Data` instead of
    ``cfg.dataset``. Returns the result dict (``result.json``)."""
    out = Path(out_dir)
    with training_session(device) as ctx:
        return _retrain(cfg, out, resume, ctx, progress, data)


def _all_sum(ctx: DistContext, values: list[float]) -> list[float]:
    return [sum(col) for col in zip(*ctx.all_gather(values))]


class _Session:
    """One retraining session: the model, its optimiser, data indices and the best/last evaluations."""

    def __init__(self, cfg: RetrainConfig, out: Path, ctx: DistContext, data: Data, progress: bool | None):
        self.cfg, self.out, self.ctx, self.data, self.progress = cfg, out, ctx, data, progress
        self.model = build_network(cfg, data.num_classes, data.in_channels)
        self.input_shape = (data.in_channels, data.image_size, data.image_size)
        self.unused = probe_unused(self.model, self.input_shape, cfg.space)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr_at(cfg, 0), momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
        self.amp = TrainPrecision.make(cfg.precision, ctx.device, cfg.channels_last)
        self.best = dict(top1=-1.0, top5=None, epoch=None)
        self.last_eval: dict = {}
        self.train_idx, self.holdout_idx = split_holdout(data, cfg)
        self.per_rank_batch = cfg.batch_size // ctx.world
        self.n_steps = (len(self.train_idx) // ctx.world) // self.per_rank_batch
        if self.n_steps == 0:
            raise GenasError(f"{len(self.train_idx)} training images are fewer than one batch of {cfg.batch_size}; "
                             f"lower --batch-size or raise --max-train-images")
        self.test_idx = list(range(len(data.test)))[: cfg.test_images]

    def restore(self) -> None:
        state = load_checkpoint(self.out / LAST, STATE_KEYS)
        load_into(self.model, state["model"], self.out / LAST, "the run's network")
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        self.amp.load_state_dict(state.get("scaler"))
        self.best, self.last_eval = dict(state["best"]), dict(state["last_eval"])

    def train_epoch(self, epoch: int, ddp: torch.nn.Module) -> dict:
        cfg, ctx = self.cfg, self.ctx
        lr = lr_at(cfg, epoch)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.drop_path_prob = drop_path_at(cfg, epoch)
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.NOISE, epoch, ctx.rank, 2))  # drop-path masks
        cut_gen = torch.Generator().manual_seed(seeding.derive_seed(cfg.seed, seeding.NOISE, epoch, ctx.rank, 1))

        def step(x, y):
            if cfg.cutout > 0:
                x = cutout(x, cfg.cutout, cut_gen)
            logits, logits_aux = ddp(x, return_aux=True)
            return train_loss(logits, logits_aux, y, cfg), logits

        batches = self.data.train.batches(self.train_idx, self.per_rank_batch, train=True,
                                          seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch),
                                          shard=(ctx.rank, ctx.world))
        self.model.train()
        stats = train_one_epoch(step, batches, self.opt, self.model.parameters(), cfg.grad_clip, ctx.device,
                                total=self.n_steps, desc=f"retrain {epoch + 1}/{cfg.epochs}",
                                disable=bar_disabled(self.progress, ctx.is_main), precision=self.amp)
        ctx.broadcast_buffers(self.model)
        sums = _all_sum(ctx, [stats.loss_sum, stats.correct, stats.seen])
        return dict(epoch=epoch, lr=lr, drop_path_prob=self.model.drop_path_prob,
                    train_loss=sums[0] / max(sums[2], 1), train_acc=sums[1] / max(sums[2], 1),
                    test_loss=None, top1=None, top5=None, train_seconds=round(stats.seconds, 3),
                    images_per_s=round(sums[2] / max(stats.seconds, 1e-9), 1))

    def evaluate_epoch(self, record: dict) -> None:
        """Test loss and top-1/top-5 (shards summed over ranks) into ``record`` and ``last_eval``."""
        self.model.eval()
        my_idx = self.test_idx[self.ctx.rank::self.ctx.world]
        sums = evaluate(self.model, self.data.test.batches(my_idx, 256, train=False), self.ctx.device)["sums"]
        m = metrics_from_sums(_all_sum(self.ctx, sums), self.data.num_classes)
        self.last_eval = dict(test_loss=m["loss"], top1=m["accuracy"], top5=m["top5"]) if m["images"] else \
            dict(test_loss=None, top1=None, top5=None)
        if len(self.holdout_idx):  # the selection set: training images never trained on
            my_idx = self.holdout_idx[self.ctx.rank::self.ctx.world]
            sums = evaluate(self.model, self.data.train.batches(my_idx, 256, train=False), self.ctx.device)["sums"]
            h = metrics_from_sums(_all_sum(self.ctx, sums), self.data.num_classes)
            self.last_eval.update(holdout_loss=h["loss"], holdout_top1=h["accuracy"])
        record.update(self.last_eval)
        self.last_eval["epoch"] = record["epoch"]

    @property
    def selection_key(self) -> str:
        """The log key best.pt is selected by: held-out top-1, or test top-1 where there is no held-out set."""
        return "holdout_top1" if len(self.holdout_idx) else "top1"

    def save_epoch(self, record: dict, improved: bool) -> None:
        """best.pt, the snapshot, the log line, then last.pt, the commit point (rank 0 only): killed
        before it, the epoch is redone on resume and rewrites the same bytes."""
        cfg, out, epoch = self.cfg, self.out, record["epoch"]
        if improved:
            save_torch(self.model.state_dict(), out / BEST)
        if cfg.save_every and (epoch + 1) % cfg.save_every == 0:
            save_torch(self.model.state_dict(), out / f"weights_epoch_{epoch + 1}.pt")
        append_jsonl(record, out / LOG)
        state = dict(model=self.model.state_dict(), optimizer=self.opt.state_dict(), epoch=epoch, lr=record["lr"],
                     torch_rng=torch.get_rng_state(), best=self.best, last_eval=self.last_eval)
        if self.amp.scaler is not None:
            state["scaler"] = self.amp.state_dict()
        save_torch(state, out / LAST)
        msg = f"retrain epoch {epoch + 1}/{cfg.epochs}: lr {record['lr']:.5f}, loss {record['train_loss']:.4f}"
        if record["top1"] is not None:
            msg += f", top1 {record['top1']:.4f}" + (f", top5 {record['top5']:.4f}" if record["top5"] is not None
                                                     else "")
        log.info(msg)  # one line per epoch, with or without a progress bar

    def result(self, session_seconds: float) -> dict:
        cfg, ctx, model = self.cfg, self.ctx, self.model
        digests = ctx.agreed_digests(model.state_dict())
        log = read_jsonl(self.out / LOG) if ctx.is_main else []
        model.eval()
        best, last = self.best, self.last_eval
        held = len(self.holdout_idx)
        return dict(
            space=cfg.space, genotype=cfg.genotype, style=cfg.style if len(get_space(cfg.space).network_styles) > 1
            else None, preset=cfg.preset, dataset=self.data.describe(), epochs=cfg.epochs,
            final_top1=last.get("top1"), final_top5=last.get("top5"), final_test_loss=last.get("test_loss"),
            best_epoch=best["epoch"], best_top1=best["top1"] if best["epoch"] is not None else None,
            best_top5=best["top5"], selection="held-out" if held else "test",
            selection_note=f"best.pt selected on {held} held-out training images" if held else SELECTED_ON_TEST,
            best_holdout_top1=best.get("holdout_top1") if held else None, holdout_images=held,
            supernet_digest=cfg.supernet_digest,
            test_images=len(self.test_idx), train_images=int(len(self.train_idx)),
            params=count_params(model, exclude="auxiliary"), params_total=count_params(model),
            macs=count_macs(model, self.input_shape),
            seconds=round(sum(r.get("seconds", 0.0) for r in log), 2) if ctx.is_main else None,
            seconds_this_session=round(session_seconds, 2), world_size=ctx.world, device=str(ctx.device),
            find_unused_parameters=bool(self.unused) and ctx.distributed, final_digest=digests[0],
            rank_digests=digests, numerics=dict(precision=cfg.precision, channels_last=cfg.channels_last,
                                                **numerics_record(cfg.deterministic)))


def _retrain(cfg: RetrainConfig | None, out: Path, resume: bool, ctx: DistContext, progress: bool | None,
             data: Data | None) -> dict:
    if cfg is not None:
        cfg.validate()
        check_precision(cfg.precision, ctx.device)
    if resume and (out / RESULT).exists():  # finished: the same work comes back, other work is refused
        if cfg is not None:
            RunFolder(out, "retrain run", CONFIG).check(to_dict(cfg), may_change=may_change(RetrainConfig),
                                                        defaults=defaults(RetrainConfig))
        return load_json(out / RESULT)
    with RunFolder(out, "retrain run", CONFIG).locked(ctx.is_main):
        return _retrain_locked(cfg, out, resume, ctx, progress, data)


def _retrain_locked(cfg: RetrainConfig | None, out: Path, resume: bool, ctx: DistContext, progress: bool | None,
                    data: Data | None) -> dict:
    cfg, start_epoch = _prepare(out, cfg, resume)
    check_precision(cfg.precision, ctx.device)  # a stored config resumed on another device
    with deterministic_mode(cfg.deterministic):
        return _retrain_session(cfg, start_epoch, out, resume, ctx, progress, data)


def _retrain_session(cfg: RetrainConfig, start_epoch: int, out: Path, resume: bool, ctx: DistContext,
                     progress: bool | None, data: Data | None) -> dict:
    ctx.barrier()  # every rank has checked the folder before rank 0 writes into it
    cfg.validate()
    genotype = resolve_genotype(cfg.space, cfg.genotype)  # a clear error before any data is loaded
    if not get_space(cfg.space).is_connected(genotype):
        log.warning("genas: warning: %s computes no function of its input (a disconnected cell); its network "
                    "trains only the skeleton around it", cfg.genotype)
    if cfg.batch_size % ctx.world:
        raise GenasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} distributed ranks")
    if data is None:
        data = load_data(cfg.dataset, cfg.data_dir, cfg.split_seed, image_size=cfg.image_size, workers=cfg.workers)
    if (out / DATA).exists():
        check_same_data(load_json(out / DATA), data, out)
    s = _Session(cfg, out, ctx, data, progress)
    if start_epoch > 0:
        s.restore()
    elif cfg.init_from_supernet is not None:
        finetune.inherit(cfg, genotype, s.model, data)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if start_epoch == 0 and not (out / CONFIG).exists():
            save_json(to_dict(cfg), out / CONFIG)
        if not (out / DATA).exists():
            save_json(data.describe(), out / DATA)
        if resume:  # drop log lines of epochs that the checkpoint does not contain
            RunFolder(out, "retrain run").trim_log(LOG, lambda r: r.get("epoch", -1) < start_epoch)
    ctx.barrier()
    s.amp.prepare(s.model.to(ctx.device))
    ddp = wrap_ddp(s.model, ctx, find_unused=bool(s.unused))
    session_seconds = 0.0
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        record = s.train_epoch(epoch, ddp)
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            s.evaluate_epoch(record)
        elapsed = time.perf_counter() - t0
        session_seconds += elapsed
        record = {**{k: v for k, v in record.items() if k not in ("train_seconds", "images_per_s")},
                  "seconds": round(elapsed, 3), "train_seconds": record["train_seconds"],
                  "images_per_s": record["images_per_s"]}
        key = s.selection_key
        improved = record.get(key) is not None and record[key] > s.best.get(key, -1.0)
        if improved:
            s.best = dict(top1=record["top1"], top5=record["top5"], epoch=epoch,
                          **({key: record[key]} if key != "top1" else {}))
        if ctx.is_main:
            s.save_epoch(record, improved)
        ctx.barrier()
    result = s.result(session_seconds)
    if ctx.is_main:
        save_json(result, out / RESULT)
        log.info(summary_line(result))
    ctx.barrier()
    return result


SELECTED_ON_TEST = "best on test — optimistic"


def split_holdout(data: Data, cfg: RetrainConfig):
    """(training images, held-out images): the last ``holdout_fraction`` of the recipe's training
    order is held out, the first ``max_train_images`` of the rest are trained on (with the held-out
    part taken from images beyond them, as in the quick recipe, the training images are unchanged)."""
    order = train_indices(data, dataclasses.replace(cfg, max_train_images=None))
    held = int(round(cfg.holdout_fraction * len(order)))
    if cfg.holdout_fraction > 0 and not 0 < held < len(order):
        raise GenasError(f"--holdout-fraction {cfg.holdout_fraction} of {len(order)} training images holds out "
                         f"{held}; it must leave at least one image on each side")
    train, holdout = order[: len(order) - held], order[len(order) - held:]
    return (train[: cfg.max_train_images] if cfg.max_train_images else train), holdout


def summary_line(result: dict) -> str:
    """The final-epoch top-1 first (the number to report), then best.pt and how it was selected
    (folders made before selection was recorded selected on the test set)."""
    top5 = result.get("final_top5")
    line = f"final top-1 {result.get('final_top1')}" + (f", top-5 {top5}" if top5 is not None else "")
    if result.get("best_epoch") is not None:
        line += (f"; best.pt: epoch {result['best_epoch'] + 1}, test top-1 {result.get('best_top1')} "
                 f"({result.get('selection_note', SELECTED_ON_TEST)})")
    return line


__all__ = ["SELECTED_ON_TEST", "build_network", "probe_unused", "retrain", "split_holdout", "summary_line"]
