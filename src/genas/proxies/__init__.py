"""Proxies that score a candidate; higher is always better.

Registered names: flatness (FBS), angle (ABS), accuracy, loss, angle+flatness, accuracy+flatness
(supernet proxies), and the zero-cost proxies synflow, nwot, snip, grad_norm, jacov, params, flops.
"""
from . import accuracy, angle, combined, flatness, zero_cost  # noqa: F401  (registers the proxies)
from .config import FLATNESS_PRESETS, ScoringConfig, scoring_config
from .context import ProxyContext, ScoringContext
from .flatness import flatness_score
from .measure import losses_under_noise
from .registry import PROXIES, ProxyResult, get_proxy, list_proxies, make_evaluator, needs_supernet, register

__all__ = ["FLATNESS_PRESETS", "PROXIES", "ProxyContext", "ScoringConfig", "ScoringContext", "ProxyResult",
           "flatness_score", "losses_under_noise", "get_proxy", "list_proxies", "make_evaluator", "needs_supernet",
           "register", "scoring_config"]
