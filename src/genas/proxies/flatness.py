"""FBS: flatness (and depth) of the loss minimum under Gaussian weight noise (GeNAS, IJCAI 2023).

    F = 1 / ( sum_{i=1}^{t-1} |(L_{i+1} - L_i) / (s_{i+1} - s_i)|  +  alpha * |L_1 / s_1|  +  eps )

``L_i`` is the mean validation loss with weights perturbed at noise std ``s_i``. The slope terms
measure flatness; the ``alpha`` term measures depth (a flat but high-loss minimum is poor).
``alpha=0`` is the poster's "naive" pure flatness. The official code has no explicit alpha: its
sum is the alpha=1 case with the depth measured at s_1, and it adds eps=1e-5 to the denominator,
which we keep as the default guard. Higher F is better.

Options beyond the paper (ours):

* depth at sigma=0 (``loss0`` = the unperturbed loss L_0): the slope chain starts at (0, L_0) and
  the depth term is ``alpha * |L_0 / s_1|``. Since ``L_1/s_1 = (L_1 - L_0)/s_1 + L_0/s_1``, this
  splits the official depth term into its first slope and the true depth, so alpha weighs depth
  alone instead of depth plus the first slope.
* ``alpha="auto"``: ``alpha = spread(slope sums) / spread(depth terms)`` over a population (median
  absolute deviation; the standard deviation if that is 0), so both terms move the score equally.
  Deterministic for a fixed population; the search fixes it once on a seeded calibration sample.
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np

from .. import seeding
from ..engine.precision import exact_fp32

from .measure import losses_under_noise
from .registry import ProxyResult, register

OFFICIAL_EPS = 1e-5


def _check(losses: Sequence[float], stds: Sequence[float]) -> tuple[list[float], list[float]]:
    losses, stds = [float(v) for v in losses], [float(s) for s in stds]
    if len(stds) < 1:
        raise ValueError("flatness needs at least one noise std")
    if len(losses) != len(stds):
        raise ValueError(f"got {len(losses)} losses for {len(stds)} noise stds; they must match")
    if any(not math.isfinite(s) or s <= 0 for s in stds):
        raise ValueError(f"noise stds must be positive and finite, got {stds}")
    if any(b <= a for a, b in zip(stds, stds[1:])):
        raise ValueError(f"noise stds must be strictly increasing, got {stds}")
    return losses, stds


def flatness_terms(losses: Sequence[float], stds: Sequence[float], loss0: float | None = None) -> tuple[float, float]:
    """(sum of slope terms, depth term) of FBS; the depth is at s_1, or at sigma=0 given ``loss0``.

    Non-finite losses give non-finite terms (the caller scores them worst).
    """
    losses, stds = _check(losses, stds)
    if loss0 is not None:
        losses, points = [float(loss0)] + losses, [0.0] + stds
    else:
        points = stds
    slopes = sum(abs((l2 - l1) / (s2 - s1)) for l1, l2, s1, s2 in zip(losses, losses[1:], points, points[1:]))
    return slopes, abs(losses[0] / stds[0])


def flatness_score(losses: Sequence[float], stds: Sequence[float], alpha: float = 1.0, eps: float = OFFICIAL_EPS,
                   loss0: float | None = None) -> float:
    """The FBS score from losses measured at strictly increasing positive noise stds.

    ``loss0``: the unperturbed loss, to measure the depth at sigma=0 (see the module doc).
    A non-finite loss means the minimum blew up under noise: the score is 0.0 (worst), never NaN.
    """
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    slopes, depth = flatness_terms(losses, stds, loss0)
    if not (math.isfinite(slopes) and math.isfinite(depth)):
        return 0.0
    denom = slopes + alpha * depth + eps
    return 1.0 / denom if denom > 0 else math.inf


def auto_alpha(terms: Sequence[tuple[float, float]]) -> float:
    """alpha that gives the depth term the same spread as the slope sum over ``terms``.

    ``terms``: (slope sum, depth) per candidate, from :func:`flatness_terms`. Spread is the median
    absolute deviation (robust to a few blown-up candidates), the standard deviation if that is 0;
    alpha is 1 when the depths do not vary at all.
    """
    finite = [(a, b) for a, b in terms if math.isfinite(a) and math.isfinite(b)]
    if len(finite) < 2:
        raise ValueError(f"alpha='auto' needs at least 2 candidates with finite losses, got {len(finite)}")
    slopes, depths = np.array([t[0] for t in finite]), np.array([t[1] for t in finite])

    def spread(v):
        mad = float(np.median(np.abs(v - np.median(v))))
        return mad if mad > 0 else float(v.std())

    s_d = spread(depths)
    return spread(slopes) / s_d if s_d > 0 else 1.0


def _measure(ctx, genotype):
    """Losses under noise and (when the depth is at sigma=0) the unperturbed loss of a candidate,
    in exact fp32 (TF32 and autocast off: see :func:`genas.engine.precision.exact_fp32`)."""
    cfg = ctx.cfg
    net = ctx.recalibrated(genotype)
    candidate_key = None if cfg.common_noise else zlib.crc32(ctx.space.format(genotype).encode())
    with exact_fp32():
        measured = losses_under_noise(net, ctx.val_batches, cfg.stds, mode=cfg.noise_mode,
                                      samples=cfg.noise_samples, seed=cfg.seed, key_of=ctx.noise_key(genotype),
                                      candidate_key=candidate_key, scaling=cfg.noise_scaling,
                                      params=cfg.noise_params, antithetic=cfg.noise_antithetic,
                                      channels_last=cfg.channels_last, fuse_bn=cfg.fuse_bn)
    loss0 = ctx.evaluation(genotype)["loss"] if cfg.depth_at == "zero" else None
    return measured, loss0


def resolve_alpha(ctx) -> float:
    """The numeric alpha of ``ctx.cfg``; for "auto", fixed once per context on a seeded sample."""
    cfg = ctx.cfg
    if cfg.alpha != "auto":
        return float(cfg.alpha)
    key = (cfg.seed, cfg.alpha_auto_archs, cfg.stds, cfg.noise_mode, cfg.noise_scaling, cfg.noise_params,
           cfg.depth_at, cfg.noise_samples, cfg.common_noise, cfg.noise_antithetic)
    cached = getattr(ctx, "_auto_alpha", None)
    if cached is None or cached[0] != key:
        rng = seeding.derive_rng(cfg.seed, seeding.SEARCH, 7919)
        sample = [ctx.space.sample(rng) for _ in range(cfg.alpha_auto_archs)]
        terms = []
        for g in sample:
            measured, loss0 = _measure(ctx, g)
            terms.append(flatness_terms(measured.losses, cfg.stds, loss0))
        ctx._auto_alpha = (key, auto_alpha(terms))
    return ctx._auto_alpha[1]


@register("flatness", needs=("supernet",))
def flatness_proxy(ctx, genotype) -> ProxyResult:
    """FBS on inherited, BN-recalibrated weights; raw: loss per std (higher F = flatter and deeper)."""
    cfg = ctx.cfg
    alpha = resolve_alpha(ctx)
    measured, loss0 = _measure(ctx, genotype)
    value = flatness_score(measured.losses, cfg.stds, alpha, cfg.eps, loss0)
    raw = dict(losses=measured.losses, stds=list(cfg.stds))
    if loss0 is not None:
        raw["loss0"] = loss0
    if cfg.alpha == "auto":
        raw["alpha"] = alpha
    if cfg.noise_samples > 1:
        raw["losses_per_sample"] = measured.per_sample
    if measured.per_sign is not None:
        raw["losses_per_sign"] = measured.per_sign  # [std][sample][plus, minus]
    if not all(math.isfinite(v) for v in measured.losses):
        raw["blew_up"] = True
    return ProxyResult(value, raw)
