"""BatchNorm recalibration for inherited supernet weights (SPOS; Guo et al., 2020).

A supernet's BN running statistics mix every path it trained, so before scoring a candidate its
statistics are reset and re-estimated on supernet-train images in train mode. Two modes:

* ``exact`` (default): momentum None, i.e. PyTorch's cumulative average, so every
  recalibration batch counts equally and nothing of the reset values remains.
* ``official``: the GeNAS code's behaviour: reset to mean 0 / var 1 and update with the default
  EMA momentum 0.1; after 14 batches about 0.9^14 = 23 % of the reset prior remains.
"""
from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

BN_MODES = ("exact", "official")


@torch.no_grad()
def recalibrate_bn(net: torch.nn.Module, batches, mode: str = "exact") -> int:
    """Re-estimate ``net``'s BN running statistics on ``batches`` (x, y); returns images used.

    Leaves ``net`` in eval mode with its momentum settings unchanged.
    """
    if mode not in BN_MODES:
        raise ValueError(f"unknown BN recalibration mode {mode!r}; use one of {', '.join(BN_MODES)}")
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        if mode == "exact":
            m.momentum = None
    net.train()
    n = 0
    try:
        for x, _ in batches:
            net(x)
            n += len(x)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        net.eval()
    return n
