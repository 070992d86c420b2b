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
