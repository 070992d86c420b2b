"""ABS angle vector for the DARTS space (GENAS_SPEC.md section 2.1)."""
import math

import numpy as np

import pytest
import torch

from genas.workflows.scoring import scoring_context
from genas.proxies.angle import supernet_angle
from genas.spaces.darts_angle import (DARTS_PATH_EDGES, darts_path_vector, darts_paths,
                                       extra_param_keys)
from genas.spaces import get_space
from genas.spaces.darts import edge_index
from genas.spaces.darts_net import DARTSSupernet

SPACE = get_space("darts")
C, LAYERS = 4, 5  # reduction cells 1 and 3; cell widths 4, 8, 8, 16, 16
WIDTHS = (4, 8, 8, 16, 16)
NORMAL_CELLS, REDUCE_CELLS = (0, 2, 4), (1, 3)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return DARTSSupernet(channels=C, num_classes=3, layers=LAYERS, in_channels=1)


def _perturbed(state, std, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: (v + std * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone())
            for k, v in state.items()}


@pytest.fixture(scope="module")
def init_state(supernet):
    # random BN affine values so that weights and biases can be told apart
    return _perturbed(supernet.state_dict(), 0.1, 1)


@pytest.fixture(scope="module")
def final_state(init_state):
    return _perturbed(init_state, 0.05, 2)


def genotype(normal, reduce):
    return SPACE.from_pairs(normal, reduce)


