import math

import numpy as np
import pytest
import torch

from _tiny import train_tiny
from genas.workflows.scoring import scoring_context
from genas.engine.checkpoint import state_digest
from genas.errors import GenasError
from genas.proxies import ScoringConfig, ScoringContext, get_proxy, list_proxies, make_evaluator
from genas.spaces.nb201_angle import nb201_path_vector
from genas.engine.bn import recalibrate_bn
from genas.proxies.perturb import noise_like, perturbed_levels
from genas.spaces import get_space

SPACE = get_space("nb201")
STDS = (0.001, 0.003, 0.006)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("proxies") / "run"
    train_tiny(path, epochs=3)
    return path


@pytest.fixture(scope="module")
def ctx(run):
    return scoring_context(run, ScoringConfig(val_images=96, bn_images=64, bn_batch_size=32, batch_size=48))


def genotypes(n, seed=0):
    rng = np.random.default_rng(seed)
    return [SPACE.sample(rng) for _ in range(n)]


def test_registry_lists_all_metrics_and_rejects_unknown():
    assert {"flatness", "angle", "accuracy", "loss", "angle+flatness", "accuracy+flatness"} <= set(list_proxies())
    with pytest.raises(GenasError, match="available: .*flatness"):
        get_proxy("sharpness")


def test_scoring_never_changes_the_supernet(ctx):
    before = state_digest(ctx.supernet.state_dict())
    for g in genotypes(3):
        for name in list_proxies():
            get_proxy(name)(ctx, g)
    assert state_digest(ctx.supernet.state_dict()) == before


def test_scores_are_deterministic_and_higher_is_better_orientation(ctx):
    g = genotypes(1, seed=3)[0]
    ctx._last = None
    a = get_proxy("flatness")(ctx, g)
    ctx._last = None
    b = get_proxy("flatness")(ctx, g)
    assert a.value == b.value and a.raw["losses"] == b.raw["losses"]
    loss = get_proxy("loss")(ctx, g)
    assert loss.value == -loss.raw["loss"]
    from genas.proxies import flatness_score
    assert a.value == pytest.approx(flatness_score(a.raw["losses"], STDS, 1.0))


def test_perturbation_is_restored_bitwise_even_when_abandoned(ctx):
    net = ctx.recalibrated(genotypes(1)[0])
    before = state_digest(net.state_dict())
    levels = perturbed_levels(net, STDS)
    next(levels)
    assert state_digest(net.state_dict()) != before
    levels.close()
    assert state_digest(net.state_dict()) == before
    assert torch.is_grad_enabled()


def _weights_per_level(net, mode, **kw):
    out = []
    for _ in perturbed_levels(net, STDS, mode=mode, **kw):
        out.append({n: p.detach().clone() for n, p in net.named_parameters()})
    return out


def test_independent_and_cumulative_noise_differ_as_documented(ctx):
    net = ctx.recalibrated(genotypes(1)[0])
    theta = {n: p.detach().clone() for n, p in net.named_parameters()}
    ind = _weights_per_level(net, "independent")
    cum = _weights_per_level(net, "cumulative")
    name = "classifier.weight"
    e = [noise_like(theta[name], name, k, 0, 0) for k in range(3)]
    # independent: theta + s_k e_k
    for k in range(3):
        torch.testing.assert_close(ind[k][name], theta[name] + STDS[k] * e[k])
    # cumulative: theta + s_1 e_1 + (s_2 - s_1) e_2 + ...; level 1 identical to independent
    torch.testing.assert_close(cum[0][name], ind[0][name], rtol=0, atol=0)
    expect = theta[name] + STDS[0] * e[0] + (STDS[1] - STDS[0]) * e[1]
    torch.testing.assert_close(cum[1][name], expect)
    assert not torch.allclose(cum[1][name], ind[1][name])
    # the effective std of cumulative level 3 is sqrt(sum of squared increments) < s_3
    delta = torch.cat([(cum[2][n] - theta[n]).flatten() for n in theta])
    eff = math.sqrt(STDS[0] ** 2 + (STDS[1] - STDS[0]) ** 2 + (STDS[2] - STDS[1]) ** 2)
    assert delta.std().item() == pytest.approx(eff, rel=0.1)
    delta_ind = torch.cat([(ind[2][n] - theta[n]).flatten() for n in theta])
    assert delta_ind.std().item() == pytest.approx(STDS[2], rel=0.1)


