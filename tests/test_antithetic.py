"""Antithetic noise: the minus side is exactly the same draw negated, restores bitwise, composes with the
other noise options, and leaves every score bitwise unchanged when it is off."""
import pytest
import torch
from torch import nn

from genas.cli import build_parser
from genas.cli.options import scoring_config as cli_scoring_config
from genas.engine.checkpoint import state_digest
from genas.data import load_data
from genas.proxies import ScoringConfig, ScoringContext, flatness_score, get_proxy
from genas.proxies.config import FLATNESS_PRESETS, LEGACY_DEFAULTS, scoring_config, stored_scoring_defaults
from genas.proxies.measure import _FastTwin, _summed_loss, losses_under_noise
from genas.proxies.perturb import noise_like, perturbed_levels, scaled_direction
from genas.spaces import get_space

STDS = (0.001, 0.003, 0.006)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                        nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():  # non-trivial BN state, so every parameter matters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return net.eval()


def tiny_batches(seed=0, n=2, size=16):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 3, (size,), generator=g)) for _ in range(n)]


def snapshot(net):
    return {n: p.detach().clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("scaling", ["absolute", "element", "filter"])
def test_minus_side_is_the_same_draw_negated_bitwise(scaling):
    net = tiny_net()
    orig = snapshot(net)
    for sample, ckey in ((0, None), (1, 1234)):
        kw = dict(sample=sample, seed=3, candidate_key=ckey, scaling=scaling)
        plus = [snapshot(net) for _ in perturbed_levels(net, STDS, **kw)]
        minus = [snapshot(net) for _ in perturbed_levels(net, STDS, sign=-1, **kw)]
        for k, std in enumerate(STDS):
            for name, theta in orig.items():
                d = scaled_direction(noise_like(theta, name, k, sample, 3, ckey), theta, scaling)
                assert torch.equal(minus[k][name], theta + std * (-d)), (name, k)
                assert torch.equal(plus[k][name], theta + std * d), (name, k)  # today's formula, unchanged
                assert not torch.equal(minus[k][name], plus[k][name])


def test_cumulative_minus_side_is_the_mirrored_walk():
    net = tiny_net()
    orig = snapshot(net)
    minus = [snapshot(net) for _ in perturbed_levels(net, STDS, mode="cumulative", sign=-1, params="weights")]
    for name, theta in orig.items():
        cur, prev = theta.clone(), 0.0
        for k, std in enumerate(STDS):
            if theta.dim() >= 2:
                cur = cur + (-(std - prev)) * noise_like(theta, name, k, 0, 0)
            assert torch.equal(minus[k][name], cur), (name, k)  # 1-D parameters stay put with params=weights
            prev = std


def test_minus_side_restores_bitwise_when_ended_abandoned_or_raising():
    net = tiny_net()
    before = state_digest(net.state_dict())
    for mode in ("independent", "cumulative"):
        for _ in perturbed_levels(net, STDS, mode=mode, sign=-1):
            assert state_digest(net.state_dict()) != before
        assert state_digest(net.state_dict()) == before
        levels = perturbed_levels(net, STDS, mode=mode, sign=-1)
        next(levels)
        levels.close()
        assert state_digest(net.state_dict()) == before
        with pytest.raises(RuntimeError, match="boom"):
            for k, _ in perturbed_levels(net, STDS, mode=mode, sign=-1):
                if k == 1:
                    raise RuntimeError("boom")
        assert state_digest(net.state_dict()) == before
    with pytest.raises(ValueError, match="sign"):
        next(perturbed_levels(net, STDS, sign=0))


def _loss_at(net, batches):
    return _summed_loss(net, batches).item() / sum(len(y) for _, y in batches)


@pytest.mark.parametrize("mode", ["independent", "cumulative"])
def test_antithetic_losses_average_samples_and_signs(mode):
    net, batches = tiny_net(), tiny_batches()
    kw = dict(mode=mode, seed=2, scaling="element", params="all")
    out = losses_under_noise(net, batches, STDS, samples=2, antithetic=True, channels_last=False, **kw)
    expect = [[[0.0, 0.0] for _ in range(2)] for _ in STDS]
    for s in range(2):
        for j, sign in enumerate((1, -1)):
            for k, _ in perturbed_levels(net, STDS, sample=s, sign=sign, **kw):
                expect[k][s][j] = _loss_at(net, batches)
    assert out.per_sign == expect
    assert out.per_sample == [[(a + b) / 2 for a, b in level] for level in expect]
    assert out.losses == [sum(v) / 2 for v in out.per_sample]
    # the fast path (NHWC twin, BN folding) measures the same pairs up to rounding
    fast = losses_under_noise(net, batches, STDS, samples=2, antithetic=True, fuse_bn=True, chunk=8, **kw)
    assert fast.losses == pytest.approx(out.losses, rel=1e-5)


def test_antithetic_off_is_todays_single_draw_bitwise():
    net, batches = tiny_net(), tiny_batches()
    for samples in (1, 3):
        out = losses_under_noise(net, batches, STDS, samples=samples, channels_last=False, mode="cumulative")
        assert out.per_sign is None
        twin = _FastTwin(net, False, True)
        nhwc = losses_under_noise(net, batches, STDS, samples=samples, mode="cumulative")
        per = [[0.0] * samples for _ in STDS]
        per_fast = [[0.0] * samples for _ in STDS]
        orig = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.no_grad():
            for s in range(samples):
                for k, std in enumerate(STDS):  # the perturbation written out as before the option existed
                    for name, p in net.named_parameters():
                        p.add_((std - (STDS[k - 1] if k else 0.0)) * noise_like(p, name, k, s, 0))
                    per[k][s] = _loss_at(net, batches)
                    twin.refresh()
                    per_fast[k][s] = _loss_at(twin, batches)
                net.load_state_dict(orig)
        assert out.per_sample == per and out.losses == [sum(v) / samples for v in per]
        assert nhwc.per_sample == per_fast


def test_antithetic_pair_cancels_the_first_order_change():
    """At a small std the pair's mean moves the loss far less than either side: the linear term cancels."""
    net, batches = tiny_net(), tiny_batches()
    clean = _loss_at(net, batches)
    out = losses_under_noise(net, batches, (1e-3,), antithetic=True, channels_last=False)
    plus, minus = out.per_sign[0][0]
    assert abs(plus - clean) > 1e-5
    assert abs(out.losses[0] - clean) < 0.05 * abs(plus - clean)
    assert (plus - clean) * (minus - clean) < 0


def test_flatness_proxy_with_antithetic_cumulative_and_samples():
    small = dict(val_images=48, bn_images=32, bn_batch_size=32, batch_size=48, noise_mode="cumulative", noise_samples=2)
    space, data = get_space("nb201"), load_data("synthetic")
    torch.manual_seed(0)  # an untrained supernet is enough: only the measurement is tested
    supernet = space.build_supernet(channels=4, cells_per_stage=1, num_classes=10, in_channels=1)
    g = space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    off = ScoringContext(space, supernet, data, ScoringConfig(**small, noise_antithetic=False))
    res_off = get_proxy("flatness")(off, g)
    assert "losses_per_sign" not in res_off.raw
    before = state_digest(supernet.state_dict())
    on = ScoringContext(space, supernet, data, ScoringConfig(**small, noise_antithetic=True))
    res = get_proxy("flatness")(on, g)
    per_sign = res.raw["losses_per_sign"]
    assert len(per_sign) == 3 and all(len(v) == 2 and all(len(p) == 2 for p in v) for v in per_sign)
    # the plus sides are exactly the draws the scorer makes without the option
    assert [[p[0] for p in v] for v in per_sign] == res_off.raw["losses_per_sample"]
    assert res.raw["losses"] == [sum((a + b) / 2 for a, b in v) / 2 for v in per_sign]
    assert res.value == flatness_score(res.raw["losses"], STDS, 1.0)
    assert state_digest(supernet.state_dict()) == before


def test_option_cli_presets_and_folders_made_before_it():
    parser = build_parser()
    args = parser.parse_args(["search", "--run", "r", "--noise-antithetic"])
    assert cli_scoring_config(args).noise_antithetic is True
    args = parser.parse_args(["search", "--run", "r", "--no-noise-antithetic"])
    assert cli_scoring_config(args).noise_antithetic is False
    for name in ("paper", "official", "calibrated"):  # they reproduce what they name: one draw, no pair
        assert FLATNESS_PRESETS[name]["noise_antithetic"] is False
        assert scoring_config(name).noise_antithetic is False
    assert scoring_config("paper", noise_antithetic=True).noise_antithetic is True
    # a folder saved before the key existed ran single draws, whatever today's default
    assert LEGACY_DEFAULTS["noise_antithetic"] is False
    assert stored_scoring_defaults()["noise_antithetic"] is False
    assert stored_scoring_defaults()["noise_mode"] == ScoringConfig().noise_mode
