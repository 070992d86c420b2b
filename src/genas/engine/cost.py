"""Parameter and FLOP counts with PyTorch's own counter (``torch.utils.flop_counter``).

``macs`` follows the NAS-Bench-201 / thop convention: multiply-accumulates of convolutions and
linear layers only (BN, ReLU, pooling and additions count 0); ``flops`` is PyTorch's count, which
is 2 x MACs for those ops.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(net: torch.nn.Module, exclude: str | None = None) -> int:
    return sum(p.numel() for name, p in net.named_parameters() if not (exclude and exclude in name))


@torch.no_grad()
def count_macs(net: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv + linear MACs of one forward pass of a single input of ``input_shape`` (C, H, W)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter:
        net(torch.zeros(1, *input_shape, device=device))
    net.train(was_training)
    return counter.get_total_flops() // 2
