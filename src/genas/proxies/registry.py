"""One registry for every proxy: ``score(ctx, genotype) -> ProxyResult``; higher is always better.

What a proxy needs is declared at registration (after NASLib's ``@measure(name, bn=...)``):

* ``"supernet"``: a trained supernet and its BN-recalibrated paths (:class:`ScoringContext`);
* ``"init_weights"``: the supernet's epoch-0 weights as well (the angle metric);
* ``"path_vector"``: a supernet with ``path_vector`` (spaces that support the angle metric);
* nothing: data-only proxies (zero-cost, params, FLOPs) on fresh stand-alone networks.

:func:`check_supported` turns an unmet need into one line before any scoring starts.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import GenasError
from ..registry import Registry

NEEDS = ("supernet", "init_weights", "path_vector")


@dataclass
class ProxyResult:
    value: float  # higher is better, for every proxy
    raw: dict = field(default_factory=dict)  # the measurements behind the value


PROXIES: Registry[Callable] = Registry("metric")


def register(name: str, needs: tuple[str, ...] = ()):
    """Decorator: register ``fn(ctx, genotype) -> ProxyResult`` as metric ``name``."""
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"proxy {name!r}: unknown needs {sorted(unknown)}; known: {', '.join(NEEDS)}")
    return PROXIES.register(name, needs=tuple(needs))


def list_proxies() -> list[str]:
    return PROXIES.names()


def get_proxy(name: str) -> Callable:
    return PROXIES.get(name)


def needs(name: str) -> tuple[str, ...]:
    """What metric ``name`` needs (see the module docstring)."""
    return PROXIES.meta(name)["needs"]


def needs_supernet(name: str) -> bool:
    return "supernet" in needs(name)


def check_supported(name: str, space, supernet=None) -> None:
    """One-line error when ``space`` (and its ``supernet``, if built) cannot provide what ``name`` needs."""
    wanted = needs(name)
    if "path_vector" in wanted and supernet is not None and not hasattr(supernet, "path_vector"):
        raise GenasError(f"metric {name!r} is not supported by the {space.name} space: its supernet has no "
                         f"path_vector (the angle metric's weight vectors)")


def make_evaluator(ctx, name: str, on_result: Callable | None = None) -> Callable:
    """An ``evaluate(genotypes) -> [{"score": ..., **raw}]`` callable for the search strategies."""
    proxy = get_proxy(name)
    check_supported(name, ctx.space, getattr(ctx, "supernet", None))

    def evaluate(genotypes):
        out = []
        for g in genotypes:
            t0 = time.perf_counter()
            result = proxy(ctx, tuple(g))
            record = {"score": float(result.value), **result.raw, "seconds": round(time.perf_counter() - t0, 4)}
            if on_result:
                on_result(g, record)
            out.append(record)
        return out

    return evaluate


__all__ = ["NEEDS", "PROXIES", "ProxyResult", "check_supported", "get_proxy", "list_proxies", "make_evaluator",
           "needs", "needs_supernet", "register"]
