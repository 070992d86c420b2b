"""Gaussian weight perturbation for the flatness proxy, with exact restore.

Noise modes, for stds s_1 < ... < s_t and weights theta:

* ``independent`` (default, the poster's formula): level k uses theta + s_k * e_k, a fresh
  standard-normal draw e_k per level.
* ``cumulative`` (the official GeNAS code, which chose it to save memory): level k uses
  theta_{k-1} + (s_k - s_{k-1}) * e_k, so the effective std at level k is
  sqrt(sum_j (s_j - s_{j-1})^2), smaller than the nominal s_k (0.001, 0.0022, 0.0037 for
  0.001/0.003/0.006). Level 1 is identical in both modes.

Every parameter is perturbed (conv weights, BN affine, stem, classifier), as in the official
code; BN running statistics are not. Noise is drawn on the CPU from a generator keyed by
(seed, parameter key, level, sample), so it is identical on every device and every run.
With *common random numbers* (``candidate_key=None``) the key is the parameter's identity in
the supernet, so candidates sharing an op see exactly the same noise on it and rank differences
come from the architectures, not the draw. Passing a ``candidate_key`` mixes it into the key,
giving each candidate its own noise (the official code's behaviour, but reproducible).

Noise scaling (``scaling``), the direction ``d`` added as ``s_k * d``:

* ``absolute`` (GeNAS): ``d = e``, the same std for every weight whatever its size.
* ``element`` (element-relative, as ASAM's adaptive sharpness, Kwon et al. 2021): ``d = |theta| * e``,
  so ``s_k`` is a relative perturbation of each weight; zero weights stay put.
* ``filter`` (filter-normalized, Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets"):
  per filter (a slice along the first dimension: a conv output channel, a row of a linear layer)
  ``d_f = e_f / ||e_f|| * ||theta_f||``, so the perturbation of each filter has norm
  ``s_k * ||theta_f||``. This removes the scale invariance that BN gives conv filters. A 1-D
  parameter (BN affine, bias) is treated as one filter; Li et al. leave those unperturbed, which is
  ``params="weights"``.

Which parameters (``params``): ``all`` (the official code) or ``weights`` (conv and linear weights,
i.e. tensors of 2+ dimensions; BN affine parameters and biases keep their values bitwise). With a
relative scaling and ``cumulative`` mode the direction is always relative to the unperturbed weights.

Antithetic pairs (``sign=-1``): the same draw with the direction negated, theta - s_k * d (in
``cumulative`` mode the mirrored walk). A draw's loss change is g.(s d) + O(s^2) with g the gradient at
the inherited weights, which is not zero; the mean of the +/- pair cancels the linear term exactly and
keeps the curvature term that flatness is about.
"""
from __future__ import annotations

import zlib
from typing import Callable, Iterator, Sequence

import torch

from .. import seeding

NOISE_MODES = ("independent", "cumulative")
NOISE_SCALINGS = ("absolute", "element", "filter")
NOISE_PARAMS = ("all", "weights")


def noise_like(param: torch.Tensor, key: str, level: int, sample: int, seed: int,
               candidate_key: int | None = None) -> torch.Tensor:
    """A standard-normal tensor shaped like ``param``, determined by its keys only."""
    keys = [seed, seeding.NOISE, zlib.crc32(key.encode()), level, sample]
    if candidate_key is not None:
        keys.append(candidate_key)
    gen = torch.Generator().manual_seed(seeding.derive_seed(*keys))
    return torch.randn(param.shape, generator=gen, dtype=torch.float32).to(param.device, param.dtype)


def scaled_direction(eps: torch.Tensor, theta: torch.Tensor, scaling: str) -> torch.Tensor:
    """The noise direction ``d`` for weights ``theta`` from a standard-normal draw ``eps``."""
    if scaling == "absolute":
        return eps
    if scaling == "element":
        return eps * theta.abs()
    if scaling == "filter":
        dims = tuple(range(1, theta.dim())) if theta.dim() > 1 else None
        e_norm = torch.linalg.vector_norm(eps, dim=dims, keepdim=True)
        t_norm = torch.linalg.vector_norm(theta, dim=dims, keepdim=True)
        return eps * (t_norm / e_norm.clamp_min(torch.finfo(eps.dtype).tiny))
    raise ValueError(f"unknown noise scaling {scaling!r}; use one of {', '.join(NOISE_SCALINGS)}")


def perturbed_parameters(net: torch.nn.Module, params: str = "all") -> list[tuple[str, torch.Tensor]]:
    """The (name, parameter) pairs the noise touches: all, or conv/linear weights only."""
    if params not in NOISE_PARAMS:
        raise ValueError(f"unknown noise params {params!r}; use one of {', '.join(NOISE_PARAMS)}")
    return [(n, p) for n, p in net.named_parameters() if params == "all" or p.dim() >= 2]


def perturbed_levels(net: torch.nn.Module, stds: Sequence[float], *, mode: str = "independent", sample: int = 0,
                     seed: int = 0, key_of: Callable[[str], str] | None = None,
                     candidate_key: int | None = None, scaling: str = "absolute",
                     params: str = "all", sign: int = 1) -> Iterator[tuple[int, float]]:
    """Set ``net``'s parameters to each noise level in turn, yielding (level index, std).

    The original weights are restored bitwise when the iteration ends, fails or is abandoned.
    ``key_of`` maps a parameter name to its noise key (default: the name itself). ``sign=-1`` gives
    the antithetic partner of the same draw (the direction negated); ``sign=1`` is bitwise the plain draw.
    """
    if sign not in (1, -1):
        raise ValueError(f"noise sign must be 1 or -1, got {sign!r}")
    if mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {mode!r}; use one of {', '.join(NOISE_MODES)}")
    if scaling not in NOISE_SCALINGS:
        raise ValueError(f"unknown noise scaling {scaling!r}; use one of {', '.join(NOISE_SCALINGS)}")
    chosen = perturbed_parameters(net, params)
    originals = [p.detach().clone() for _, p in chosen]
    keys = [key_of(name) if key_of else name for name, _ in chosen]
    try:
        prev = 0.0
        for k, std in enumerate(stds):
            with torch.no_grad():  # not held across the yield: grad mode stays the caller's
                for (_, p), orig, key in zip(chosen, originals, keys):
                    d = scaled_direction(noise_like(p, key, k, sample, seed, candidate_key), orig, scaling)
                    if mode == "independent":
                        p.copy_(orig + (sign * std) * d)
                    else:
                        p.add_((sign * (std - prev)) * d)
            prev = std
            yield k, std
    finally:
        with torch.no_grad():
            for (_, p), orig in zip(chosen, originals):
                p.copy_(orig)
