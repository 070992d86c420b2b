"""Proxies that score a candidate with inherited supernet weights; higher is always better.

Registered names: flatness (FBS), angle (ABS), accuracy, loss, angle+flatness, accuracy+flatness.
"""
from . import accuracy, angle, combined, flatness, zero_cost  # noqa: F401  (registers the proxies)
from .context import ProxyContext, ScoringConfig, ScoringContext
from .flatness import flatness_score
from .measure import losses_under_noise
from .registry import ProxyResult, get_proxy, list_proxies, make_evaluator, register

__all__ = ["ProxyContext", "ScoringConfig", "ScoringContext", "ProxyResult", "flatness_score", "losses_under_noise",
           "get_proxy", "list_proxies", "make_evaluator", "register"]
