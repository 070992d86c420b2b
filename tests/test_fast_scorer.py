"""The fast flatness measurement equals the plain one, and the official re-implementation equals ours.

Both comparisons are given the same noise, so any difference is floating-point rounding.
"""
import numpy as np
import pytest
import torch

from _tiny import train_tiny
from genas.workflows.scoring import scoring_context
from genas.engine.checkpoint import state_digest
from genas.proxies import ScoringConfig, ScoringContext, flatness_score
from genas.engine.bn import recalibrate_bn
from genas.proxies.measure import _FastTwin, losses_under_noise
from genas.proxies.reference import official_score, stack_batches
from genas.spaces import get_space

SPACE = get_space("nb201")
STDS = (0.001, 0.003, 0.006)
REL = 1e-5
PLAIN = dict(channels_last=False, fuse_bn=False, chunk=None)
FAST = [dict(), dict(fuse_bn=True), dict(fuse_bn=True, channels_last=False), dict(fuse_bn=True, chunk=16),
        dict(channels_last=False, chunk=20)]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    run = tmp_path_factory.mktemp("fast") / "run"
    train_tiny(run, epochs=1)
    # 128 validation images = two official batches of 64; our batches of 48 do not line up with them
    cfg = ScoringConfig(val_images=128, bn_images=64, bn_batch_size=32, batch_size=48, bn_mode="official",
                        noise_mode="cumulative")
    return scoring_context(run, cfg)


def candidates(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        g = SPACE.sample(rng)
        if SPACE.is_connected(g) and 3 in g:  # at least one conv edge, so BN folding is exercised
            out.append(g)
    return out


def assert_rel(a, b, rel=REL):
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) <= rel * abs(y), (a, b)


def recalibrated(ctx, g):
    net = ctx.supernet.extract(g)
    recalibrate_bn(net, ctx.bn_batches, "official")
    return net


@pytest.mark.parametrize("mode", ["independent", "cumulative"])
def test_fast_scorer_equals_plain_scorer(ctx, mode):
    for g in candidates(2):
        net = recalibrated(ctx, g)
        kw = dict(mode=mode, seed=3, key_of=ctx.noise_key(g), samples=2)
        plain = losses_under_noise(net, ctx.val_batches, STDS, **PLAIN, **kw)
        for opts in FAST:
            fast = losses_under_noise(net, ctx.val_batches, STDS, **opts, **kw)
            assert_rel(fast.losses, plain.losses)
            assert_rel([flatness_score(fast.losses, STDS)], [flatness_score(plain.losses, STDS)])


def test_bn_is_folded_into_the_convolutions(ctx):
    net = recalibrated(ctx, candidates(1)[0]).eval()
    with torch.inference_mode():
        twin = _FastTwin(net, fuse_bn=True, channels_last=False)
        twin.refresh()
        bns = [m for m in twin.twin.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert len(bns) == 1  # only the head's BN, which follows a sum, not a conv
        x = ctx.val_batches[0][0]
        torch.testing.assert_close(twin(x), net(x), rtol=1e-4, atol=1e-5)


def test_weights_and_buffers_restored_bitwise(ctx):
    g = candidates(1, seed=1)[0]
    net = recalibrated(ctx, g)
    before = state_digest(net.state_dict())
    losses_under_noise(net, ctx.val_batches, STDS, fuse_bn=True, chunk=16, mode="cumulative")
    assert state_digest(net.state_dict()) == before
    supernet_before = state_digest(ctx.supernet.state_dict())
    val_x, val_y = stack_batches(ctx.val_batches)
    official_score(ctx.supernet, g, ctx.bn_batches, val_x, val_y, STDS)
    assert state_digest(ctx.supernet.state_dict()) == supernet_before


def test_official_reimplementation_equals_our_scorer_given_the_same_noise(ctx):
    val_x, val_y = stack_batches(ctx.val_batches)
    for g in candidates(3, seed=2):
        official, official_losses = official_score(ctx.supernet, g, ctx.bn_batches, val_x, val_y, STDS, seed=5)
        net = recalibrated(ctx, g)
        # the extracted path has exactly the supernet's parameters: no extra noise on our side
        assert {ctx.supernet.supernet_param_name(n, g) for n, _ in net.named_parameters()} <= {
            n for n, _ in ctx.supernet.named_parameters()}
        ours = losses_under_noise(net, ctx.val_batches, STDS, mode="cumulative", seed=5, key_of=ctx.noise_key(g),
                                  chunk=16)
        assert_rel(ours.losses, official_losses)
        assert_rel([flatness_score(ours.losses, STDS)], [official])
