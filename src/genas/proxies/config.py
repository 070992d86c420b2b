"""Settings of the supernet proxies (:class:`ScoringConfig`) and the named flatness presets."""
from __future__ import annotations

import json
from dataclasses import dataclass

from ..engine.bn import BN_MODES
from ..engine import PRECISIONS
from .. import options
from ..errors import GenasError
from ..options import option
from .perturb import NOISE_MODES, NOISE_PARAMS, NOISE_SCALINGS

DEPTH_AT = ("sigma1", "zero")


@dataclass
class ScoringConfig:
    """Settings of the supernet proxies. Defaults follow GeNAS except where noted."""

    bn_images: int = option(896, "supernet-train images for BatchNorm recalibration (official 850 -> 14 batches "
                                 "of 64)", min=1)
    bn_batch_size: int = option(64, "batch size of BN recalibration", min=1)
    bn_mode: str = option("exact", "BN recalibration: exact (cumulative average) or official (EMA 0.1 after reset, "
                                   "see engine/bn.py)", choices=BN_MODES)
    # NHWC recalibration: ~1.75x on CPU; on 100 candidates ranking unchanged (tau 1.0), scores within 7.5e-6 relative
    bn_channels_last: bool = option(True, "BN recalibration in NHWC: faster on CPU, rounding only (engine/bn.py, "
                                          "BENCHMARKS.md); False = the NCHW path", cli=False)
    # 3000 from results/flatness-stability: 1/10 of the official passes at Kendall tau 0.88 vs 0.90 for the official 30k
    val_images: int | None = option(3000, "search-validation images per measurement (chosen in "
                                          "results/flatness-stability; 0 = the whole half, official 25k)", min=1,
                                    parse=lambda text: int(text) or None)
    batch_size: int = option(500, "evaluation batch size (does not change results)", min=1, flag="--eval-batch-size")
    channels_last: bool = option(True, "NHWC forward passes under noise: ~1.5x on CPU, rounding only "
                                       "(benchmarks/bench_flatness.py)", cli=False)
    fuse_bn: bool = option(False, "fold BN into convs per noise level: rounding only; measured no gain on CPU",
                           cli=False)
    stds: tuple[float, ...] = option((0.001, 0.003, 0.006), "comma-separated increasing noise stds for flatness")
    alpha: float | str = option(1.0, "weight of the depth term |L(s1)/s1| in flatness (0 = pure flatness; auto = "
                                     "balance depth and slopes by their spread on a seeded sample)")
    alpha_auto_archs: int = option(20, "architectures in the seeded sample that fixes --alpha auto")
    depth_at: str = option("sigma1", "where flatness measures depth: sigma1 (GeNAS, |L(s1)/s1|) or zero "
                                     "(unperturbed loss)", choices=DEPTH_AT)
    eps: float = option(1e-5, "official denominator guard", cli=False)
    noise_mode: str = option("independent", "independent (theta + N(0, s_k^2)) or cumulative (official code)",
                             choices=NOISE_MODES)
    noise_samples: int = option(1, "noise draws per std, averaged", min=1)
    noise_scaling: str = option("absolute", "absolute (GeNAS), element (std relative to |w|) or filter "
                                            "(filter-normalized, Li et al. 2018); see perturb.py",
                                choices=NOISE_SCALINGS)
    noise_params: str = option("all", "parameters the noise perturbs: all (GeNAS) or weights (conv/linear weights "
                                      "only; BN affine and biases unperturbed)", choices=NOISE_PARAMS)
    noise_antithetic: bool = option(False, "antithetic noise: measure every draw at +d and -d and average the "
                                           "pair (2x the passes per draw; cancels its first-order loss change, "
                                           "see results/flatness-stability)", legacy=False)
    common_noise: bool = option(True, "common random numbers across candidates", cli=False)
    gamma: float = option(16.0, "weight of flatness in angle+flatness / accuracy+flatness (as in the official "
                                    "README)")
    dil_conv_quirk: bool = option(False, "DARTS angle: reproduce the official [bn.w, bn.w] dil_conv vector",
                                  cli=False)
    seed: int = option(0, "noise seed", cli=False)
    precision: str = option("fp32", "scoring arithmetic: fp32 only (with TF32 off on GPU); bf16/fp16 are refused "
                                    "with the reason", choices=PRECISIONS, flag="--scoring-precision")

    def validate(self) -> "ScoringConfig":
        from ..engine.precision import check_scoring_precision
        from .flatness import flatness_score

        check_scoring_precision(self.precision)

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
        options.validate(self)  # choices and bounds declared above
        if self.alpha == "auto" and self.alpha_auto_archs < 2:
            raise GenasError(f"--alpha-auto-archs must be >= 2, got {self.alpha_auto_archs}")
        return self


# Named flatness settings (``--flatness-preset``); explicit options override them.
FLATNESS_PRESETS = {
    # GeNAS as published: absolute noise on every parameter, sigma = 0.001/0.003/0.006, alpha = 1 with the depth
    # at sigma_1, a fresh draw per level (the poster's formula)
    "paper": dict(stds=(0.001, 0.003, 0.006), alpha=1.0, depth_at="sigma1", noise_scaling="absolute",
                  noise_params="all", noise_mode="independent", noise_samples=1, noise_antithetic=False),
    # the official code: as "paper" with cumulative noise, its EMA BN recalibration and per-candidate noise
    "official": dict(stds=(0.001, 0.003, 0.006), alpha=1.0, depth_at="sigma1", noise_scaling="absolute",
                     noise_params="all", noise_mode="cumulative", noise_samples=1, bn_mode="official",
                     common_noise=False, noise_antithetic=False),
    # the best variant of results/flatness-calibration (NB201 on Fashion-MNIST): the paper's noise with
    # alpha="auto" (depth and slope terms balanced by their spread). Not the default: its held-out check
    # did not beat the paper preset (see that README)
    "calibrated": dict(stds=(0.001, 0.003, 0.006), alpha="auto", depth_at="sigma1", noise_scaling="absolute",
                       noise_params="all", noise_mode="independent", noise_samples=1, noise_antithetic=False),
}


# What a run folder saved before a setting existed was scored with, where that differs from today's default
# (declared with the field: ``option(legacy=...)``; a folder's missing key must not switch to a new default)
LEGACY_DEFAULTS = options.legacy(ScoringConfig)


def stored_scoring_defaults() -> dict:
    """What a folder's saved ``scoring`` dict means for the keys it lacks, as JSON stores it
    (:func:`genas.options.defaults`): fill a saved dict with these before comparing it."""
    return json.loads(json.dumps(options.defaults(ScoringConfig)))


def scoring_config(preset: str | None = None, **overrides) -> ScoringConfig:
    """A validated ScoringConfig: defaults, then the flatness preset, then every override that is not None."""
    return options.resolve(ScoringConfig, preset, FLATNESS_PRESETS, overrides, what="--flatness-preset").validate()


__all__ = ["DEPTH_AT", "FLATNESS_PRESETS", "LEGACY_DEFAULTS", "ScoringConfig", "scoring_config",
           "stored_scoring_defaults"]
