"""What every supernet proxy needs: the trained supernet, its epoch-0 weights, fixed data batches.

Candidates are scored on a *copy* of their single path (``supernet.extract``), so recalibrating
BN or adding noise never touches the shared supernet: the next candidate sees exactly the same
weights and buffers. The BN-recalibration and validation batches are drawn once (seeded) and
cached on the device, so every candidate is measured on the same images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import seeding
from ..data import Data
from ..errors import GenasError
from ..spaces import SearchSpace
from .bn import BN_MODES, recalibrate_bn
from .perturb import NOISE_MODES, NOISE_PARAMS, NOISE_SCALINGS

DEPTH_AT = ("sigma1", "zero")


@dataclass
class ScoringConfig:
    """Settings of the supernet proxies. Defaults follow GeNAS except where noted."""

    bn_images: int = 896  # official: 850 -> 14 batches of 64
    bn_batch_size: int = 64
    bn_mode: str = "exact"  # "official": EMA momentum 0.1 after reset (see proxies/bn.py)
    val_images: int | None = 3000  # search-validation images (None: the whole half; official 25k). 3000 from
    # results/flatness-stability: 1/10 of the official passes at Kendall tau 0.88 vs 0.90 for the official 30k
    batch_size: int = 500  # evaluation batch (does not change the result)
    channels_last: bool = True  # NHWC forward passes under noise: ~1.5x on CPU, rounding only (benchmarks/bench_flatness.py)
    fuse_bn: bool = False  # fold BN into convs per noise level: rounding only; measured no gain on CPU
    stds: tuple[float, ...] = (0.001, 0.003, 0.006)
    alpha: float | str = 1.0  # weight of the depth term |L(s1)/s1|, or "auto" (see proxies/flatness.py)
    alpha_auto_archs: int = 20  # size of the seeded sample that fixes alpha="auto"
    depth_at: str = "sigma1"  # where the depth term is measured: "sigma1" (GeNAS) or "zero" (unperturbed loss)
    eps: float = 1e-5  # official denominator guard
    noise_mode: str = "independent"  # or "cumulative" (official code)
    noise_samples: int = 1  # noise draws per std, averaged
    noise_scaling: str = "absolute"  # "element" (relative to |w|) or "filter" (filter-normalized); see perturb.py
    noise_params: str = "all"  # "weights": conv/linear weights only, BN affine and biases unperturbed
    common_noise: bool = True  # common random numbers across candidates
    gamma: float = 16.0  # weight of flatness in the combined metrics (official README: 16)
    dil_conv_quirk: bool = False  # DARTS angle: reproduce the official [bn.w, bn.w] dil_conv vector
    seed: int = 0

    def validate(self) -> "ScoringConfig":
        from .flatness import flatness_score

        self.stds = tuple(float(s) for s in self.stds)
        if isinstance(self.alpha, str) and self.alpha != "auto":
            try:
                self.alpha = float(self.alpha)
            except ValueError:
                raise GenasError(f"--alpha must be a number >= 0 or 'auto', got {self.alpha!r}") from None
        try:
            flatness_score([1.0] * len(self.stds), self.stds, 1.0 if self.alpha == "auto" else self.alpha, self.eps)
        except ValueError as exc:
            raise GenasError(f"bad flatness settings: {exc}") from None
        for name, allowed in (("depth_at", DEPTH_AT), ("noise_scaling", NOISE_SCALINGS), ("noise_params", NOISE_PARAMS)):
            if getattr(self, name) not in allowed:
                raise GenasError(f"unknown --{name.replace('_', '-')} {getattr(self, name)!r}; use {', '.join(allowed)}")
        if self.alpha == "auto" and self.alpha_auto_archs < 2:
            raise GenasError(f"--alpha-auto-archs must be >= 2, got {self.alpha_auto_archs}")
        if self.bn_mode not in BN_MODES:
            raise GenasError(f"unknown --bn-mode {self.bn_mode!r}; use {', '.join(BN_MODES)}")
        if self.noise_mode not in NOISE_MODES:
            raise GenasError(f"unknown --noise-mode {self.noise_mode!r}; use {', '.join(NOISE_MODES)}")
        for name in ("bn_images", "bn_batch_size", "batch_size", "noise_samples"):
            if getattr(self, name) < 1:
                raise GenasError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.val_images is not None and self.val_images < 1:
            raise GenasError(f"--val-images must be >= 1, got {self.val_images}")
        return self


# Named flatness settings (``--flatness-preset``); explicit options override them.
FLATNESS_PRESETS = {
    # GeNAS as published: absolute noise on every parameter, sigma = 0.001/0.003/0.006, alpha = 1 with the depth
    # at sigma_1, a fresh draw per level (the poster's formula)
    "paper": dict(stds=(0.001, 0.003, 0.006), alpha=1.0, depth_at="sigma1", noise_scaling="absolute",
                  noise_params="all", noise_mode="independent", noise_samples=1),
    # the official code: as "paper" with cumulative noise, its EMA BN recalibration and per-candidate noise
    "official": dict(stds=(0.001, 0.003, 0.006), alpha=1.0, depth_at="sigma1", noise_scaling="absolute",
                     noise_params="all", noise_mode="cumulative", noise_samples=1, bn_mode="official",
                     common_noise=False),
    # the best variant of results/flatness-calibration (NB201 on Fashion-MNIST): the paper's noise with
    # alpha="auto" (depth and slope terms balanced by their spread). Not the default: its held-out check
    # did not beat the paper preset (see that README)
    "calibrated": dict(stds=(0.001, 0.003, 0.006), alpha="auto", depth_at="sigma1", noise_scaling="absolute",
                       noise_params="all", noise_mode="independent", noise_samples=1),
}


def scoring_config(preset: str | None = None, **overrides) -> ScoringConfig:
    """A validated ScoringConfig: defaults, then the flatness preset, then every override that is not None."""
    values = {}
    if preset is not None:
        if preset not in FLATNESS_PRESETS:
            raise GenasError(f"unknown --flatness-preset {preset!r}; available: {', '.join(FLATNESS_PRESETS)}")
        values.update(FLATNESS_PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ScoringConfig(**values).validate()


class ProxyContext:
    """What data-only proxies (zero-cost, params, FLOPs) need: no supernet, fresh networks.

    ``network_kwargs`` builds the stand-alone network of a genotype (channels, cells per stage,
    classes, input channels); ``fresh_network`` gives it seeded initial weights, the same for a
    genotype on every call.
    """

    def __init__(self, space: SearchSpace, data: Data, cfg: ScoringConfig, network_kwargs: dict,
                 device: torch.device | str = "cpu"):
        self.space, self.data, self.cfg = space, data, cfg.validate()
        self.device = torch.device(device)
        self.network_kwargs = dict(network_kwargs)
        self._zc_batch = None

    def fresh_network(self, genotype: Sequence[int], seed: int | None = None) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seeding.derive_seed(self.cfg.seed if seed is None else seed, seeding.INIT, 2))
            return self.space.build_network(tuple(genotype), **self.network_kwargs).to(self.device)

    def zero_cost_batch(self, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """One fixed, seeded batch of supernet-train images (no augmentation) for zero-cost proxies."""
        if self._zc_batch is None or len(self._zc_batch[1]) != size:
            idx = seeding.derive_rng(self.cfg.seed, seeding.DATA, 11).choice(self.data.train_idx, size, replace=False)
            x, y = next(iter(self.data.train.batches(idx, size, train=False)))
            self._zc_batch = (x.to(self.device), y.to(self.device))
        return self._zc_batch


class ScoringContext(ProxyContext):
    """Adds the trained supernet (and its epoch-0 weights) for the supernet proxies."""

    def __init__(self, space: SearchSpace, supernet: torch.nn.Module, data: Data, cfg: ScoringConfig,
                 device: torch.device | str = "cpu", init_state: dict | None = None,
                 final_state: dict | None = None):
        kwargs = supernet.config() if hasattr(supernet, "config") else {}
        super().__init__(space, data, cfg, kwargs, device)
        self.supernet = supernet.to(self.device).eval()
        self.init_state = init_state
        self.final_state = final_state if final_state is not None else {
            k: v.detach().cpu() for k, v in supernet.state_dict().items()}
        val_idx = data.val_idx if cfg.val_images is None else data.val_idx[: cfg.val_images]
        self.val_batches = self._cache(data.train.batches(val_idx, cfg.batch_size, train=False))
        n_bn = math.ceil(cfg.bn_images / cfg.bn_batch_size)
        bn_iter = data.train.batches(data.train_idx, cfg.bn_batch_size, train=True,
                                     seed=seeding.derive_seed(cfg.seed, seeding.DATA, 10**6))
        self.bn_batches = self._cache(b for _, b in zip(range(n_bn), bn_iter))
        self._last: tuple | None = None  # (genotype, recalibrated net, eval metrics or None)

    def _cache(self, batches) -> list:
        return [(x.to(self.device), y.to(self.device)) for x, y in batches]

    @property
    def val_image_count(self) -> int:
        return sum(len(y) for _, y in self.val_batches)

    def recalibrated(self, genotype: Sequence[int]) -> torch.nn.Module:
        """The candidate's stand-alone copy with supernet weights and recalibrated BN (cached)."""
        genotype = tuple(genotype)
        if self._last is None or self._last[0] != genotype:
            net = self.supernet.extract(genotype)
            recalibrate_bn(net, self.bn_batches, self.cfg.bn_mode)
            self._last = (genotype, net, None)
        return self._last[1]

    def evaluation(self, genotype: Sequence[int]) -> dict:
        """Validation loss and accuracy of the recalibrated candidate (cached)."""
        from ..train.evaluate import evaluate

        net = self.recalibrated(genotype)
        if self._last[2] is None:
            with torch.inference_mode():
                metrics = evaluate(net, self.val_batches, self.device)
            self._last = (self._last[0], net, metrics)
        return self._last[2]

    def noise_key(self, genotype: Sequence[int]):
        """Parameter name -> noise key: the supernet name, so shared ops share noise."""
        return lambda name: self.supernet.supernet_param_name(name, genotype)

    @classmethod
    def from_run(cls, run: str | Path, cfg: ScoringConfig, device: torch.device | str = "cpu") -> "ScoringContext":
        """Load a finished supernet run folder (final and epoch-0 weights, its data split)."""
        from ..checkpoint import load_torch
        from ..data import load_data
        from ..spaces import get_space
        from ..supernet.train import FINAL, INIT, load_run_config, load_supernet

        run = Path(run)
        if not (run / FINAL).exists():
            raise GenasError(f"{run} holds no finished supernet ({FINAL} missing); train or --resume it first")
        scfg = load_run_config(run)
        data = load_data(scfg.dataset, scfg.data_dir, scfg.split_seed, scfg.val_fraction, workers=scfg.workers)
        supernet = load_supernet(run, "final")
        return cls(get_space(scfg.space), supernet, data, cfg, device, init_state=load_torch(run / INIT))
