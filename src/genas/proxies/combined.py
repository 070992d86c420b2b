"""Combined metrics of GeNAS: a conventional score plus weighted flatness.

    angle+flatness     = angle/pi + gamma * (1/s1) * F
    accuracy+flatness  = accuracy + gamma * (1/s1) * F

(official ``--wlm_weight`` gamma; README uses 16 for angle+flatness). Each also reports
``flatness_share``: the flatness term's share of the total in %, the poster's "Flatness (%)".
"""
from __future__ import annotations

import math

from .registry import ProxyResult, get_proxy, register


def combine(base_value: float, flatness: float, gamma: float, s1: float) -> tuple[float, float, float]:
    """(total, flatness term, flatness share in %) of a combined metric; also used to derive the combined
    columns offline from recorded angle/accuracy and flatness scores (``genas combine``)."""
    term = gamma / s1 * flatness
    total = base_value + term
    share = 100.0 * term / total if total > 0 and math.isfinite(total) else float("nan")
    return total, term, share


def mean_share(base_values, flatness, gamma: float, s1: float) -> float:
    """Mean flatness share (%) of a combined metric over scored architectures (NaN rows left out)."""
    shares = [combine(b, f, gamma, s1)[2] for b, f in zip(base_values, flatness)]
    shares = [x for x in shares if math.isfinite(x)]
    return sum(shares) / len(shares) if shares else float("nan")


def gamma_for_share(base_values, flatness, target: float, s1: float) -> float:
    """The gamma whose mean flatness share over these architectures is ``target`` % (0 <= target < 100).

    The share grows monotonically with gamma (base values and flatness are positive), so a root
    search on log(gamma) finds it; this is how the collaborative-effect study picks its levels.
    """
    from scipy.optimize import brentq

    if not 0 <= target < 100:
        raise ValueError(f"a flatness share is in [0, 100) %, got {target:g}")
    if target == 0:
        return 0.0
    lo, hi = -30.0, 30.0  # log(gamma): shares of ~0 % and ~100 % for any scores of a sane scale
    f = lambda t: mean_share(base_values, flatness, math.exp(t), s1) - target
    if not f(lo) < 0 < f(hi):
        raise ValueError(f"no gamma gives a mean flatness share of {target:g} % on these scores")
    return math.exp(brentq(f, lo, hi, xtol=1e-10, rtol=1e-10))


def _combine(ctx, genotype, base_name: str, base_value: float, base_raw: dict) -> ProxyResult:
    flat = get_proxy("flatness")(ctx, genotype)
    total, term, share = combine(base_value, flat.value, ctx.cfg.gamma, ctx.cfg.stds[0])
    raw = {**base_raw, base_name: base_value, "flatness": flat.value, "flatness_term": term,
           "flatness_share": share, **{k: v for k, v in flat.raw.items()}}
    return ProxyResult(total, raw)


@register("angle+flatness", needs=("supernet", "init_weights", "path_vector"))
def angle_flatness(ctx, genotype) -> ProxyResult:
    a = get_proxy("angle")(ctx, genotype)
    return _combine(ctx, genotype, "angle_over_pi", a.value / math.pi, a.raw)


@register("accuracy+flatness", needs=("supernet",))
def accuracy_flatness(ctx, genotype) -> ProxyResult:
    a = get_proxy("accuracy")(ctx, genotype)
    return _combine(ctx, genotype, "accuracy", a.value, a.raw)
