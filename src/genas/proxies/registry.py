"""One registry for every proxy: ``score(ctx, genotype) -> ProxyResult``; higher is always better."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import GenasError


@dataclass
class ProxyResult:
    value: float  # higher is better, for every proxy
    raw: dict = field(default_factory=dict)  # the measurements behind the value


_PROXIES: dict[str, Callable] = {}


def register(name: str):
    def wrap(fn):
        if name in _PROXIES:
            raise ValueError(f"proxy {name!r} registered twice")
        _PROXIES[name] = fn
        return fn

    return wrap


def list_proxies() -> list[str]:
    return sorted(_PROXIES)


def get_proxy(name: str) -> Callable:
    try:
        return _PROXIES[name]
    except KeyError:
        raise GenasError(f"unknown metric {name!r}; registered: {', '.join(list_proxies())}") from None


def make_evaluator(ctx, name: str, on_result: Callable | None = None) -> Callable:
    """An ``evaluate(genotypes) -> [{"score": ..., **raw}]`` callable for the search strategies."""
    proxy = get_proxy(name)

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
