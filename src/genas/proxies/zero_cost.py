"""Zero-cost proxies: score a *freshly initialised* stand-alone network, no supernet, no training.

Registered names (higher is always better): ``synflow``, ``nwot``, ``snip``, ``grad_norm``,
``jacov``, ``params``, ``flops``. They need only a :class:`~genas.proxies.context.ProxyContext`
(a ``ScoringContext`` is one too): every call builds its own network with
``ctx.fresh_network(genotype)`` (seeded, identical on every call) and uses the fixed seeded batch
``ctx.zero_cost_batch()`` (64 supernet-train images), so scores are deterministic and nothing the
context holds is modified (the cached batch is cloned, hooks live on the throw-away network).

Definitions follow the reference code of Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021 (github.com/SamsungLabs/zero-cost-nas, ``foresight/pruners/measures``) and of
Mellor et al. (NASWOT):

* ``synflow`` -- Tanaka et al., "Pruning neural networks without any data by iteratively
  conserving synaptic flow", NeurIPS 2020; for NAS as in Abdelfattah et al. All parameters are
  replaced by their absolute values, the network runs in float64 on one all-ones input of shape
  (1, C, H, W), R = sum of the logits, score = sum over conv/linear weights of |theta * dR/dtheta|.
  **BatchNorm is removed** (every ``BatchNorm2d`` replaced by the identity), as the reference does
  (``@measure('synflow', bn=False)`` builds the NB201 network without BN). Train-mode BN on a
  single constant image would normalise the signal away; eval-mode BN with fresh statistics
  would be the identity up to a factor (1 + eps)^-1/2 per layer, i.e. the same ranking.
* ``nwot`` -- Mellor et al., "Neural Architecture Search without Training", ICML 2021. Binary
  codes c = [x > 0] of the input of every ``nn.ReLU`` (flattened per image and concatenated over
  all ReLUs), K = c c^T + (1 - c)(1 - c)^T (N_units minus the Hamming distance), score =
  log|det K| from ``slogdet``. BN in train mode (the network as constructed), as the reference.
* ``snip`` -- Lee et al., "SNIP: Single-shot network pruning based on connection sensitivity",
  ICLR 2019, as in Abdelfattah et al.: sum over conv/linear weights of |theta * dL/dtheta|, L the
  mean cross-entropy of the batch, BN in train mode.
* ``grad_norm`` -- Abdelfattah et al.: the *sum of per-layer* L2 norms ||dL/dW||_2 over the
  conv/linear weights (the reference's ``get_grad_norm_arr`` summed by ``sum_arr``), not the norm
  of the concatenated gradient. BN in train mode.
* ``jacov`` -- Mellor et al., arXiv:2006.04647v1 (Jacobian covariance), as in Abdelfattah et
  al.'s ``jacob_cov``: J_n = d(sum of the logits of image n)/d(x_n), flattened per image, the
  correlation matrix of the J_n across the batch, its eigenvalues v, score =
  -sum(log(v + k) + 1/(v + k)) with k = 1e-5. BN in train mode (the reference backpropagates
  ``ones_like(y)`` through the whole batch, so the batch statistics are part of J).
* ``params`` -- number of parameters (``count_params``); ``flops`` -- multiply-accumulates of one
  image of shape (in_channels, image_size, image_size) (``count_macs``, the NB201/thop
  convention). Both rank larger networks higher, as the baselines of Abdelfattah et al.

Degenerate candidates. A cell with no path of non-``none`` edges from its input to its output
(e.g. ``(3, 0, 0, 0, 0, 0)`` or all-``none``) makes the logits independent of the input; every
proxy then returns the finite worst value :data:`WORST` (-1e9) with ``raw["degenerate"] = True``
(``params``/``flops`` still report the true count in ``raw``). A non-finite measurement (an
exactly singular NWOT kernel, a zero-variance Jacobian, an overflow) gets the same treatment, so
a search never sees NaN or infinities.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..engine.cost import count_macs, count_params
from .registry import ProxyResult, register

WORST = -1e9  # finite score of a degenerate candidate: below any real proxy value
JACOV_K = 1e-5  # eigenvalue offset of the Jacobian-covariance score (Mellor et al., v1)
ZC_BATCH = 64


# --- helpers (pure, tested on hand-made inputs) --------------------------------------------------
def nwot_kernel(codes: torch.Tensor | np.ndarray) -> np.ndarray:
    """K = c c^T + (1 - c)(1 - c)^T of a binary (N, units) code matrix, in float64.

    K[i, j] = units - Hamming(c_i, c_j). Summing this kernel over layers equals the kernel of the
    concatenated codes, which is how :func:`nwot_proxy` accumulates it.
    """
    c = torch.as_tensor(codes).to(torch.float64)
    return (c @ c.T + (1.0 - c) @ (1.0 - c).T).cpu().numpy()


def nwot_score(kernel: np.ndarray) -> float:
    """log|det K| (``numpy.linalg.slogdet``), as the NASWOT ``hooklogdet``; -inf if singular."""
    _, logdet = np.linalg.slogdet(np.asarray(kernel, dtype=np.float64))
    return float(logdet)


def jacov_score(jacobians: torch.Tensor | np.ndarray, k: float = JACOV_K) -> float:
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the (N, N) correlation matrix of the
    rows of the (N, D) Jacobian matrix. NaN when a row has zero variance (caller maps it to WORST)."""
    j = np.asarray(jacobians.detach().cpu() if isinstance(jacobians, torch.Tensor) else jacobians, dtype=np.float64)
    j = j.reshape(j.shape[0], -1)
    with np.errstate(all="ignore"):
        corr = np.corrcoef(j)
        if not np.all(np.isfinite(corr)):
            return math.nan
        v = np.linalg.eigvalsh(corr)  # symmetric: real eigenvalues (the reference's eig, real part)
        return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


