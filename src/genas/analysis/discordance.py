"""Who is right where two proxies disagree: the discordant-pair statistic of the flatness-vs-loss study.

Two proxies ``a`` and ``b`` that rank most architectures alike can only differ in what they say about
the ground truth on the pairs they order differently. On those *discordant* pairs (tied pairs in
``a``, ``b`` or the truth left out)

    D = (pairs a orders as the truth does - pairs b orders as the truth does) / discordant pairs,

so D is in [-1, 1] and D = 0 means neither is better where they differ. Pairs share architectures,
so the uncertainty comes from a bootstrap over *architectures* (a resample's repeated architecture
forms tied pairs with itself, which drop out). Everything here is numpy; the pair counts are O(n^2)
in memory, fine for the few hundred architectures of a ground-truth study.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _signs(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """sign(v[i] - v[j]) for every ordered pair of ``idx`` (a matrix)."""
    x = v[idx]
    return np.sign(x[:, None] - x[None, :])


def discordant_advantage(a: Sequence[float], b: Sequence[float], truth: Sequence[float],
                         idx: np.ndarray | None = None) -> tuple[float, int]:
    """``(D, number of discordant pairs)`` of proxies ``a`` and ``b`` against ``truth`` on the
    architectures ``idx`` (default all; repeats allowed, as in a bootstrap resample). D is NaN when
    there is no discordant pair."""
    a, b, t = (np.asarray(v, dtype=float) for v in (a, b, truth))
    idx = np.arange(len(a)) if idx is None else np.asarray(idx)
    sa, sb, st = _signs(a, idx), _signs(b, idx), _signs(t, idx)
    upper = np.triu(np.ones(sa.shape, dtype=bool), 1)
    disc = upper & (sa * sb < 0) & (st != 0)
    n = int(disc.sum())
    if n == 0:
        return float("nan"), 0
    a_right = int((disc & (sa == st)).sum())
    return (a_right - (n - a_right)) / n, n  # on a discordant pair exactly one of a, b agrees with the truth


def _pair_matrices(a, b, truth) -> tuple[np.ndarray, np.ndarray]:
    """Per pair of architectures: 1 where the pair is discordant (``disc``), and +1 / -1 where ``a`` /
    ``b`` is the one right on it (``score``). Both are symmetric with a zero diagonal."""
    idx = np.arange(len(a))
    sa, sb, st = (_signs(np.asarray(v, dtype=float), idx) for v in (a, b, truth))
    disc = (sa * sb < 0) & (st != 0)
    return disc.astype(float), np.where(disc, np.where(sa == st, 1.0, -1.0), 0.0)


def _resampled(disc: np.ndarray, score: np.ndarray, idx: np.ndarray) -> tuple[float, int]:
    """``discordant_advantage`` of the resample ``idx`` from the pair matrices. Each pair of resample
    positions (p < q) is a pair of architectures, and the matrices are symmetric with a zero diagonal,
    so the sums over those pairs are w'Mw / 2 with w the count of each architecture in the resample:
    the same integers, O(k^2) without building the resample's own matrices."""
    w = np.bincount(idx, minlength=len(disc)).astype(float)
    n = int(round(w @ disc @ w / 2))
    if n == 0:
        return float("nan"), 0
    margin = int(round(w @ score @ w / 2))  # (a right) - (b right), exact: integers far below 2**53
    a_right = (margin + n) // 2
    return (a_right - (n - a_right)) / n, n


def bootstrap_ci(a: Sequence[float], b: Sequence[float], truth: Sequence[float], resamples: int = 10_000,
                 seed: int = 0, confidence: float = 0.95) -> dict:
    """D with a percentile-bootstrap CI over architectures (numpy ``default_rng(seed)``); resamples
    without a discordant pair are left out and counted."""
    d, n = discordant_advantage(a, b, truth)
    rng = np.random.default_rng(seed)
    k = len(np.asarray(a))
    disc, score = _pair_matrices(a, b, truth)
    values = []
    for _ in range(resamples):
        v, m = _resampled(disc, score, rng.integers(0, k, k))
        if m:
            values.append(v)
    lo, hi = (np.percentile(values, [50 * (1 - confidence), 50 * (1 + confidence)]).tolist()
              if values else (float("nan"), float("nan")))
    return dict(D=d, discordant_pairs=n, ci=[lo, hi], confidence=confidence, resamples=resamples,
                resamples_without_pairs=resamples - len(values), seed=seed, architectures=k)


def decision(ci: Sequence[float], a: str = "FBS", b: str = "the loss") -> str:
    """The pre-registered reading of a CI of D: lower bound > 0, upper bound < 0, or neither."""
    lo, hi = ci
    if lo > 0:
        return f"{a} adds information beyond {b}"
    if hi < 0:
        return f"{b} is better"
    return "no detectable information"


__all__ = ["bootstrap_ci", "decision", "discordant_advantage"]
