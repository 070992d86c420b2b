"""DARTS networks: the supernet's single path against the stand-alone network ``extract`` builds,
the CIFAR/ImageNet evaluation networks (shapes, auxiliary head, drop path), and parameter / MAC
counts of published genotypes against the published numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genas.spaces import get_space
from genas.spaces.darts_genotypes import (DARTS_V2, FLATNESS_CIFAR10, GENOTYPE_STRINGS, IMAGENET_CHANNELS,
                                          IMAGENET_PARAMS_M, PC_DARTS, get_genotype)
from genas.spaces.darts_net import (AuxiliaryHeadImageNet, DARTSSupernet, FactorizedReduce, NetworkCIFAR,
                                    NetworkImageNet, SepConv)
from genas.engine.cost import count_macs, count_params

SPACE = get_space("darts")


def _randomize(model: nn.Module, seed: int) -> None:
    """Non-trivial weights everywhere, including BN running stats and affine params."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _supernet(**kw) -> DARTSSupernet:
    torch.manual_seed(0)
    sn = DARTSSupernet(**kw)
    _randomize(sn, 1)
    return sn


_rng = np.random.default_rng(11)
GENOTYPES = [FLATNESS_CIFAR10, DARTS_V2, PC_DARTS, (4,) * 2 + (0, 4, 4, 0, 0, 4, 4, 0, 0, 0, 4, 4) + (1,) * 2
             + (0, 2, 2, 0, 0, 3, 3, 0, 0, 0, 3, 3)] + [SPACE.sample(_rng) for _ in range(4)]
# off the 2-input rule: node 2 of both cells has no input (its value is the strided zero tensor)
INVALID = (0, 0) + FLATNESS_CIFAR10[2:14] + (0, 0) + FLATNESS_CIFAR10[16:]

SMALL = dict(channels=4, num_classes=5, layers=5, in_channels=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_supernet():
    return _supernet(**SMALL).eval()


@pytest.fixture(scope="module")
def x1():
    return torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(3))


# --- supernet path == extracted stand-alone network --------------------------------------------

def test_supernet_equals_extracted_network_eval(small_supernet, x1):
    sn = small_supernet
    outputs = set()
    for g in GENOTYPES + [INVALID]:
        net = sn.extract(g).eval()
        assert isinstance(net, NetworkCIFAR) and net.genotype == tuple(g)
        assert net.pool_bn and not net.auxiliary
        with torch.no_grad():
            a, b = sn(x1, g), net(x1)
        assert a.shape == (3, 5)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        outputs.add(round(float(a.abs().sum()), 4))
    assert len(outputs) == len(GENOTYPES) + 1  # the genotypes really compute different functions


def test_supernet_equals_extracted_network_eval_layers8_rgb():
    sn = _supernet(channels=4, num_classes=10, layers=8, in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    for g in GENOTYPES[:3]:
        with torch.no_grad():
            torch.testing.assert_close(sn.extract(g).eval()(x), sn(x, g), rtol=1e-5, atol=1e-6)


def test_supernet_equals_extracted_network_train_and_grads(x1):
    for g in (FLATNESS_CIFAR10, GENOTYPES[-1]):
        sn = _supernet(**SMALL).train()
        net = sn.extract(g).train()
        a, b = sn(x1, g), net(x1)
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
        sub = sn.subnet_state_dict(g)  # the BN batch statistics both updated are the same
        for name, tensor in net.state_dict().items():
            torch.testing.assert_close(tensor, sub[name], rtol=1e-5, atol=1e-6, msg=name)
        w = torch.randn(a.shape, generator=torch.Generator().manual_seed(5))
        (a * w).sum().backward()
        (b * w).sum().backward()
        net_params = dict(net.named_parameters())
        sn_params = dict(sn.named_parameters())
        for name, p in net_params.items():
            q = sn_params[sn.supernet_param_name(name, g)]
            assert p.grad is not None and q.grad is not None, name
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)
        on_path = {sn.supernet_param_name(n, g) for n in net_params}
        for name, p in sn_params.items():
            if name not in on_path:
                assert p.grad is None or not p.grad.any(), f"{name} is off the path but got a gradient"


def test_subnet_state_dict_and_param_names(small_supernet):
    sn = small_supernet
    for g in GENOTYPES + [INVALID]:
        net = NetworkCIFAR(g, auxiliary=False, pool_bn=True, **sn._shape())
        sub = sn.subnet_state_dict(g)
        assert set(sub) == set(net.state_dict())
        for name, tensor in net.state_dict().items():
            assert sub[name].shape == tensor.shape, name
        names = {sn.supernet_param_name(n, g) for n, _ in net.named_parameters()}
        assert names <= dict(sn.named_parameters()).keys()
        assert len(names) == len(list(net.parameters()))
    # cells 1 and 3 are the reductions (5 // 3, 10 // 3) and use genes 14..27
    assert [c.reduction for c in sn.cells] == [False, True, False, True, False]
    g = FLATNESS_CIFAR10
    assert sn.supernet_param_name("cells.1.edges.0.1.weight", g) == f"cells.1.edges.0.{g[14]}.1.weight"
    assert sn.supernet_param_name("cells.0.edges.1.3.weight", g) == f"cells.0.edges.1.{g[1]}.3.weight"
    assert sn.supernet_param_name("cells.0.preprocess0.1.weight", g) == "cells.0.preprocess0.1.weight"
    assert sn.supernet_param_name("classifier.weight", g) == "classifier.weight"


