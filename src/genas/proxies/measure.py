"""Measuring a candidate's validation loss under weight noise: the forward passes behind FBS.

This is where scoring spends its time, so it is kept apart from the score's formula
(:mod:`genas.proxies.flatness`) and from how the noise is drawn (:mod:`genas.proxies.perturb`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .perturb import perturbed_levels


@dataclass
class NoiseLosses:
    losses: list[float]  # mean loss per std, averaged over noise samples
    per_sample: list[list[float]]  # [std][sample]


@torch.inference_mode()
def losses_under_noise(net: torch.nn.Module, batches: list, stds: Sequence[float], *, samples: int = 1,
                       seed: int = 0, **perturb_kwargs) -> NoiseLosses:
    """Mean per-image validation loss of ``net`` at each noise std, restoring its weights after.

    ``batches`` is a list of (x, y) already on the net's device. ``perturb_kwargs`` (noise mode,
    scaling, which parameters, common random numbers) go to
    :func:`genas.proxies.perturb.perturbed_levels` unchanged.
    """
    net.eval()
    n_images = sum(len(y) for _, y in batches)
    per_sample = [[0.0] * samples for _ in stds]
    for s in range(samples):
        for k, _ in perturbed_levels(net, stds, sample=s, seed=seed, **perturb_kwargs):
            total = torch.zeros((), dtype=torch.float64, device=batches[0][0].device)
            for x, y in batches:
                total += torch.nn.functional.cross_entropy(net(x).float(), y, reduction="sum").double()
            per_sample[k][s] = total.item() / n_images
    return NoiseLosses([sum(v) / samples for v in per_sample], per_sample)
