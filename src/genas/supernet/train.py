"""SPOS supernet training: one uniformly sampled single path per step (Guo et al., 2020).

Run folder layout (everything a later command needs; nothing passes through memory):

* ``config.json``        the resolved :class:`~genas.config.SupernetConfig`
* ``data.json``          dataset facts and the split seed
* ``init.pt``            weights before any step (the angle metric's reference point)
* ``weights_epoch_K.pt`` periodic weight snapshots
* ``checkpoint.pt``      full training state after the last finished epoch (for ``--resume``)
* ``final.pt``           weights after the last epoch
* ``log.jsonl``          one line per epoch: lr, train loss/acc, img/s, and the search-validation
                         accuracy of one sampled path after BN recalibration
* ``summary.json``       written last; its presence marks a finished run

Randomness per epoch (data order, augmentation, sampled paths, the logged val architecture) is
derived from (seed, epoch), so a run resumed from the checkpoint of epoch k draws exactly what an
uninterrupted run draws and ends with bitwise-identical weights on CPU.

Differences from the official GeNAS code, on purpose: the cosine schedule is stepped after each
epoch (the official code steps it before, so its epoch 0 already uses the second LR value).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import seeding
from ..checkpoint import append_jsonl, load_torch, read_jsonl, save_json, save_torch, write_jsonl
from ..config import SupernetConfig, from_dict, load_json, to_dict
from ..data import Data, load_data
from ..distributed import DistContext, setup, teardown
from ..errors import GenasError
from ..spaces import get_space
from ..train.evaluate import evaluate
from ..train.step import sgd_step

CHECKPOINT, INIT, FINAL, SUMMARY, CONFIG, LOG = ("checkpoint.pt", "init.pt", "final.pt", "summary.json",
                                                "config.json", "log.jsonl")


def supernet_kwargs(cfg: SupernetConfig, num_classes: int, in_channels: int) -> dict:
    """The space's supernet constructor arguments for a config."""
    if cfg.space == "darts":
        return dict(C=cfg.channels, layers=cfg.layers, num_classes=num_classes, in_channels=in_channels)
    return dict(channels=cfg.channels, cells_per_stage=cfg.cells_per_stage, num_classes=num_classes,
                in_channels=in_channels, affine=cfg.affine)


def build_supernet_for(cfg: SupernetConfig, data: Data):
    """The supernet a config describes, with deterministic initial weights."""
    with torch.random.fork_rng():
        torch.manual_seed(seeding.derive_seed(cfg.seed, seeding.INIT))
        return get_space(cfg.space).build_supernet(**supernet_kwargs(cfg, data.num_classes, data.in_channels))


def load_run_config(run: Path) -> SupernetConfig:
    return from_dict(SupernetConfig, load_json(Path(run) / CONFIG))


def load_supernet(run: Path, which: str = "final", device: torch.device | str = "cpu", data: Data | None = None):
    """Rebuild a run's supernet with its ``init`` or ``final`` weights (or ``weights_epoch_K``)."""
    run = Path(run)
    cfg = load_run_config(run)
    facts = load_json(run / "data.json")
    space = get_space(cfg.space)
    model = space.build_supernet(**supernet_kwargs(cfg, facts["num_classes"], facts["in_channels"]))
    path = run / (which if which.endswith(".pt") else f"{which}.pt")
    model.load_state_dict(load_torch(path))
    return model.to(device)


def _validate(model, genotype, data: Data, train_idx, val_idx, device) -> dict:
    """Accuracy of one sampled path on search-validation images, on a copy whose BatchNorm is
    recalibrated on 512 supernet-train images (the shared statistics mix every path)."""
    from ..proxies.bn import recalibrate_bn

    net = model.extract(genotype)
    recalibrate_bn(net, [(x.to(device), y) for x, y in data.train.batches(train_idx[:512], 128, train=False)])
    return evaluate(net, data.train.batches(val_idx, 256, train=False), device)


def _train_indices(cfg: SupernetConfig, data: Data):
    idx = data.train_idx
    return idx[: cfg.max_train_images] if cfg.max_train_images else idx


def _make_optim(cfg: SupernetConfig, model: torch.nn.Module):
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    return opt, sched


def _prepare_run_dir(run: Path, cfg: SupernetConfig, resume: bool, ctx: DistContext) -> int:
    """Check the folder against ``resume``; return the epoch to start from."""
    has_config = (run / CONFIG).exists()
    if not resume:
        if has_config:
            raise GenasError(f"{run} already holds a supernet run; pass --resume to continue it or choose another -o")
        return 0
    if not has_config:
        raise GenasError(f"cannot resume: {run} has no {CONFIG} (start a new run without --resume)")
    if not (run / CHECKPOINT).exists():
        return 0  # killed before the first epoch finished: start over from the saved init
    return int(load_torch(run / CHECKPOINT)["epoch"]) + 1