def test_supernet_structure_and_config():
    sn = DARTSSupernet()
    assert sn._shape() == dict(channels=16, num_classes=10, layers=8, in_channels=3, steps=4, multiplier=4,
                               stem_multiplier=3)
    assert [c.reduction for c in sn.cells] == [False, False, True, False, False, True, False, False]
    assert [c.C for c in sn.cells] == [16, 16, 32, 32, 32, 64, 64, 64]
    assert sn.stem[0].out_channels == 48 and sn.classifier.in_features == 256
    assert isinstance(sn.cells[3].preprocess0, FactorizedReduce)
    assert not isinstance(sn.cells[4].preprocess0, FactorizedReduce)
    edge = sn.cells[2].edges[0]  # reduction cell, input edge: stride 2
    assert isinstance(edge[3], FactorizedReduce) and isinstance(edge[4], SepConv)
    assert edge[4][1].stride == (2, 2) and sn.cells[2].edges[4][4][1].stride == (1, 1)
    for o in (1, 2):  # pools are Sequential(pool, affine BN)
        assert isinstance(edge[o], nn.Sequential) and edge[o][1].affine
    assert all(m.affine for m in sn.modules() if isinstance(m, nn.BatchNorm2d))
    twin = DARTSSupernet(**sn._shape())
    assert {k: v.shape for k, v in twin.state_dict().items()} == {k: v.shape for k, v in sn.state_dict().items()}
    with pytest.raises(ValueError):
        sn(torch.zeros(1, 3, 8, 8), DARTS_V2[:14])
    for bad in (dict(channels=0), dict(layers=0), dict(num_classes=0), dict(in_channels=0), dict(steps=3),
                dict(multiplier=5)):
        with pytest.raises(ValueError):
            DARTSSupernet(**bad)


# --- evaluation networks -------------------------------------------------------------------------

def test_network_cifar_shapes_and_aux():
    net = NetworkCIFAR(DARTS_V2, channels=4, num_classes=7, layers=5, auxiliary=True)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    out = net(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    logits, aux = net(x, return_aux=True)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    net.eval()
    logits, aux = net(x, return_aux=True)
    assert logits.shape == (2, 7) and aux is None
    no_aux = NetworkCIFAR(DARTS_V2, channels=4, num_classes=7, layers=5, auxiliary=False).train()
    logits, aux = no_aux(x, return_aux=True)
    assert aux is None and not hasattr(no_aux, "auxiliary_head")
    # the head sits after cell 2 * layers // 3 and has BN after the 768 conv
    assert net.aux_index == 3 and net.auxiliary_head.features[2].in_channels == 4 * 4 * 4
    assert count_params(net) - count_params(net, exclude="auxiliary") == \
        count_params(net.auxiliary_head) > count_params(no_aux) - count_params(no_aux, exclude="auxiliary") == 0


def test_network_cifar_genotype_forms_and_pool_bn():
    a = NetworkCIFAR(GENOTYPE_STRINGS["PC_DARTS"], channels=4, layers=3)
    b = SPACE.build_network(PC_DARTS, channels=4, layers=3, auxiliary=True)
    assert a.genotype == b.genotype == PC_DARTS
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
    with_bn = NetworkCIFAR(PC_DARTS, channels=4, layers=3, pool_bn=True)
    # PC-DARTS: one avg pool in the normal cell (2 normal cells of channels=4 and 16) and one max pool in
    # the reduction cell (channels=8): each pool gains an affine BN (2 x C params)
    assert count_params(with_bn) - count_params(a) == 2 * (4 + 16) + 2 * 8
    with pytest.raises(ValueError):
        NetworkCIFAR(DARTS_V2[:20])
    with pytest.raises(ValueError):
        SPACE.build_network(DARTS_V2, style="mobile")
    with pytest.raises(ValueError):
        SPACE.build_network("Genotype(normal=[('conv_3x3', 0)])")


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, channels=4, num_classes=5, layers=3, auxiliary=False, drop_path_prob=0.0)
    _randomize(net, 2)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    net.train()
    with torch.no_grad():
        base_train = net(x)
        torch.testing.assert_close(net(x), base_train, rtol=0, atol=0)  # deterministic without drop path
        net.drop_path_prob = 0.5
        torch.manual_seed(1)
        d1 = net(x)
        torch.manual_seed(2)
        d2 = net(x)
        assert not torch.allclose(d1, base_train) and not torch.allclose(d1, d2)
        net.eval()
        e1 = net(x)
        net.drop_path_prob = 0.0
        torch.testing.assert_close(net(x), e1, rtol=0, atol=0)  # eval ignores drop_path_prob