def test_common_random_numbers_share_noise_on_shared_ops(ctx):
    a = (3, 3, 1, 2, 0, 4)
    b = (3, 1, 2, 2, 4, 4)  # shares edge 0 (nor_conv_3x3) and edge 3 (nor_conv_1x1) with a
    net_a, key_a = ctx.supernet.extract(a), ctx.noise_key(a)
    net_b, key_b = ctx.supernet.extract(b), ctx.noise_key(b)
    theta_a = {n: p.detach().clone() for n, p in net_a.named_parameters()}
    theta_b = {n: p.detach().clone() for n, p in net_b.named_parameters()}
    wa = _weights_per_level(net_a, "independent", key_of=key_a)
    wb = _weights_per_level(net_b, "independent", key_of=key_b)
    shared = ["cells.0.edges.0.1.weight", "cells.0.edges.3.1.weight", "cells.2.edges.0.1.weight", "stem.0.weight", "classifier.bias"]
    for n in shared:
        torch.testing.assert_close(wa[1][n] - theta_a[n], wb[1][n] - theta_b[n], rtol=0, atol=0)
    # without common random numbers every candidate gets its own draw
    wa2 = _weights_per_level(net_a, "independent", key_of=key_a, candidate_key=1)
    wb2 = _weights_per_level(net_b, "independent", key_of=key_b, candidate_key=2)
    assert not torch.equal(wa2[1]["stem.0.weight"] - theta_a["stem.0.weight"],
                           wb2[1]["stem.0.weight"] - theta_b["stem.0.weight"])


def test_bn_recalibration_modes():
    torch.manual_seed(0)
    bn = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    batches = [(torch.randn(8, 2, 3, 3) * (i + 1) + i, None) for i in range(3)]
    recalibrate_bn(bn, batches, "exact")
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x, _ in batches])
    torch.testing.assert_close(bn[0].running_mean, means.mean(0))
    assert bn[0].momentum == 0.1 and not bn.training
    recalibrate_bn(bn, batches, "official")
    ema = torch.zeros(2)
    for m in means:
        ema = 0.9 * ema + 0.1 * m
    torch.testing.assert_close(bn[0].running_mean, ema)


def test_accuracy_is_measured_after_recalibration(ctx):
    g = genotypes(1, seed=5)[0]
    res = get_proxy("accuracy")(ctx, g)
    assert 0.0 <= res.value <= 1.0
    net = ctx.supernet.extract(g)
    recalibrate_bn(net, ctx.bn_batches)
    with torch.no_grad():
        correct = sum((net(x).argmax(1) == y).sum().item() for x, y in ctx.val_batches)
    assert res.value == pytest.approx(correct / ctx.val_image_count)


def test_angle_definition(ctx):
    conv_path = (0, 0, 0, 3, 0, 0)  # one nor_conv_3x3 edge 0->3
    skip_path = (0, 0, 0, 1, 0, 0)  # one skip edge 0->3: contributes nothing
    disconnected = (3, 0, 0, 0, 0, 0)
    assert get_proxy("angle")(ctx, disconnected).value == 0.0
    v_conv = nb201_path_vector(ctx.supernet, ctx.init_state, conv_path)
    v_skip = nb201_path_vector(ctx.supernet, ctx.init_state, skip_path)
    convs = sum(cell.edges[3][3][1].weight.numel() for cell in ctx.supernet.cells if hasattr(cell, "edges"))
    assert len(v_conv) - len(v_skip) == convs
    angle = get_proxy("angle")(ctx, conv_path).value
    assert 0.0 < angle < math.pi
    same = ScoringContext.__new__(ScoringContext)
    same.supernet, same.init_state, same.final_state, same.cfg = ctx.supernet, ctx.init_state, ctx.init_state, ctx.cfg
    assert get_proxy("angle")(same, conv_path).value == pytest.approx(0.0, abs=1e-6)


def test_combined_metrics_and_flatness_share(ctx):
    g = genotypes(1, seed=7)[0]
    flat = get_proxy("flatness")(ctx, g).value
    angle = get_proxy("angle")(ctx, g).value
    acc = get_proxy("accuracy")(ctx, g).value
    term = 16 / STDS[0] * flat
    af = get_proxy("angle+flatness")(ctx, g)
    assert af.value == pytest.approx(angle / math.pi + term)
    assert af.raw["flatness_share"] == pytest.approx(100 * term / af.value)
    cf = get_proxy("accuracy+flatness")(ctx, g)
    assert cf.value == pytest.approx(acc + term)


def test_noise_samples_average(run):
    c = scoring_context(run, ScoringConfig(val_images=48, bn_images=32, bn_batch_size=32, noise_samples=3))
    res = get_proxy("flatness")(c, genotypes(1)[0])
    per = np.array(res.raw["losses_per_sample"])
    assert per.shape == (3, 3)
    assert np.allclose(per.mean(1), res.raw["losses"])
    assert len(set(per[2])) == 3  # different draws per sample


def test_evaluator_returns_scores_and_raw(ctx):
    out = make_evaluator(ctx, "flatness")(genotypes(2))
    assert len(out) == 2 and all("score" in r and len(r["losses"]) == 3 for r in out)


def test_bad_scoring_settings_are_user_errors():
    with pytest.raises(GenasError, match="strictly increasing"):
        ScoringConfig(stds=(0.003, 0.001)).validate()
    with pytest.raises(GenasError, match="noise-mode"):
        ScoringConfig(noise_mode="relative").validate()
    with pytest.raises(GenasError, match="bn-mode"):
        ScoringConfig(bn_mode="none").validate()
