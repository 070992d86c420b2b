"""A plain re-implementation of the official GeNAS flatness scoring (``get_cand_wlm``), as a baseline.

It follows the official algorithm (``evolution_search/cand_evaluator.py`` of the GeNAS code) step by step, cost included, so the
benchmark compares our scorer with what the official code would spend on the same machine:

1. reset every BN of the *supernet* and recalibrate it in train mode along the candidate's path
   (EMA momentum 0.1: our ``bn_mode="official"``);
2. deep-copy the whole supernet;
3. for each std, add the noise increment in place to *every* supernet parameter (cumulative), then
   forward the validation images at batch 64 with a host sync (``.item()``) per batch; the loss
   at a level is the mean of the batch-mean cross-entropies;
4. the score is :func:`genas.proxies.flatness.flatness_score` with alpha 1 and eps 1e-5.

Two deliberate differences from the official code, neither of which changes the cost:

* the noise is drawn with :func:`genas.proxies.perturb.noise_like` keyed by the supernet name,
  so with the same seed the path parameters get exactly the noise our scorer gives them in
  ``noise_mode="cumulative"`` with common random numbers (pass ``candidate_key`` for the
  official's fresh noise per candidate);
* the supernet's BN running statistics are restored afterwards (the official code leaves the
  last candidate's statistics in the shared supernet; every candidate resets them first, so
  this changes no score).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..engine.bn import recalibrate_bn
from .flatness import OFFICIAL_EPS, flatness_score
from .perturb import noise_like

OFFICIAL_BATCH = 64


class _Path(nn.Module):
    """The supernet restricted to one genotype, as a one-argument module for BN recalibration."""

    def __init__(self, supernet: nn.Module, genotype: Sequence[int]):
        super().__init__()
        self.supernet, self.genotype = supernet, tuple(genotype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.supernet(x, self.genotype)


def stack_batches(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of cached (x, y) batches, in order, so they can be re-batched at 64."""
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def _bn_buffers(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(b, b.detach().clone()) for m in net.modules() if isinstance(m, _BatchNorm) for b in m.buffers()]


@torch.no_grad()
def official_losses(supernet: nn.Module, genotype: Sequence[int], bn_batches: list, val_x: torch.Tensor,
                    val_y: torch.Tensor, stds: Sequence[float], *, seed: int = 0, sample: int = 0,
                    candidate_key: int | None = None, batch_size: int = OFFICIAL_BATCH) -> list[float]:
    """Validation loss at each cumulative noise level, computed the official way (see module doc)."""
    saved = _bn_buffers(supernet)
    try:
        recalibrate_bn(_Path(supernet, genotype), bn_batches, "official")
        model = copy.deepcopy(supernet).eval()
    finally:
        for buf, value in saved:
            buf.copy_(value)
    genotype = tuple(genotype)
    losses, prev = [], 0.0
    for k, std in enumerate(stds):
        for name, p in model.named_parameters():
            p.add_((std - prev) * noise_like(p, name, k, sample, seed, candidate_key))
        prev = std
        total, n_batches = 0.0, 0
        for i in range(0, len(val_y), batch_size):
            out = model(val_x[i:i + batch_size], genotype)
            total += nn.functional.cross_entropy(out, val_y[i:i + batch_size]).item()
            n_batches += 1
        losses.append(total / n_batches)
    return losses


def official_score(supernet: nn.Module, genotype: Sequence[int], bn_batches: list, val_x: torch.Tensor,
                   val_y: torch.Tensor, stds: Sequence[float], **kwargs) -> tuple[float, list[float]]:
    """The official FBS ("wlm") score of one candidate and its losses per std."""
    losses = official_losses(supernet, genotype, bn_batches, val_x, val_y, stds, **kwargs)
    return flatness_score(losses, stds, alpha=1.0, eps=OFFICIAL_EPS), losses