def test_network_imagenet_structure_and_aux():
    net = NetworkImageNet(DARTS_V2, channels=8, num_classes=11, layers=14)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [4, 9]
    assert isinstance(net.cells[0].preprocess0, FactorizedReduce)  # input treated as after a reduction
    assert net.aux_index == 9 and isinstance(net.auxiliary_head, AuxiliaryHeadImageNet)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.auxiliary_head.modules()) == 1  # no BN after 768
    assert not any(isinstance(m, nn.Sequential) and isinstance(m[0], (nn.MaxPool2d, nn.AvgPool2d))
                   for m in net.modules())  # retraining pools carry no BN
    x = torch.randn(1, 3, 224, 224)
    net.train()
    logits, aux = net(x, return_aux=True)
    assert logits.shape == (1, 11) and aux.shape == (1, 11)
    with pytest.raises(ValueError):
        NetworkImageNet(DARTS_V2, channels=7)
    assert isinstance(SPACE.build_network(DARTS_V2, style="imagenet", channels=8, layers=3, auxiliary=False),
                      NetworkImageNet)


# --- params / MACs against the published numbers ------------------------------------------------

@pytest.mark.parametrize("name", list(IMAGENET_CHANNELS))
def test_imagenet_params_match_published(name):
    """GeNAS README / GENAS_SPEC.md section 6: 5.56 / 5.34 / 5.20 / 5.41 M at C = 52 / 44 / 46 / 48,
    DARTS_V2 4.72 M at C = 48 (DARTS paper: 4.7 M); auxiliary head excluded."""
    net = NetworkImageNet(get_genotype(name), channels=IMAGENET_CHANNELS[name], num_classes=1000, layers=14)
    params_m = count_params(net, exclude="auxiliary") / 1e6
    assert abs(params_m / IMAGENET_PARAMS_M[name] - 1) < 0.01, (name, params_m)


@pytest.mark.parametrize("name, expected", [("DARTS_V2", 3.35), ("PC_DARTS", 3.63)])
def test_cifar_params_match_published(name, expected):
    """DARTS paper 3.3 M, PC-DARTS paper 3.6 M (3.63 M in its genotypes.py) at channels=36, 20 cells."""
    params_m = count_params(NetworkCIFAR(get_genotype(name)), exclude="auxiliary") / 1e6
    assert abs(params_m / expected - 1) < 0.01, (name, params_m)


# measured conv + linear MACs (M) at 3x224x224; GENAS_SPEC.md's derived "thop-style" figures are
# 697 / 626 / 616 / 616 M, the GeNAS README says 0.6 G for all four (see the docstring below)
IMAGENET_MACS_M = {"FLATNESS_CIFAR10": 610.06, "ANGLE_FLATNESS_CIFAR10": 592.91, "FLATNESS_CIFAR100": 579.47,
                   "ANGLE_FLATNESS_CIFAR100": 602.40, "DARTS_V2": 529.91}


@pytest.mark.parametrize("name", list(IMAGENET_MACS_M))
def test_imagenet_macs(name):
    """Conv + linear MACs (thop convention, as the official thop copy registers only Conv and
    Linear) at 3x224x224, eval mode, auxiliary head not run.

    The four GeNAS models give 610 / 593 / 579 / 602 M: all fit the README's "0.6 G", whereas
    GENAS_SPEC.md's derived 697 / 626 / 616 / 616 M do not reproduce (FLATNESS_CIFAR10 +14 %).
    The architectures are right (parameters match to 0.1 %, see above), and the counter agrees
    on DARTS: DARTS_V2 (channels=48) 530 M, as the ~523-545 M that conv+fc counters report for it
    (quark0/darts issue 46; the DARTS paper's 574 M counts more), and CIFAR DARTS_V2 528 M /
    PC-DARTS 557 M, the usual published figures (528 M / 558 M). These values pin the count.
    """
    net = NetworkImageNet(get_genotype(name), channels=IMAGENET_CHANNELS[name])
    macs = count_macs(net, (3, 224, 224)) / 1e6
    assert abs(macs / IMAGENET_MACS_M[name] - 1) < 0.002, (name, macs)
    if name != "DARTS_V2":
        assert 550 <= macs < 650  # README: 0.6 G


def test_cifar_macs():
    assert abs(count_macs(NetworkCIFAR(DARTS_V2), (3, 32, 32)) / 1e6 - 528.36) < 0.5
    assert abs(count_macs(NetworkCIFAR(PC_DARTS), (3, 32, 32)) / 1e6 - 556.67) < 0.5
