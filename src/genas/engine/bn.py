"""BatchNorm recalibration for inherited supernet weights (SPOS; Guo et al., 2020).

A supernet's BN running statistics mix every path it trained, so before scoring a candidate its
statistics are reset and re-estimated on supernet-train images in train mode. Two modes:

* ``exact`` (default): momentum None, i.e. PyTorch's cumulative average, so every
  recalibration batch counts equally and nothing of the reset values remains.
* ``official``: the GeNAS code's behaviour: reset to mean 0 / var 1 and update with the default
  EMA momentum 0.1; after 14 batches about 0.9^14 = 23 % of the reset prior remains.

``channels_last``: run the recalibration forward in NHWC memory format (weights and inputs), then
return the network to its previous layout. On CPU the convolutions run about 2x faster in NHWC; the
statistics change only by rounding of the reductions (~1e-7 relative; flatness scores within ~3e-6,
ranking unchanged: BENCHMARKS.md, "Flatness scorer").
"""
from __future__ import annotations

import torch
from torch.nn.modules.batchnorm import _BatchNorm

BN_MODES = ("exact", "official")


@torch.no_grad()
def recalibrate_bn(net: torch.nn.Module, batches, mode: str = "exact", channels_last: bool = False) -> int:
    """Re-estimate ``net``'s BN running statistics on ``batches`` (x, y); returns images used.

    Leaves ``net`` in eval mode with its momentum settings and parameter layout unchanged.
    """
    if mode not in BN_MODES:
        raise ValueError(f"unknown BN recalibration mode {mode!r}; use one of {', '.join(BN_MODES)}")
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        if mode == "exact":
            m.momentum = None
    layouts = [(p, p.is_contiguous()) for p in net.parameters() if p.dim() == 4] if channels_last else []
    if channels_last:
        net.to(memory_format=torch.channels_last)
    net.train()
    n = 0
    try:
        for x, _ in batches:
            net(x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x)
            n += len(x)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        for p, contiguous in layouts:  # the same values in the layout they had
            if contiguous:
                p.data = p.data.contiguous()
        net.eval()
    return n
