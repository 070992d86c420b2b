"""NB201 networks: parameter counts against the official NB201 numbers, and the supernet's single
path against the stand-alone network that ``extract`` builds from it (forward, BN stats, grads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genas.spaces import get_space
from genas.spaces.nb201_net import NB201Network, NB201Supernet

SPACE = get_space("nb201")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- parameter counts at the NB201 setting -----------------------------------------------------

def _params_table(params_rows):
    return {SPACE.parse(r["arch_str"]): r for r in params_rows}


def test_standalone_params_match_nb201_cifar10(params_rows):
    table = _params_table(params_rows)
    assert len(table) == 15625
    rng = np.random.default_rng(2024)
    picks = [tuple(int(v) for v in g) for g in rng.choice(sorted(table), size=220, replace=False)]
    # extremes: all none, all conv3x3, all conv1x1, all pool, all skip
    picks += [(0,) * 6, (3,) * 6, (2,) * 6, (4,) * 6, (1,) * 6]
    seen = set()
    for g in picks:
        net = SPACE.build_network(g, channels=16, cells_per_stage=5, in_channels=3, num_classes=10)
        expected = float(table[g]["params_M_cifar10"])
        assert abs(n_params(net) / 1e6 - expected) < 1e-6, (SPACE.format(g), n_params(net), expected)
        seen.add(n_params(net))
    assert len(seen) > 15  # the sample covers many different (c3, c1) counts
    assert min(seen) == 73306 and max(seen) == 1531546


def test_standalone_params_match_nb201_cifar100(params_rows):
    table = _params_table(params_rows)
    rng = np.random.default_rng(100)
    picks = [tuple(int(v) for v in g) for g in rng.choice(sorted(table), size=12, replace=False)]
    for g in picks + [(0,) * 6, (3,) * 6]:
        net = NB201Network(g, channels=16, cells_per_stage=5, in_channels=3, num_classes=100)
        expected = float(table[g]["params_M_cifar100"])
        assert abs(n_params(net) / 1e6 - expected) < 1e-6, (SPACE.format(g), n_params(net), expected)


def test_network_has_no_modules_for_none_edges():
    net = NB201Network((0, 1, 0, 4, 0, 3), channels=4, cells_per_stage=1)
    cell = net.cells[0]
    assert sorted(cell.edges.keys()) == ["1", "3", "5"]
    assert n_params(NB201Network((0,) * 6, channels=4, cells_per_stage=1)) == \
        n_params(NB201Network((1, 4, 1, 4, 1, 4), channels=4, cells_per_stage=1))


def test_supernet_params_closed_form():
    # every cell holds 6 edges x (conv1x1 + conv3x3); cell BNs add 2 x 2C per edge when affine
    skeleton = 73306  # stem, reductions and head at C=16, 10 classes (all-none network)
    convs = sum(5 * 6 * 10 * c * c for c in (16, 32, 64))
    bn = sum(5 * 6 * 2 * 2 * c for c in (16, 32, 64))
    assert n_params(NB201Supernet(16, 5, 10, 3, affine=False)) == skeleton + convs
    assert n_params(NB201Supernet(16, 5, 10, 3, affine=True)) == skeleton + convs + bn


@pytest.mark.parametrize("kwargs", [dict(channels=0), dict(cells_per_stage=0), dict(num_classes=0),
                                    dict(in_channels=0)])
def test_bad_sizes_raise(kwargs):
    with pytest.raises(ValueError):
        NB201Supernet(**kwargs)
    with pytest.raises(ValueError):
        NB201Network((1,) * 6, **kwargs)


def test_output_shapes():
    x = torch.randn(3, 1, 12, 12)
    sn = SPACE.build_supernet(channels=4, cells_per_stage=1, num_classes=7, in_channels=1)
    assert sn(x, (3, 1, 2, 4, 0, 3)).shape == (3, 7)
    net = SPACE.build_network((3, 1, 2, 4, 0, 3), channels=4, cells_per_stage=1, num_classes=7, in_channels=1)
    assert net(x).shape == (3, 7)
    with pytest.raises(ValueError):
        sn(x, (3, 1, 2))


# --- supernet path == extracted stand-alone network ----------------------------------------------

GENOTYPES = [
    (0, 0, 0, 0, 0, 0),  # all none: output of every cell is zero
    (1, 0, 0, 0, 0, 0),  # disconnected, only a skip into node 1
    (0, 0, 3, 0, 0, 2),  # disconnected with dead convs (1->2->3, nothing into node 1)
    (3, 3, 3, 3, 3, 3),
    (2, 2, 2, 2, 2, 2),
    (4, 4, 4, 4, 4, 4),
    (1, 1, 1, 1, 1, 1),
    (3, 3, 3, 1, 3, 2),  # NB201's best CIFAR-10 cell
] + [SPACE.sample(np.random.default_rng(s)) for s in range(6)]

C, N = 6, 2


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights everywhere, including BN running stats and affine params."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


def _supernet(affine: bool) -> NB201Supernet:
    torch.manual_seed(0)
    sn = NB201Supernet(channels=C, cells_per_stage=N, num_classes=5, in_channels=3, affine=affine)
    _randomize(sn, 1)
    return sn


def _network_name(supernet_name: str, genotype) -> str | None:
    """The network name of a supernet parameter, or None when it is off the genotype's path."""
    parts = supernet_name.split(".")
    if len(parts) > 4 and parts[0] == "cells" and parts[2] == "edges":
        edge, op = int(parts[3]), int(parts[4])
        if genotype[edge] != op or op == 0:
            return None
        return ".".join(parts[:4] + parts[5:])
    return supernet_name