# --- plumbing ------------------------------------------------------------------------------------
def _degenerate(name: str, reason: str, **raw) -> ProxyResult:
    return ProxyResult(WORST, {name: raw.pop(name, None), "degenerate": True, "reason": reason, **raw})


def _disconnected(ctx, genotype) -> bool:
    return not ctx.space.is_connected(genotype)


def _result(name: str, value: float, **raw) -> ProxyResult:
    if not math.isfinite(value):  # raw keeps JSON-safe values: the non-finite one is named in reason
        return _degenerate(name, f"non-finite {name} ({value})", **raw)
    return ProxyResult(float(value), {name: float(value), "degenerate": False, **raw})


def _weight_layers(net: nn.Module):
    """The layers the reference scores (``get_layer_metric_array``): conv and linear weights."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@contextmanager
def _autograd():
    """Gradients on, even if the caller is inside ``no_grad`` or ``inference_mode``."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def _batch(ctx) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ctx.zero_cost_batch(ZC_BATCH)
    return x.clone(), y.clone()  # never touch the cached tensors (requires_grad, inference flags)


def _zero_cost(name: str) -> Callable:
    """Register ``fn(ctx, genotype) -> float`` as proxy ``name`` with the degenerate-cell rule."""

    def wrap(fn):
        @register(name)
        def proxy(ctx, genotype) -> ProxyResult:
            genotype = tuple(int(g) for g in genotype)
            if _disconnected(ctx, genotype):
                return _degenerate(name, "disconnected cell: no path from input to output")
            with _autograd():
                value = fn(ctx, genotype)
            return _result(name, value)

        proxy.__doc__ = fn.__doc__
        proxy.__name__ = f"{name}_proxy"
        return proxy

    return wrap


# --- the proxies ---------------------------------------------------------------------------------
def _remove_batchnorm(net: nn.Module) -> nn.Module:
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, child_name, nn.Identity())
    return net


