"""Predictive proxies (PBS): top-1 accuracy and loss on the search-validation half, with inherited
weights after BN recalibration. ``loss`` is reported negated so that higher is better."""
from __future__ import annotations

from .registry import ProxyResult, register


@register("accuracy", needs=("supernet",))
def accuracy_proxy(ctx, genotype) -> ProxyResult:
    m = ctx.evaluation(genotype)
    return ProxyResult(m["accuracy"], dict(accuracy=m["accuracy"], loss=m["loss"]))


@register("loss", needs=("supernet",))
def loss_proxy(ctx, genotype) -> ProxyResult:
    m = ctx.evaluation(genotype)
    return ProxyResult(-m["loss"], dict(accuracy=m["accuracy"], loss=m["loss"]))
