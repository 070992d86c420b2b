"""Measuring a candidate's validation loss under weight noise: the forward passes behind FBS.

This is where scoring spends its time, so it is kept apart from the score's formula
(:mod:`genas.proxies.flatness`) and from how the noise is drawn (:mod:`genas.proxies.perturb`).

Speed without changing the result (see ``benchmarks/bench_flatness.py`` for the measurements):

* one host sync per noise level (losses are summed on the device), under inference mode;
* ``fuse_bn``: in eval mode a BatchNorm after a convolution is an affine map, so it is folded
  into the convolution's weight and bias. The noise perturbs both the conv weight and the BN
  affine, so the folding is redone after every perturbation, into a twin of the network;
  the perturbed network itself is never modified beyond what :func:`perturbed_levels` does.
* ``chunk``: forward the validation images in sub-batches of this size. On CPU small batches
  stay in cache and run faster than the large batches that keep the host loop short on GPU.
* ``channels_last``: run the twin and its inputs in NHWC memory format.

All of these change only floating-point rounding (about 1e-7 relative on the losses).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .perturb import perturbed_levels


@dataclass
class NoiseLosses:
    losses: list[float]  # mean loss per std, averaged over noise samples (and signs)
    per_sample: list[list[float]]  # [std][sample]; with antithetic pairs, the mean of the pair
    per_sign: list[list[list[float]]] | None = None  # antithetic: [std][sample][plus, minus]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    """A conv followed by an eval-mode BN with running statistics can absorb it."""
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not bn.training
            and bn.track_running_stats and bn.running_var is not None and conv.out_channels == bn.num_features)


def _conv_bn_pairs(net: nn.Module) -> list[tuple[str, str]]:
    """Qualified names of (conv, bn) pairs that follow each other inside an ``nn.Sequential``."""
    pairs = []
    for prefix, module in net.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_a, a), (name_b, b) in zip(children, children[1:]):
            if _foldable(a, b):
                pairs.append((f"{prefix}.{name_a}" if prefix else name_a, f"{prefix}.{name_b}" if prefix else name_b))
    return pairs


class _FastTwin:
    """A copy of ``net`` with its conv+BN pairs folded, refreshed from ``net``'s current weights.

    Built once per call; :meth:`refresh` is called after every perturbation so the twin
    computes exactly the perturbed network's function (up to rounding).
    """

    def __init__(self, net: nn.Module, fuse_bn: bool, channels_last: bool):
        self.net = net
        self.twin = copy.deepcopy(net).eval()
        modules = dict(net.named_modules())
        twin_modules = dict(self.twin.named_modules())
        self.folds = []
        folded_params = set()
        for conv_name, bn_name in (_conv_bn_pairs(net) if fuse_bn else []):
            twin_conv = twin_modules[conv_name]
            if twin_conv.bias is None:
                twin_conv.bias = nn.Parameter(torch.zeros(twin_conv.out_channels, device=twin_conv.weight.device,
                                                          dtype=twin_conv.weight.dtype), requires_grad=False)
            parent, _, child = bn_name.rpartition(".")
            setattr(twin_modules[parent] if parent else self.twin, child, nn.Identity())
            self.folds.append((modules[conv_name], modules[bn_name], twin_conv))
            folded_params |= {f"{conv_name}.{n}" for n, _ in modules[conv_name].named_parameters()}
            folded_params |= {f"{bn_name}.{n}" for n, _ in modules[bn_name].named_parameters()}
        twin_params = dict(self.twin.named_parameters())
        self.copies = [(p, twin_params[name]) for name, p in net.named_parameters() if name not in folded_params]
        self.channels_last = channels_last
        if channels_last:
            self.twin.to(memory_format=torch.channels_last)

    def refresh(self) -> None:
        """Load ``net``'s current (perturbed) weights into the twin, folding BN into conv."""
        for src, dst in self.copies:
            dst.copy_(src)
        for conv, bn, dst in self.folds:
            scale = torch.rsqrt(bn.running_var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight
            shift = -bn.running_mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            dst.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            dst.bias.copy_(shift)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.twin(x)


def _rechunk(batches: list, chunk: int | None) -> list:
    """Split the cached batches into views of at most ``chunk`` images (no copy)."""
    if chunk is None:
        return batches
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [(x[i:i + chunk], y[i:i + chunk]) for x, y in batches for i in range(0, len(y), chunk)]


def _summed_loss(forward, batches: list) -> torch.Tensor:
    """Sum of per-image cross-entropies on the device (float64): no host sync inside the loop."""
    total = torch.zeros((), dtype=torch.float64, device=batches[0][0].device)
    for x, y in batches:
        total += nn.functional.cross_entropy(forward(x).float(), y, reduction="sum").double()
    return total


@torch.inference_mode()
def losses_under_noise(net: torch.nn.Module, batches: list, stds: Sequence[float], *, samples: int = 1,
                       seed: int = 0, channels_last: bool = True, fuse_bn: bool = False,
                       chunk: int | None = None, antithetic: bool = False, **perturb_kwargs) -> NoiseLosses:
    """Mean per-image validation loss of ``net`` at each noise std, restoring its weights after.

    ``batches`` is a list of (x, y) already on the net's device. ``perturb_kwargs`` (noise mode,
    scaling, which parameters, common random numbers) go to
    :func:`genas.proxies.perturb.perturbed_levels` unchanged. ``fuse_bn``, ``chunk`` and
    ``channels_last`` only change speed (see the module docstring); ``channels_last=False,
    fuse_bn=False, chunk=None`` is the plain computation. ``antithetic``: every draw is measured at
    +d and -d (twice the passes) and the pair averaged, cancelling its first-order loss change.
    Defaults: what measured fastest on a
    2-core CPU (``benchmarks/bench_flatness.py --ablation``): NHWC pays (~1.5x), folding BN did
    not (no gain with NHWC, a loss without it), so it stays off; the chunk is the caller's.
    """
    net.eval()
    batches = _rechunk(batches, chunk)
    n_images = sum(len(y) for _, y in batches)
    fast = fuse_bn or channels_last
    twin = _FastTwin(net, fuse_bn, channels_last) if fast else None
    signs = (1, -1) if antithetic else (1,)
    per_sign = [[[0.0] * len(signs) for _ in range(samples)] for _ in stds]
    for s in range(samples):
        for j, sign in enumerate(signs):
            for k, _ in perturbed_levels(net, stds, sample=s, seed=seed, sign=sign, **perturb_kwargs):
                if twin is not None:
                    twin.refresh()
                per_sign[k][s][j] = _summed_loss(twin if fast else net, batches).item() / n_images
    per_sample = [[sum(v) / len(signs) if antithetic else v[0] for v in level] for level in per_sign]
    return NoiseLosses([sum(v) / samples for v in per_sample], per_sample, per_sign if antithetic else None)