@_zero_cost("synflow")
def synflow(ctx, genotype) -> float:
    """SynFlow (Tanaka et al. 2020; Abdelfattah et al. 2021): BN removed, |theta|, float64, one
    all-ones input, sum over conv/linear weights of |theta * d(sum logits)/d theta|."""
    net = _remove_batchnorm(ctx.fresh_network(genotype)).double()
    shape = (1, ctx.data.in_channels, ctx.data.image_size, ctx.data.image_size)
    with torch.no_grad():
        for tensor in list(net.parameters()) + list(net.buffers()):
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad()
    out = net(torch.ones(shape, dtype=torch.float64, device=ctx.device))
    out.sum().backward()
    with torch.no_grad():
        layers = [m for m in _weight_layers(net) if m.weight.grad is not None]
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in layers))


@_zero_cost("nwot")
def nwot(ctx, genotype) -> float:
    """NASWOT (Mellor et al. 2021): log|det K| of the Hamming kernel of the ReLU codes of the batch."""
    x, _ = _batch(ctx)
    net = ctx.fresh_network(genotype).train()
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)

    def hook(module, inputs):
        nonlocal kernel
        c = (inputs[0].detach().reshape(n, -1) > 0).to(torch.float64)
        kernel += c @ c.T + (1.0 - c) @ (1.0 - c).T

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return nwot_score(kernel.cpu().numpy())


def _loss_grads(ctx, genotype) -> list[nn.Module]:
    x, y = _batch(ctx)
    net = ctx.fresh_network(genotype).train()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return _weight_layers(net)


@_zero_cost("snip")
def snip(ctx, genotype) -> float:
    """SNIP (Lee et al. 2019; Abdelfattah et al. 2021): sum over conv/linear weights of
    |theta * dL/dtheta|, L the cross-entropy of the batch, BN in train mode."""
    layers = _loss_grads(ctx, genotype)
    with torch.no_grad():
        return float(sum((m.weight * m.weight.grad).abs().sum() for m in layers if m.weight.grad is not None))


@_zero_cost("grad_norm")
def grad_norm(ctx, genotype) -> float:
    """grad_norm (Abdelfattah et al. 2021): sum over conv/linear layers of ||dL/dW||_2."""
    layers = _loss_grads(ctx, genotype)
    with torch.no_grad():
        return float(sum(m.weight.grad.norm() for m in layers if m.weight.grad is not None))


@_zero_cost("jacov")
def jacov(ctx, genotype) -> float:
    """Jacobian covariance (Mellor et al., arXiv:2006.04647v1): -sum(log(v+k) + 1/(v+k)) over the
    eigenvalues of the correlation matrix of the per-image input Jacobians, k = 1e-5."""
    x, _ = _batch(ctx)
    net = ctx.fresh_network(genotype).train()
    x.requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    return jacov_score(x.grad)


def _count(name: str, fn):
    @register(name)
    def proxy(ctx, genotype) -> ProxyResult:
        genotype = tuple(int(g) for g in genotype)
        count = int(fn(ctx, ctx.fresh_network(genotype)))
        if _disconnected(ctx, genotype):
            return _degenerate(name, "disconnected cell: no path from input to output", **{name: count})
        return ProxyResult(float(count), {name: count, "degenerate": False})

    proxy.__name__ = f"{name}_proxy"
    return proxy


params_proxy = _count("params", lambda ctx, net: count_params(net))
params_proxy.__doc__ = "Number of parameters of the stand-alone network (``count_params``)."
flops_proxy = _count("flops", lambda ctx, net: count_macs(
    net, (ctx.data.in_channels, ctx.data.image_size, ctx.data.image_size)))
flops_proxy.__doc__ = "Conv + linear MACs of one image (``count_macs``, NB201/thop convention)."

__all__ = ["WORST", "JACOV_K", "nwot_kernel", "nwot_score", "jacov_score"]