# chain topology: node 2 <- (0, 1), node 3 <- (0, 2), node 4 <- (1, 3), node 5 <- (2, 4)
CHAIN_SEP = [("sep_conv_3x3", s) for s in (0, 1, 0, 2, 1, 3, 2, 4)]
CHAIN_MIXED = [("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("dil_conv_3x3", 0), ("skip_connect", 2),
               ("dil_conv_5x5", 1), ("sep_conv_5x5", 3), ("skip_connect", 2), ("avg_pool_3x3", 4)]
CHAIN_NO_DIL = [("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2),
                ("skip_connect", 1), ("sep_conv_5x5", 3), ("skip_connect", 2), ("avg_pool_3x3", 4)]
# every node takes inputs 0 and 1
INPUTS_SKIP = [("skip_connect", s) for s in (0, 1) * 4]
INPUTS_MIXED = [("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("max_pool_3x3", 0), ("avg_pool_3x3", 1),
                ("skip_connect", 0), ("sep_conv_5x5", 1), ("dil_conv_5x5", 0), ("skip_connect", 1)]


# hand sizes of the per-edge vectors on a cell of width c
def sep(c, k): return 2 * c * k * k + 2 * c * c + 4 * c
def dil(c, k): return c * k * k + c * c + 2 * c
def pool(c): return 9 * c + 2 * c
def skip1(c): return c * c
def skip2(c): return 2 * c * (c // 2) + 2 * c


# stem 1*12*9 + 2*12; per cell pre0 + pre1 (ReLUConvBN c_in->c: c_in*c + 2c; FactorizedReduce
# c_in->c: 2 * c_in * c/2 + 2c); classifier 64*3 (no bias)
TAIL = (108 + 24) + (56 + 56) + (112 + 144) + (144 + 272) + (544 + 544) + (544 + 1056) + 192


def test_paths_in_spec_order():
    to5 = [[2, 3, 4, 5], [2, 3, 5], [2, 4, 5], [2, 5], [3, 4, 5], [3, 5], [4, 5], [5]]
    expected = ([[0] + p for p in to5] + [[1] + p for p in to5]
                + [[0, 2, 3, 4], [0, 2, 4], [0, 3, 4], [0, 4], [1, 2, 3, 4], [1, 2, 4], [1, 3, 4], [1, 4],
                   [0, 2, 3], [0, 3], [1, 2, 3], [1, 3], [0, 2], [1, 2]])
    paths = darts_paths()
    assert [list(p) for p in paths] == expected
    ends = [p[-1] for p in paths]
    assert (ends.count(5), ends.count(4), ends.count(3), ends.count(2)) == (16, 8, 4, 2)
    # every input -> intermediate path exactly once, each a strictly increasing node list
    assert len(set(paths)) == 30 and all(p[0] in (0, 1) and list(p) == sorted(set(p)) for p in paths)
    assert DARTS_PATH_EDGES[0] == (0, 4, 8, 13)  # 0->2, 2->3, 3->4, 4->5
    assert DARTS_PATH_EDGES[7] == (edge_index(0, 5),) == (9,)


def test_vector_length_matches_hand_count(supernet, init_state):
    g = genotype(CHAIN_SEP, CHAIN_MIXED)
    v = darts_path_vector(supernet, init_state, g)
    assert v.dtype == torch.float64 and v.dim() == 1
    # chain topology: 15 live paths; uses of edges 0->2, 1->2, 0->3, 2->3, 1->4, 3->4, 2->5, 4->5
    uses = (5, 5, 3, 6, 2, 6, 2, 4)
    assert sum(uses) == 2 + 5 + 9 + 17  # edges on the paths ending at nodes 2, 3, 4, 5
    normal = sum(sum(uses) * sep(WIDTHS[i], 3) for i in NORMAL_CELLS)
    reduce = 0
    for i in REDUCE_CELLS:
        c = WIDTHS[i]  # pools from inputs have stride 2 but the same vector; 2->3, 2->5 skips are identities
        sizes = (pool(c), pool(c), dil(c, 3), skip1(c), dil(c, 5), sep(c, 5), skip1(c), pool(c))
        reduce += sum(u * s for u, s in zip(uses, sizes))
    assert v.numel() == normal + reduce + TAIL
    # stride-2 skips (FactorizedReduce) in reduction cells: 8 live one-edge paths per cell
    g2 = genotype(INPUTS_SKIP, INPUTS_SKIP)
    v2 = darts_path_vector(supernet, init_state, g2)
    assert v2.numel() == (sum(8 * skip1(WIDTHS[i]) for i in NORMAL_CELLS)
                          + sum(8 * skip2(WIDTHS[i]) for i in REDUCE_CELLS) + TAIL)


def _manual(supernet, state, normal_pairs, reduce_pairs, quirk):
    """Vector of an INPUTS_* genotype (every node <- 0, 1) built by hand from the state dict."""
    alive_edges = [(0, 5), (1, 5), (0, 4), (1, 4), (0, 3), (1, 3), (0, 2), (1, 2)]  # the spec order
    parts = []
    for i, cell in enumerate(supernet.cells):
        pairs = reduce_pairs if cell.reduction else normal_pairs
        c = WIDTHS[i]
        for src, dst in alive_edges:
            name = pairs[2 * (dst - 2) + src][0]
            b = f"cells.{i}.edges.{edge_index(src, dst)}.{SPACE.ops.index(name)}"
            if name in ("max_pool_3x3", "avg_pool_3x3"):
                parts += [torch.full((c * 9,), 1 / 9, dtype=torch.float64), state[f"{b}.1.weight"],
                          state[f"{b}.1.bias"]]
            elif name == "skip_connect" and not cell.reduction:
                parts.append(torch.eye(c, dtype=torch.float64))
            elif name == "skip_connect":
                parts += [state[f"{b}.conv_1.weight"], state[f"{b}.conv_2.weight"], state[f"{b}.bn.weight"],
                          state[f"{b}.bn.bias"]]
            elif name.startswith("sep_conv"):
                parts += [state[f"{b}.{k}.weight"] for k in (1, 2, 5, 6)]
                parts += [state[f"{b}.3.weight"], state[f"{b}.3.bias"], state[f"{b}.7.weight"], state[f"{b}.7.bias"]]
            else:
                parts += [state[f"{b}.1.weight"], state[f"{b}.2.weight"], state[f"{b}.3.weight"],
                          state[f"{b}.3.weight" if quirk else f"{b}.3.bias"]]
    parts += [state["stem.0.weight"], state["stem.1.weight"], state["stem.1.bias"]]
    for i, cell in enumerate(supernet.cells):
        for p in ("preprocess0", "preprocess1"):
            fr = cell.reduction_prev and p == "preprocess0"
            keys = (("conv_1.weight", "conv_2.weight", "bn.weight", "bn.bias") if fr
                    else ("1.weight", "2.weight", "2.bias"))
            parts += [state[f"cells.{i}.{p}.{k}"] for k in keys]
    parts.append(state["classifier.weight"])
    return torch.cat([t.double().flatten() for t in parts])


@pytest.mark.parametrize("quirk", [False, True])
def test_vector_contents_and_order(supernet, init_state, quirk):
    g = genotype(INPUTS_SKIP, INPUTS_MIXED)
    v = darts_path_vector(supernet, init_state, g, reproduce_dil_conv_quirk=quirk)
    assert torch.equal(v, _manual(supernet, init_state, INPUTS_SKIP, INPUTS_MIXED, quirk))
    # a DARTS Genotype(...) string gives the same vector
    assert torch.equal(darts_path_vector(supernet, init_state, SPACE.format(g), quirk), v)


def test_dropped_paths_contribute_nothing(supernet, init_state):
    g = genotype(CHAIN_SEP, CHAIN_MIXED)
    v = darts_path_vector(supernet, init_state, g)
    # edge 2->5 of the normal cell set to none: paths [0,2,5] and [1,2,5] (2 edges each) disappear
    cut = list(g)
    cut[edge_index(2, 5)] = 0
    vc = darts_path_vector(supernet, init_state, cut)
    assert v.numel() - vc.numel() == sum(4 * sep(WIDTHS[i], 3) for i in NORMAL_CELLS)
    # edge 0->5 (unused in g) set to an op: only the one-edge path [0,5] appears
    add = list(g)
    add[edge_index(0, 5)] = SPACE.ops.index("skip_connect")
    assert darts_path_vector(supernet, init_state, add).numel() - v.numel() == sum(
        skip1(WIDTHS[i]) for i in NORMAL_CELLS)
    # whole normal cell none: only the reduction cells' paths and the tail remain
    only_reduce = (0,) * 14 + tuple(g[14:])
    vr = darts_path_vector(supernet, init_state, only_reduce)
    assert vr.numel() == v.numel() - sum(33 * sep(WIDTHS[i], 3) for i in NORMAL_CELLS)
    # every path dropped: None, and the angle is the worst score 0
    assert darts_path_vector(supernet, init_state, (0,) * 28) is None
    assert darts_angle(supernet, init_state, init_state, (0,) * 28) == 0.0


def test_extra_params_tail_is_genotype_independent(supernet, init_state):
    tails = []
    for normal, reduce in ((CHAIN_SEP, CHAIN_MIXED), (INPUTS_SKIP, INPUTS_MIXED), (INPUTS_MIXED, CHAIN_NO_DIL)):
        tails.append(darts_path_vector(supernet, init_state, genotype(normal, reduce))[-TAIL:])
    assert all(torch.equal(t, tails[0]) for t in tails[1:])
    assert sum(init_state[k].numel() for k in extra_param_keys(supernet)) == TAIL
    assert "classifier.bias" not in extra_param_keys(supernet)
    assert torch.equal(tails[0][:108], init_state["stem.0.weight"].double().flatten())
    assert torch.equal(tails[0][-192:], init_state["classifier.weight"].double().flatten())


def test_dil_conv_quirk(supernet, init_state):
    no_dil = genotype(CHAIN_SEP, CHAIN_NO_DIL)
    assert torch.equal(darts_path_vector(supernet, init_state, no_dil),
                       darts_path_vector(supernet, init_state, no_dil, reproduce_dil_conv_quirk=True))
    with_dil = genotype(CHAIN_SEP, CHAIN_MIXED)
    fixed = darts_path_vector(supernet, init_state, with_dil)
    quirk = darts_path_vector(supernet, init_state, with_dil, reproduce_dil_conv_quirk=True)
    assert fixed.numel() == quirk.numel() and not torch.equal(fixed, quirk)
    # the only differences are the dil_conv BN biases, replaced by the BN weights
    diff = (fixed != quirk).nonzero().flatten()
    uses = {3: 3, 5: 2}  # dil_conv_3x3 on 0->3 (3 paths), dil_conv_5x5 on 1->4 (2 paths)
    assert diff.numel() <= sum(u * WIDTHS[i] for i in REDUCE_CELLS for u in uses.values())
    biases = {init_state[f"cells.{i}.edges.{e}.{op}.3.bias"][j].item()
              for i in REDUCE_CELLS for e, op in ((edge_index(0, 3), 6), (edge_index(1, 4), 7))
              for j in range(WIDTHS[i])}
    weights = {init_state[f"cells.{i}.edges.{e}.{op}.3.weight"][j].item()
               for i in REDUCE_CELLS for e, op in ((edge_index(0, 3), 6), (edge_index(1, 4), 7))
               for j in range(WIDTHS[i])}
    assert set(fixed[diff].tolist()) <= biases and set(quirk[diff].tolist()) <= weights


def test_angle_values_and_determinism(supernet, init_state, final_state):
    g = genotype(CHAIN_SEP, CHAIN_MIXED)
    assert darts_angle(supernet, init_state, init_state, g) == pytest.approx(0.0, abs=1e-6)
    theta = darts_angle(supernet, init_state, final_state, g)
    assert 0.0 < theta < math.pi
    assert darts_angle(supernet, init_state, final_state, g) == theta
    copy = {k: v.clone() for k, v in final_state.items()}
    assert torch.equal(darts_path_vector(supernet, copy, g), darts_path_vector(supernet, final_state, g))
    # with the quirk the angle changes (dil_conv bias replaced by the weight) but stays an angle
    theta_q = darts_angle(supernet, init_state, final_state, g, quirk=True)
    assert 0.0 < theta_q < math.pi and theta_q != theta
    # a live model's state_dict works as the state (the function only reads tensors)
    assert darts_path_vector(supernet, supernet.state_dict(), g).numel() == darts_path_vector(
        supernet, init_state, g).numel()


def test_angle_proxy_dispatches_to_darts(tmp_path):
    """The registered `angle` proxy uses the DARTS vectors on a DARTS supernet run."""
    from _tiny import train_tiny
    from genas.proxies import ScoringConfig, ScoringContext, get_proxy
    from genas.spaces import get_space

    run = tmp_path / "darts"
    train_tiny(run, space="darts", channels=4, layers=5, epochs=1)
    ctx = scoring_context(run, ScoringConfig(val_images=32, bn_images=32, bn_batch_size=32))
    g = get_space("darts").sample(np.random.default_rng(0))
    value = get_proxy("angle")(ctx, g).value
    assert value == pytest.approx(darts_angle(ctx.supernet, ctx.init_state, ctx.final_state, g))
    assert 0.0 < value < math.pi


def darts_angle(supernet, init_state, final_state, genotype, quirk=False) -> float:
    """The angle proxy's value: 0.0 (worst) when every path is dropped."""
    theta = supernet_angle(supernet, init_state, final_state, genotype, quirk)
    return 0.0 if theta is None else theta
