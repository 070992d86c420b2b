"""One epoch of training, shared by the supernet, retraining and the ground-truth bench.

What differs between them is a per-batch ``step(x, y) -> (loss, logits)`` hook: SPOS samples a
path, retraining applies cutout and adds the auxiliary loss, the bench is plain cross-entropy.
Everything else (device transfer, the optimiser step with clipping, the on-device accumulators
with one host sync per epoch, the progress bar) lives here once.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from ..errors import GenasError
from .precision import FP32, TrainPrecision
from .step import sgd_step

Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EpochStats:
    loss_sum: float  # summed per-batch mean loss x batch size
    correct: int  # top-1 hits of the training logits
    seen: int  # images
    seconds: float

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.seen, 1)


def bar_disabled(progress: bool | None, is_main: bool = True) -> bool | None:
    """tqdm's ``disable``: hidden off rank 0 or with ``progress=False``; ``None`` = only on a terminal."""
    if not is_main or progress is False:
        return True
    return None if progress is None else False


def train_one_epoch(step: Step, batches: Iterable, opt: torch.optim.Optimizer, params, grad_clip: float,
                    device: torch.device, *, total: int | None = None, desc: str = "",
                    disable: bool | None = None, precision: TrainPrecision | None = None) -> EpochStats:
    """Run ``step`` on every batch with an SGD step (``grad_clip`` > 0 clips the gradient norm).

    ``precision`` (:class:`~genas.engine.precision.TrainPrecision`): ``step`` runs under its autocast
    on inputs in its memory format, and the step uses its gradient scaler (fp16); by default fp32,
    exactly the operations of a loop without it.

    A non-finite loss or non-finite weights at the end of the epoch stop training with a one-line
    :class:`GenasError` before the caller checkpoints the epoch, so the last finite checkpoint is kept.
    """
    params = list(params)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, t0 = 0, time.perf_counter()
    amp = precision or FP32
    for x, y in tqdm(batches, total=total, desc=desc, leave=False, disable=disable, dynamic_ncols=True):
        x, y = amp.inputs(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        with amp.autocast():
            loss, logits = step(x, y)
        sgd_step(loss, opt, params, grad_clip, scaler=amp.scaler)
        loss_sum += loss.detach().double() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
    stats = EpochStats(loss_sum.item(), int(correct.item()), seen, time.perf_counter() - t0)
    finite = torch.stack([p.detach().isfinite().all() for p in params]).all().item() if params else True
    if not (math.isfinite(stats.loss_sum) and finite):
        raise GenasError(f"training diverged in {desc or 'this epoch'}: the {'loss' if finite else 'weights'} became "
                         f"non-finite; the last finite checkpoint is kept (lower --lr or set --grad-clip)")
    return stats


def wrap_ddp(model: torch.nn.Module, ctx, find_unused: bool) -> torch.nn.Module:
    """``model`` under DistributedDataParallel when ``ctx`` is distributed, else ``model``."""
    if not ctx.distributed:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
        find_unused_parameters=find_unused)


__all__ = ["EpochStats", "Step", "bar_disabled", "train_one_epoch", "wrap_ddp"]
