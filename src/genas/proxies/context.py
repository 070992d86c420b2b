"""What every supernet proxy needs: the trained supernet, its epoch-0 weights, fixed data batches.

Candidates are scored on a *copy* of their single path (``supernet.extract``), so recalibrating
BN or adding noise never touches the shared supernet: the next candidate sees exactly the same
weights and buffers. The BN-recalibration and validation batches are drawn once (seeded) and
cached on the device, so every candidate is measured on the same images. Loading a supernet run
folder into a context is the workflows' job (:func:`genas.workflows.scoring.scoring_context`).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .. import seeding
from ..data import Data
from ..engine.bn import recalibrate_bn
from ..engine.evaluate import evaluate
from ..engine.precision import exact_fp32
from ..spaces import NetworkSpec, SearchSpace, Supernet
from .config import ScoringConfig

class ProxyContext:
    """What data-only proxies (zero-cost, params, FLOPs) need: no supernet, fresh networks.

    ``spec`` sizes the stand-alone network of a genotype (channels, depth, classes, input
    channels); ``fresh_network`` gives it seeded initial weights, the same for a genotype on every
    call.
    """

    def __init__(self, space: SearchSpace, data: Data, cfg: ScoringConfig, spec: NetworkSpec,
                 device: torch.device | str = "cpu"):
        self.space, self.data, self.cfg = space, data, cfg.validate()
        self.device = torch.device(device)
        self.spec = spec
        self._zc_batch = None

    def fresh_network(self, genotype: Sequence[int], seed: int | None = None) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seeding.derive_seed(self.cfg.seed if seed is None else seed, seeding.INIT, 2))
            return self.space.build_network(tuple(genotype), self.spec).to(self.device)

    def zero_cost_batch(self, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """One fixed, seeded batch of supernet-train images (no augmentation) for zero-cost proxies."""
        if self._zc_batch is None or len(self._zc_batch[1]) != size:
            idx = seeding.derive_rng(self.cfg.seed, seeding.DATA, 11).choice(self.data.train_idx, size, replace=False)
            x, y = next(iter(self.data.train.batches(idx, size, train=False)))
            self._zc_batch = (x.to(self.device), y.to(self.device))
        return self._zc_batch


class ScoringContext(ProxyContext):
    """Adds the trained supernet (and its epoch-0 weights) for the supernet proxies.

    BN recalibration and evaluation run in exact fp32 (:func:`genas.engine.precision.exact_fp32`:
    TF32 and autocast off whatever the global settings), as the flatness measurement does.
    """

    def __init__(self, space: SearchSpace, supernet: Supernet, data: Data, cfg: ScoringConfig,
                 device: torch.device | str = "cpu", init_state: dict | None = None,
                 final_state: dict | None = None):
        super().__init__(space, data, cfg, supernet.spec, device)
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
            with exact_fp32():
                recalibrate_bn(net, self.bn_batches, self.cfg.bn_mode, channels_last=self.cfg.bn_channels_last)
            self._last = (genotype, net, None)
        return self._last[1]

    def evaluation(self, genotype: Sequence[int]) -> dict:
        """Validation loss and accuracy of the recalibrated candidate (cached)."""
        net = self.recalibrated(genotype)
        if self._last[2] is None:
            with torch.inference_mode(), exact_fp32():
                metrics = evaluate(net, self.val_batches, self.device)
            self._last = (self._last[0], net, metrics)
        return self._last[2]

    def noise_key(self, genotype: Sequence[int]):
        """Parameter name -> noise key: the supernet name, so shared ops share noise."""
        return lambda name: self.supernet.supernet_param_name(name, genotype)


__all__ = ["ProxyContext", "ScoringContext"]
