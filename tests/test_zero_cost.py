"""Zero-cost proxies (synflow, nwot, snip, grad_norm, jacov, params, flops) on a tiny NB201 network."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from genas.workflows.scoring import scoring_context
from genas.engine.checkpoint import state_digest
from genas.data import load_data
from genas.proxies import ProxyContext, ScoringConfig, ScoringContext, get_proxy, list_proxies
from genas.proxies.zero_cost import WORST, _result, jacov_score, nwot_kernel, nwot_score
from genas.spaces import NetworkSpec, get_space
from genas.engine.cost import count_macs, count_params

SPACE = get_space("nb201")
KWARGS = dict(channels=4, cells_per_stage=1, num_classes=10, in_channels=1)
ZERO_COST = ("synflow", "nwot", "snip", "grad_norm", "jacov", "params", "flops")
CONV3, SKIP = (3,) * 6, (1,) * 6
DISCONNECTED = [(3, 0, 0, 0, 0, 0), (0,) * 6, (0, 0, 0, 0, 3, 3), (1, 1, 1, 0, 0, 0)]


def _random_connected(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        g = SPACE.sample(rng)
        if SPACE.is_connected(g) and g not in out:
            out.append(g)
    return out


GENOTYPES = _random_connected(3) + [CONV3, SKIP]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data():
    return load_data("synthetic")


def make_ctx(data, **cfg):
    return ProxyContext(SPACE, data, ScoringConfig(**cfg), NetworkSpec(**KWARGS))


@pytest.fixture(scope="module")
def ctx(data):
    return make_ctx(data)


@pytest.fixture(scope="module")
def results(ctx):
    return {(name, g): get_proxy(name)(ctx, g) for name in ZERO_COST for g in GENOTYPES}


def test_all_zero_cost_proxies_are_registered():
    assert set(ZERO_COST) <= set(list_proxies())


def test_finite_values_and_raw_measurements(results):
    for (name, g), res in results.items():
        assert isinstance(res.value, float) and math.isfinite(res.value) and res.value > WORST, (name, g)
        assert res.raw["degenerate"] is False and res.raw[name] == res.value


def test_deterministic_and_context_untouched(ctx, data, results):
    x, y = ctx.zero_cost_batch()
    x0, y0 = x.clone(), y.clone()
    state = dict(vars(ctx))
    g = GENOTYPES[0]
    for name in ZERO_COST:
        again = get_proxy(name)(ctx, g)
        assert again.value == results[name, g].value and again.raw == results[name, g].raw, name
    # the cached batch is the same object, unchanged, and grad-free; no new attributes
    assert vars(ctx) == state and ctx.zero_cost_batch()[0] is x
    assert torch.equal(x, x0) and torch.equal(y, y0) and not x.requires_grad and x.grad is None
    # a fresh network is a new, hook-free object each call
    a, b = ctx.fresh_network(g), ctx.fresh_network(g)
    assert a is not b and state_digest(a.state_dict()) == state_digest(b.state_dict())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in a.modules())
    # a second context with the same seed gives the same scores
    other = make_ctx(data)
    assert get_proxy("nwot")(other, g).value == results["nwot", g].value
    assert get_proxy("synflow")(other, g).value == results["synflow", g].value


def test_params_and_flops_are_the_cost_counts(ctx, data, results):
    for g in GENOTYPES:
        net = SPACE.build_network(g, **KWARGS)
        assert results["params", g].value == count_params(net)
        assert results["flops", g].value == count_macs(net, (data.in_channels, data.image_size, data.image_size))


@pytest.mark.parametrize("g", DISCONNECTED)
def test_degenerate_cells_get_the_finite_worst_value(ctx, g):
    assert not SPACE.is_connected(g)
    for name in ZERO_COST:
        res = get_proxy(name)(ctx, g)
        assert res.value == WORST and math.isfinite(res.value) and res.raw["degenerate"] is True, name
    # params/flops still report the true count in raw
    assert get_proxy("params")(ctx, g).raw["params"] == count_params(SPACE.build_network(g, **KWARGS))


def test_non_finite_measurements_become_the_worst_value(data):
    # identical images: identical ReLU codes, an exactly singular NWOT kernel (log det = -inf)
    ctx = make_ctx(data)
    x, y = ctx.zero_cost_batch()
    ctx._zc_batch = (x[:1].expand_as(x).clone(), y)
    res = get_proxy("nwot")(ctx, GENOTYPES[0])
    assert res.value == WORST and res.raw["degenerate"] is True and "non-finite" in res.raw["reason"]
    assert math.isnan(jacov_score(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 2.0]])))  # zero-variance row
    res = _result("jacov", math.nan)
    assert res.value == WORST and res.raw["jacov"] is None and res.raw["degenerate"] is True


def test_sanity_ordering_conv_cell_beats_skip_cell(results):
    for name in ("synflow", "params", "flops"):
        assert results[name, CONV3].value > results[name, SKIP].value, name


def test_snip_and_grad_norm_match_their_definitions(ctx, results):
    x, y = ctx.zero_cost_batch()
    for g in GENOTYPES[:2]:
        net = ctx.fresh_network(g).train()
        weights = [m.weight for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), weights, allow_unused=True)
        pairs = [(w, gr) for w, gr in zip(weights, grads) if gr is not None]  # dead-end edges: no grad
        snip = sum((w * gr).abs().sum().item() for w, gr in pairs)
        norm = sum(gr.norm().item() for _, gr in pairs)
        assert results["snip", g].value == pytest.approx(snip, rel=1e-5) and snip > 0
        assert results["grad_norm", g].value == pytest.approx(norm, rel=1e-5) and norm > 0


def test_synflow_without_bn_equals_eval_mode_with_fresh_bn_statistics(ctx, data, results):
    g = GENOTYPES[1]
    net = ctx.fresh_network(g).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net(torch.ones(1, data.in_channels, data.image_size, data.image_size, dtype=torch.float64)).sum().backward()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None]
    value = sum((m.weight * m.weight.grad).abs().sum().item() for m in layers)
    # eval-mode BN with running stats (0, 1) is the identity up to (1 + eps)^-1/2 per BN layer
    assert results["synflow", g].value == pytest.approx(value, rel=1e-3)


def test_nwot_kernel_and_log_determinant_against_numpy():
    rng = np.random.default_rng(0)
    codes = (rng.random((6, 40)) > 0.5).astype(np.float64)
    K = nwot_kernel(codes)
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    np.testing.assert_array_equal(K, 40 - hamming)
    np.testing.assert_array_equal(K, codes @ codes.T + (1 - codes) @ (1 - codes).T)
    # summing per-layer kernels equals the kernel of the concatenated codes
    np.testing.assert_array_equal(nwot_kernel(codes[:, :15]) + nwot_kernel(codes[:, 15:]), K)
    assert nwot_score(K) == pytest.approx(np.linalg.slogdet(K)[1])
    assert nwot_score(K) == pytest.approx(math.log(np.linalg.det(K)))
    assert nwot_score(nwot_kernel(np.ones((3, 5)))) == -math.inf  # identical codes: singular


def test_nwot_proxy_uses_every_relu_over_the_batch(ctx, results):
    g = GENOTYPES[2]
    x, _ = ctx.zero_cost_batch()
    net = ctx.fresh_network(g).train()
    codes = []
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    def hook(module, inputs, out):
        codes.append((out.reshape(len(out), -1) > 0).double())

    handles = [m.register_forward_hook(hook) for m in relus]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    assert len(codes) == len(relus) > 0
    expect = np.linalg.slogdet(nwot_kernel(torch.cat(codes, 1)))[1]
    assert results["nwot", g].value == pytest.approx(expect, rel=1e-9)


def test_jacov_formula_against_numpy():
    rng = np.random.default_rng(1)
    J = rng.normal(size=(7, 30))
    v = np.linalg.eig(np.corrcoef(J))[0].real
    expect = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert jacov_score(J) == pytest.approx(expect, rel=1e-9)
    assert jacov_score(torch.tensor(J).reshape(7, 5, 6)) == pytest.approx(expect, rel=1e-9)  # flattened per row
    # uncorrelated Jacobians score higher than nearly collinear ones
    collinear = J[:1] + 1e-3 * rng.normal(size=J.shape)
    assert jacov_score(J) > jacov_score(collinear)


def test_works_under_inference_mode_and_with_a_scoring_context(data, results):
    g = GENOTYPES[0]
    with torch.inference_mode():
        assert get_proxy("snip")(make_ctx(data), g).value == results["snip", g].value
    supernet = SPACE.build_supernet(**KWARGS)
    sctx = ScoringContext(SPACE, supernet, data, ScoringConfig(val_images=32, bn_images=32, bn_batch_size=32))
    before = state_digest(supernet.state_dict())
    for name in ("synflow", "nwot", "grad_norm", "jacov", "flops"):
        assert get_proxy(name)(sctx, g).value == results[name, g].value, name
    assert state_digest(supernet.state_dict()) == before
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in supernet.modules())
