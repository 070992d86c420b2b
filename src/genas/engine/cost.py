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


class CostModel:
    """Params and MACs of a genotype's *evaluation network*: what resource constraints are measured on.

    The evaluation network is the space's ``cost_network`` spec (the CIFAR protocol: NB201 C=16,
    N=5 as in NAS-Bench-201's table; DARTS C=36, 20 cells, auxiliary head excluded) on one
    ``cost_input`` image (3x32x32), 10 classes. Spaces whose networks cost the sum of their genes'
    costs (``additive_cost``, e.g. NB201: each edge's op is a module of its own with fixed shapes)
    are measured once per gene value and then summed, exactly; others are measured per genotype
    and cached.
    """

    def __init__(self, space, spec_fields: dict | None = None, input_shape: tuple[int, ...] | None = None):
        self.space = space
        self.spec = space.spec(**{**space.cost_network, **(spec_fields or {})})
        self.input_shape = tuple(input_shape or space.cost_input)
        self._cache: dict[tuple[int, ...], dict[str, int]] = {}
        self._table = None

    def describe(self) -> str:
        fields = ", ".join(f"{k}={getattr(self.spec, k)}" for k in self.space.cost_network)
        return f"{self.space.name} {fields}, input {'x'.join(map(str, self.input_shape))}, {self.spec.num_classes} classes"

    def measure(self, genotype) -> dict[str, int]:
        """Build the network and count (the exact path every other one is checked against)."""
        with torch.random.fork_rng():
            net = self.space.build_network(tuple(genotype), self.spec)
        return {"params": count_params(net), "macs": count_macs(net, self.input_shape)}

    def _additive(self):
        """(base cost, per-gene per-value increments) from 1 + genes x (values - 1) measurements."""
        if self._table is None:
            zero = (0,) * self.space.num_genes
            base = self.measure(zero)
            inc = []
            for i in range(self.space.num_genes):
                row = []
                for v in range(len(self.space.ops)):
                    g = list(zero)
                    g[i] = v
                    cost = base if v == 0 else self.measure(g)
                    row.append({k: cost[k] - base[k] for k in base})
                inc.append(row)
            self._table = (base, inc)
        return self._table

    def __call__(self, genotype) -> dict[str, int]:
        g = tuple(int(v) for v in genotype)
        if g not in self._cache:
            if self.space.additive_cost:
                base, inc = self._additive()
                self._cache[g] = {k: base[k] + sum(inc[i][v][k] for i, v in enumerate(g)) for k in base}
            else:
                self._cache[g] = self.measure(g)
        return dict(self._cache[g])


_MODELS: dict = {}


def cost_model(space) -> CostModel:
    """The space's evaluation-network cost model, one per space name and process (its additive
    table takes a few seconds to measure; its per-genotype cache is shared by every search)."""
    key = (space.name, tuple(sorted(space.cost_network.items())), tuple(space.cost_input))
    if key not in _MODELS:
        _MODELS[key] = CostModel(space)
    return _MODELS[key]
