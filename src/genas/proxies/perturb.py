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
"""
from __future__ import annotations

import zlib
from typing import Callable, Iterator, Sequence

import torch

from .. import seeding

NOISE_MODES = ("independent", "cumulative")


def noise_like(param: torch.Tensor, key: str, level: int, sample: int, seed: int,
               candidate_key: int | None = None) -> torch.Tensor:
    """A standard-normal tensor shaped like ``param``, determined by its keys only."""
    keys = [seed, seeding.NOISE, zlib.crc32(key.encode()), level, sample]
    if candidate_key is not None:
        keys.append(candidate_key)
    gen = torch.Generator().manual_seed(seeding.derive_seed(*keys))
    return torch.randn(param.shape, generator=gen, dtype=torch.float32).to(param.device, param.dtype)


def perturbed_levels(net: torch.nn.Module, stds: Sequence[float], *, mode: str = "independent", sample: int = 0,
                     seed: int = 0, key_of: Callable[[str], str] | None = None,
                     candidate_key: int | None = None) -> Iterator[tuple[int, float]]:
    """Set ``net``'s parameters to each noise level in turn, yielding (level index, std).

    The original weights are restored bitwise when the iteration ends, fails or is abandoned.
    ``key_of`` maps a parameter name to its noise key (default: the name itself).
    """
    if mode not in NOISE_MODES:
        raise ValueError(f"unknown noise mode {mode!r}; use one of {', '.join(NOISE_MODES)}")
    params = [(name, p) for name, p in net.named_parameters()]
    originals = [p.detach().clone() for _, p in params]
    keys = [key_of(name) if key_of else name for name, _ in params]
    try:
        prev = 0.0
        for k, std in enumerate(stds):
            with torch.no_grad():  # not held across the yield: grad mode stays the caller's
                for (_, p), orig, key in zip(params, originals, keys):
                    eps = noise_like(p, key, k, sample, seed, candidate_key)
                    if mode == "independent":
                        p.copy_(orig + std * eps)
                    else:
                        p.add_((std - prev) * eps)
            prev = std
            yield k, std
    finally:
        with torch.no_grad():
            for (_, p), orig in zip(params, originals):
                p.copy_(orig)