@pytest.fixture(scope="module")
def x():
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("affine", [False, True])
def test_supernet_equals_extracted_network_eval(affine, x):
    sn = _supernet(affine).eval()
    outputs = set()
    for g in GENOTYPES:
        net = sn.extract(g).eval()
        assert isinstance(net, NB201Network) and net.genotype == tuple(g)
        with torch.no_grad():
            a, b = sn(x, g), net(x)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        outputs.add(round(float(a.abs().sum()), 4))
    assert len(outputs) > len(GENOTYPES) // 2  # the genotypes really compute different functions


@pytest.mark.parametrize("affine", [False, True])
def test_supernet_equals_extracted_network_train(affine, x):
    for g in GENOTYPES:
        sn = _supernet(affine).train()
        net = sn.extract(g).train()
        a, b = sn(x, g), net(x)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
        # the batch statistics the two update are the same ...
        sn_state = sn.subnet_state_dict(g)
        for name, tensor in net.state_dict().items():
            if name in sn_state:
                torch.testing.assert_close(tensor, sn_state[name], rtol=1e-6, atol=1e-7, msg=name)
        # ... and so are the gradients of the path's weights
        w = torch.randn(a.shape, generator=torch.Generator().manual_seed(5))
        (a * w).sum().backward()
        (b * w).sum().backward()
        net_params = dict(net.named_parameters())
        n_checked = 0
        for name, p in sn.named_parameters():
            target = _network_name(name, g)
            if target is None:
                assert p.grad is None or not p.grad.any(), f"{name} is off the path but got a gradient"
                continue
            if p.grad is None:  # on a path that does not reach the output (dead op)
                assert net_params[target].grad is None or not net_params[target].grad.any(), name
                continue
            torch.testing.assert_close(net_params[target].grad, p.grad, rtol=1e-5, atol=1e-6, msg=name)
            n_checked += 1
        # a connected path trains stem, reductions and head; a disconnected one only the head
        assert n_checked >= (20 if SPACE.is_connected(g) else 4), (g, n_checked)


def test_extract_copies_weights_and_bn_affine_as_in_the_supernet():
    sn = _supernet(affine=False)
    g = (3, 2, 3, 1, 2, 3)
    net = sn.extract(g)
    # the supernet's cell BNs have no affine parameters, so the extracted network's have none either:
    # both hold the same parameters (weight noise must not perturb parameters the supernet lacks)
    bn = net.cells[0].edges["0"][2]
    assert not bn.affine and bn.weight is None
    sn_names = {n for n, _ in sn.named_parameters()}
    assert all(sn.supernet_param_name(n, g) in sn_names for n, _ in net.named_parameters())
    assert sn_affine_extract_is_affine(g)
    torch.testing.assert_close(bn.running_var, sn.cells[0].edges[0][3][2].running_var, rtol=0, atol=0)
    torch.testing.assert_close(net.cells[0].edges["0"][1].weight, sn.cells[0].edges[0][3][1].weight, rtol=0, atol=0)
    torch.testing.assert_close(net.cells[0].edges["1"][1].weight, sn.cells[0].edges[1][2][1].weight, rtol=0, atol=0)
    # the copy is independent: training the network does not move the supernet
    before = sn.cells[0].edges[0][3][1].weight.clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    torch.testing.assert_close(sn.cells[0].edges[0][3][1].weight, before, rtol=0, atol=0)


def sn_affine_extract_is_affine(g) -> bool:
    bn = _supernet(affine=True).extract(g).cells[0].edges["0"][2]
    return bn.affine and bn.weight is not None


@pytest.mark.parametrize("g", GENOTYPES)
def test_subnet_state_dict_keys_match_network_affine(g):
    sn = NB201Supernet(channels=4, cells_per_stage=2, num_classes=3, affine=True)
    net = NB201Network(g, channels=4, cells_per_stage=2, num_classes=3)
    sub = sn.subnet_state_dict(g)
    assert set(sub) == set(net.state_dict())
    for name, tensor in net.state_dict().items():
        assert sub[name].shape == tensor.shape, name


def test_subnet_state_dict_keys_without_affine():
    g = (3, 2, 0, 1, 4, 3)
    sn = NB201Supernet(channels=4, cells_per_stage=2, num_classes=3, affine=False)
    net_keys = set(NB201Network(g, channels=4, cells_per_stage=2, num_classes=3).state_dict())
    sub = set(sn.subnet_state_dict(g))
    missing = net_keys - sub
    assert sub < net_keys
    # exactly the cell-edge BN weight/bias are missing: 3 conv edges x 2 tensors x 6 cells
    assert len(missing) == 3 * 2 * 6
    assert all(k.startswith("cells.") and ".edges." in k and k.endswith((".2.weight", ".2.bias")) for k in missing)


def test_supernet_paths_share_the_skeleton_but_not_edge_weights(x):
    sn = _supernet(affine=True).eval()
    with torch.no_grad():
        base = sn(x, (3, 3, 3, 3, 3, 3))
        # changing a conv1x1 weight does not touch the all-conv3x3 path
        sn.cells[0].edges[0][2][1].weight.mul_(3.0)
        torch.testing.assert_close(sn(x, (3, 3, 3, 3, 3, 3)), base, rtol=0, atol=0)
        sn.cells[0].edges[0][3][1].weight.mul_(3.0)
        assert not torch.allclose(sn(x, (3, 3, 3, 3, 3, 3)), base)
