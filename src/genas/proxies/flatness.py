"""FBS: flatness (and depth) of the loss minimum under Gaussian weight noise (GeNAS, IJCAI 2023).

    F = 1 / ( sum_{i=1}^{t-1} |(L_{i+1} - L_i) / (s_{i+1} - s_i)|  +  alpha * |L_1 / s_1|  +  eps )

``L_i`` is the mean validation loss with weights perturbed at noise std ``s_i``. The slope terms
measure flatness; the ``alpha`` term measures depth (a flat but high-loss minimum is poor).
``alpha=0`` is the poster's "naive" pure flatness. The official code has no explicit alpha: its
sum is the alpha=1 case with the depth measured at s_1, and it adds eps=1e-5 to the denominator,
which we keep as the default guard. Higher F is better.
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

from .measure import losses_under_noise
from .registry import ProxyResult, register

OFFICIAL_EPS = 1e-5


def flatness_score(losses: Sequence[float], stds: Sequence[float], alpha: float = 1.0, eps: float = OFFICIAL_EPS) -> float:
    """The FBS score from losses measured at strictly increasing positive noise stds.

    A non-finite loss means the minimum blew up under noise: the score is 0.0 (worst), never NaN.
    """
    losses, stds = [float(v) for v in losses], [float(s) for s in stds]
    if len(stds) < 1:
        raise ValueError("flatness needs at least one noise std")
    if len(losses) != len(stds):
        raise ValueError(f"got {len(losses)} losses for {len(stds)} noise stds; they must match")
    if any(not math.isfinite(s) or s <= 0 for s in stds):
        raise ValueError(f"noise stds must be positive and finite, got {stds}")
    if any(b <= a for a, b in zip(stds, stds[1:])):
        raise ValueError(f"noise stds must be strictly increasing, got {stds}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if any(not math.isfinite(v) for v in losses):
        return 0.0
    slopes = sum(abs((l2 - l1) / (s2 - s1)) for l1, l2, s1, s2 in zip(losses, losses[1:], stds, stds[1:]))
    denom = slopes + alpha * abs(losses[0] / stds[0]) + eps
    return 1.0 / denom if denom > 0 else math.inf


@register("flatness")
def flatness_proxy(ctx, genotype) -> ProxyResult:
    """FBS on inherited, BN-recalibrated weights; raw: loss per std (higher F = flatter and deeper)."""
    cfg = ctx.cfg
    net = ctx.recalibrated(genotype)
    candidate_key = None if cfg.common_noise else zlib.crc32(ctx.space.format(genotype).encode())
    measured = losses_under_noise(net, ctx.val_batches, cfg.stds, mode=cfg.noise_mode, samples=cfg.noise_samples,
                                  seed=cfg.seed, key_of=ctx.noise_key(genotype), candidate_key=candidate_key)
    value = flatness_score(measured.losses, cfg.stds, cfg.alpha, cfg.eps)
    raw = dict(losses=measured.losses, stds=list(cfg.stds))
    if cfg.noise_samples > 1:
        raw["losses_per_sample"] = measured.per_sample
    if not all(math.isfinite(v) for v in measured.losses):
        raw["blew_up"] = True
    return ProxyResult(value, raw)