def train_supernet(cfg: SupernetConfig, run: str | Path, resume: bool = False, device: str = "auto",
                   progress: bool | None = None) -> dict:
    """Train (or resume) a SPOS supernet into the run folder ``run``; returns the summary dict."""
    run = Path(run)
    ctx = setup(device)
    try:
        return _train(cfg, run, resume, ctx, progress)
    finally:
        teardown(ctx)


def _train(cfg: SupernetConfig, run: Path, resume: bool, ctx: DistContext, progress: bool | None) -> dict:
    if resume and (run / SUMMARY).exists():
        return load_json(run / SUMMARY)
    start_epoch = _prepare_run_dir(run, cfg, resume, ctx)
    if cfg.batch_size % ctx.world:
        raise GenasError(f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} distributed ranks")
    data = load_data(cfg.dataset, cfg.data_dir, cfg.split_seed, cfg.val_fraction, workers=cfg.workers)
    space = get_space(cfg.space)
    model = build_supernet_for(cfg, data)
    opt, sched = _make_optim(cfg, model)

    if start_epoch == 0 and not (resume and (run / INIT).exists()):
        if ctx.is_main:
            run.mkdir(parents=True, exist_ok=True)
            save_json(to_dict(cfg), run / CONFIG)
            save_json(data.describe(), run / "data.json")
            save_torch(model.state_dict(), run / INIT)
    else:
        source = run / (CHECKPOINT if start_epoch > 0 else INIT)
        state = load_torch(source)
        if start_epoch > 0:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["torch_rng"])
        else:
            model.load_state_dict(state)
    if ctx.is_main and resume:  # drop log lines of epochs that the checkpoint does not contain
        write_jsonl([r for r in read_jsonl(run / LOG) if r.get("epoch", -1) < start_epoch], run / LOG)
    ctx.barrier()

    model.to(ctx.device)
    if ctx.distributed:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=True)
    else:
        ddp = model
    train_idx = _train_indices(cfg, data)
    val_idx = data.val_idx[: cfg.val_images]
    per_rank_batch = cfg.batch_size // ctx.world
    # tqdm: None = show only on a terminal
    hide_bar = True if (not ctx.is_main or progress is False) else (None if progress is None else False)
    total_time = 0.0

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        paths = seeding.derive_rng(cfg.seed, seeding.PATHS, epoch)
        batches = data.train.batches(train_idx, per_rank_batch, train=True,
                                     seed=seeding.derive_seed(cfg.seed, seeding.DATA, epoch),
                                     shard=(ctx.rank, ctx.world))
        n_steps = (len(train_idx) // ctx.world) // per_rank_batch
        loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        correct = torch.zeros((), dtype=torch.int64, device=ctx.device)
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(batches, total=n_steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=hide_bar, dynamic_ncols=True)
        for x, y in bar:
            genotype = space.sample(paths)  # same stream on every rank -> same path everywhere
            x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            logits = ddp(x, genotype)
            loss = F.cross_entropy(logits, y)
            sgd_step(loss, opt, model.parameters(), cfg.grad_clip)
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        elapsed = time.perf_counter() - t0
        total_time += elapsed
        ctx.broadcast_buffers(model)

        val_arch = space.sample(seeding.derive_rng(cfg.seed, seeding.VAL_ARCH, epoch))
        model.eval()
        val = _validate(model, val_arch, data, train_idx, val_idx, ctx.device) if ctx.is_main else None
        record = dict(epoch=epoch, lr=lr, train_loss=loss_sum.item() / max(seen, 1),
                      train_acc=correct.item() / max(seen, 1), val_arch=space.format(val_arch),
                      val_acc=val["accuracy"] if val else None, val_loss=val["loss"] if val else None,
                      seconds=round(elapsed, 3), images_per_s=round(seen * ctx.world / elapsed, 1))
        if ctx.is_main:
            state = dict(model=model.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                         epoch=epoch, torch_rng=torch.get_rng_state())
            save_torch(state, run / CHECKPOINT)
            if (epoch + 1) % cfg.save_every == 0:
                save_torch(model.state_dict(), run / f"weights_epoch_{epoch + 1}.pt")
            append_jsonl(record, run / LOG)
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  acc {record['train_acc']:.4f}"
                       f"  val_acc {record['val_acc']:.4f}  {record['images_per_s']:.0f} img/s")
        ctx.barrier()

    final_state = model.state_dict()
    digests = ctx.agreed_digests(final_state)
    log = read_jsonl(run / LOG) if ctx.is_main else []
    summary = dict(run=str(run), epochs=cfg.epochs, world_size=ctx.world, device=str(ctx.device),
                   torch_threads=torch.get_num_threads(),
                   final_digest=digests[0], rank_digests=digests,
                   final_train_loss=log[-1]["train_loss"] if log else None,
                   final_val_acc=log[-1]["val_acc"] if log else None,
                   images_per_s=round(sum(r["images_per_s"] for r in log) / len(log), 1) if log else None,
                   train_seconds_this_session=round(total_time, 2))
    if ctx.is_main:
        save_torch(final_state, run / FINAL)
        save_json(summary, run / SUMMARY)
    ctx.barrier()
    return summary
