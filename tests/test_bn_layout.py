"""BN recalibration in NHWC: the statistics of the NCHW path up to rounding, the network left as it was."""
import dataclasses as dc

import pytest
import torch
from torch import nn

from genas.data import load_data
from genas.engine.bn import recalibrate_bn
from genas.proxies import ScoringConfig, ScoringContext, get_proxy
from genas.spaces import get_space


def net_and_batches(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 1),
                        nn.BatchNorm2d(8, affine=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    g = torch.Generator().manual_seed(seed)
    return net, [(torch.randn(16, 3, 10, 10, generator=g), torch.zeros(16, dtype=torch.long)) for _ in range(3)]


def bn_stats(net):
    return [b.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d) for b in (m.running_mean, m.running_var)]


@pytest.mark.parametrize("mode", ["exact", "official"])
def test_nhwc_recalibration_matches_nchw_and_restores_the_layout(mode):
    net, batches = net_and_batches()
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    momenta = [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert recalibrate_bn(net, batches, mode) == 48
    nchw = bn_stats(net)
    seen = []
    nhwc_fmt = torch.channels_last
    hook = net[0].register_forward_pre_hook(lambda m, inp: seen.append(
        (inp[0].is_contiguous(memory_format=nhwc_fmt), m.weight.is_contiguous(memory_format=nhwc_fmt))))
    assert recalibrate_bn(net, batches, mode, channels_last=True) == 48
    hook.remove()
    assert seen == [(True, True)] * 3  # it did run in NHWC
    nhwc = bn_stats(net)
    for a, b in zip(nchw, nhwc, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not net.training and [m.momentum for m in net.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    for n, p in net.named_parameters():  # same values, same (contiguous NCHW) layout
        assert torch.equal(p, params[n]) and p.is_contiguous(), n
    # a network kept in NHWC stays in NHWC
    net.to(memory_format=torch.channels_last)
    recalibrate_bn(net, batches, mode, channels_last=True)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_scoring_context_uses_the_configured_layout():
    space, data = get_space("nb201"), load_data("synthetic")
    torch.manual_seed(0)
    supernet = space.build_supernet(channels=4, cells_per_stage=1, num_classes=10, in_channels=1)
    cfg = ScoringConfig(val_images=48, bn_images=32, bn_batch_size=32, batch_size=48, bn_channels_last=False)
    ctx = ScoringContext(space, supernet, data, cfg)
    g = space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|")
    plain = get_proxy("flatness")(ctx, g)
    ctx.cfg, ctx._last = dc.replace(cfg, bn_channels_last=True), None
    fast = get_proxy("flatness")(ctx, g)
    assert fast.value == pytest.approx(plain.value, rel=1e-5)
    assert all(p.is_contiguous() for p in ctx.recalibrated(g).parameters())
