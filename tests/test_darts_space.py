"""DARTS search space (pure part): encoding against published genotypes, the 2-input rule and
check_cand repair, sampling / mutation / crossover, parse errors, the genotype registry and the
torch-free import."""
from __future__ import annotations

import itertools
import subprocess
import sys
from math import comb

import numpy as np
import pytest

from genas.errors import GenasError
from genas.spaces import SearchSpace, get_space, list_spaces
from genas.spaces.darts import (DARTS_EDGES, DARTS_OPS, NODE_OFFSETS, NODE_SLICES, DARTSSpace,
                                cell_is_valid, edge_index, repair_cell)
from genas.spaces.darts_genotypes import (DARTS_V2, FLATNESS_CIFAR10, GENOTYPE_STRINGS, GENOTYPES, PC_DARTS,
                                          RLDARTS, get_genotype, list_genotypes)

SPACE = DARTSSpace()


def _assert_valid(g):
    assert isinstance(g, tuple) and len(g) == 28, g
    assert all(type(v) is int and 0 <= v < 8 for v in g), g
    assert SPACE.is_valid(g), g
    for cell in (g[:14], g[14:]):
        for sl in NODE_SLICES:
            assert sum(v != 0 for v in cell[sl]) == 2, g


def _random_valid(rng, n):
    return [SPACE.sample(rng) for _ in range(n)]


# --- structure ----------------------------------------------------------------------------------

def test_ops_edges_and_registry():
    assert SPACE.ops == DARTS_OPS == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                                      "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert SPACE.num_genes == 28 and len(DARTS_EDGES) == 14
    assert NODE_OFFSETS == (0, 2, 5, 9)
    for e, (k, j) in enumerate(DARTS_EDGES):
        assert edge_index(k, j) == e == k + NODE_OFFSETS[j - 2]
    assert DARTS_EDGES[:5] == ((0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert DARTS_EDGES[9:] == ((0, 5), (1, 5), (2, 5), (3, 5), (4, 5))
    for bad in [(2, 2), (0, 1), (5, 6), (-1, 3)]:
        with pytest.raises(ValueError):
            edge_index(*bad)
    s = get_space("darts")
    assert isinstance(s, DARTSSpace) and isinstance(s, SearchSpace) and s.name == "darts"
    assert s.mutate_reduce is True
    assert "darts" in list_spaces() and "nb201" in list_spaces()


def test_size_is_the_number_of_valid_genotypes():
    # brute force per node: node j (inputs 0..j-1) has C(j, 2) * 7^2 valid edge assignments
    per_node = []
    for j in range(2, 6):
        n = sum(1 for ops in itertools.product(range(8), repeat=j) if sum(o != 0 for o in ops) == 2)
        assert n == comb(j, 2) * 49
        per_node.append(n)
    per_cell = int(np.prod(per_node))
    assert per_cell == 1 * 3 * 6 * 10 * 7 ** 8
    assert SPACE.size() == per_cell ** 2 == 1076746950455072400


def test_is_valid_examples():
    g = list(FLATNESS_CIFAR10)
    assert SPACE.is_valid(g)
    g[0] = 0  # node 2 keeps one input
    assert not SPACE.is_valid(g)
    g = list(FLATNESS_CIFAR10)
    g[14 + 2] = 4  # reduce node 3 gets a third input
    assert not SPACE.is_valid(g)
    assert not SPACE.is_valid((0,) * 28)
    assert not SPACE.is_valid((4,) * 28)
    with pytest.raises(ValueError):
        SPACE.is_valid((4,) * 27)
    with pytest.raises(ValueError):
        SPACE.is_valid((8,) + (0,) * 27)


# --- published genotypes --------------------------------------------------------------------------

def test_published_genotypes_are_valid_and_round_trip():
    assert list_genotypes() == list(GENOTYPES)
    for name in ("FLATNESS_CIFAR10", "ANGLE_FLATNESS_CIFAR10", "FLATNESS_CIFAR100", "ANGLE_FLATNESS_CIFAR100",
                 "RLDARTS_OURS_GT", "DARTS_V2", "PC_DARTS"):
        assert name in GENOTYPES
    for name, g in GENOTYPES.items():
        _assert_valid(g)
        assert SPACE.parse(SPACE.format(g)) == g, name
        assert get_genotype(name) == g == get_genotype(name.lower())
    for name, text in GENOTYPE_STRINGS.items():
        assert SPACE.parse(text) == GENOTYPES[name]


def test_published_index_encodings():
    # GENAS_SPEC.md section 5 (official retrain_architecture/genotypes.py)
    assert get_genotype("FLATNESS_CIFAR10") == (3, 6, 0, 4, 4, 0, 6, 6, 0, 0, 0, 0, 4, 3,
                                                5, 2, 0, 6, 4, 0, 3, 0, 6, 0, 0, 5, 0, 7)
    assert get_genotype("ANGLE_FLATNESS_CIFAR100") == (3, 5, 1, 4, 0, 0, 4, 0, 4, 0, 4, 0, 0, 5,
                                                       6, 4, 0, 7, 2, 1, 3, 0, 0, 0, 4, 0, 0, 7)
    # DARTS_V2 by hand: normal node2 sep3(0) sep3(1); node3 sep3(0) sep3(1); node4 sep3(1) skip(0);
    # node5 skip(0) dil3(2). reduce node2 max(0) max(1); node3 skip(2) max(1); node4 max(0) skip(2);
    # node5 skip(2) max(1)
    assert DARTS_V2 == (4, 4, 4, 4, 0, 3, 4, 0, 0, 3, 0, 6, 0, 0,
                        1, 1, 0, 1, 3, 1, 0, 3, 0, 0, 1, 3, 0, 0)
    # RLNAS' genotypes.py gives RLDARTS both as a Genotype and as its index encoding
    assert RLDARTS == (5, 4, 6, 0, 5, 4, 0, 0, 7, 0, 7, 6, 0, 0) + (5, 6, 4, 0, 5, 0, 6, 0, 4, 0, 1, 5, 0, 0)
    assert PC_DARTS[:14] == (3, 4, 4, 6, 0, 5, 4, 0, 0, 2, 6, 0, 0, 0)


def test_format_is_parse_searched_cell_order():
    assert SPACE.format(FLATNESS_CIFAR10) == (
        "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), "
        "('dil_conv_3x3', 1), ('dil_conv_3x3', 2), ('sep_conv_3x3', 3), ('skip_connect', 4)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('sep_conv_5x5', 0), ('avg_pool_3x3', 1), ('dil_conv_3x3', 1), ('sep_conv_3x3', 2), "
        "('skip_connect', 1), ('dil_conv_3x3', 3), ('sep_conv_5x5', 2), ('dil_conv_5x5', 4)], "
        "reduce_concat=[2, 3, 4, 5])")
    # PC-DARTS lists node 2's inputs as (1, 0); the canonical string lists them in edge order
    assert SPACE.format(PC_DARTS).startswith("Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1), ")
    pairs = SPACE.to_pairs(DARTS_V2)
    assert pairs["normal"][6:] == [("skip_connect", 0), ("dil_conv_3x3", 2)]
    assert SPACE.from_pairs(pairs["normal"], pairs["reduce"]) == DARTS_V2


def test_get_genotype_unknown_lists_names():
    with pytest.raises(GenasError) as exc:
        get_genotype("NOT_A_NET")
    assert "NOT_A_NET" in str(exc.value)
    for name in list_genotypes():
        assert name in str(exc.value)
    with pytest.raises(GenasError):
        get_genotype(["FLATNESS_CIFAR10"])


# --- format / parse -------------------------------------------------------------------------------

def test_round_trip_random_genotypes():
    rng = np.random.default_rng(0)
    strings = set()
    for g in _random_valid(rng, 400):
        s = SPACE.format(g)
        assert SPACE.parse(s) == g
        assert SPACE.format(np.array(g)) == s == SPACE.format(list(g))
        strings.add(s)
    assert len(strings) == 400


def test_parse_variants():
    text = GENOTYPE_STRINGS["DARTS_V2"]
    g = SPACE.parse(text)
    assert SPACE.parse(text.replace("[2, 3, 4, 5]", "range(2, 6)")) == g
    assert SPACE.parse(text.replace("'", '"')) == g
    assert SPACE.parse("  \n" + text.replace(", (", ",\n    (") + "\n") == g
    assert SPACE.parse("genotypes." + text) == g
    p = SPACE.to_pairs(g)
    # positional fields, tuples instead of lists
    assert SPACE.parse(f"Genotype({tuple(p['normal'])!r}, (2, 3, 4, 5), {p['reduce']!r}, range(2,6))") == g
    # keyword order does not matter
    assert SPACE.parse(f"Genotype(reduce={p['reduce']!r}, reduce_concat=[2, 3, 4, 5], "
                       f"normal_concat=[2, 3, 4, 5], normal={p['normal']!r})") == g


def test_parse_accepts_a_nodes_inputs_in_any_order():
    rng = np.random.default_rng(1)
    for g in _random_valid(rng, 100):
        p = SPACE.to_pairs(g)
        swapped = {}
        for which in ("normal", "reduce"):
            pairs = list(p[which])
            for n in range(4):
                if rng.random() < 0.5:
                    pairs[2 * n], pairs[2 * n + 1] = pairs[2 * n + 1], pairs[2 * n]
            swapped[which] = pairs
        text = (f"Genotype(normal={swapped['normal']!r}, normal_concat=range(2, 6), "
                f"reduce={swapped['reduce']!r}, reduce_concat=range(2, 6))")
        assert SPACE.parse(text) == g


def _with_normal(pairs, concat="[2, 3, 4, 5]"):
    reduce = SPACE.to_pairs(DARTS_V2)["reduce"]
    return f"Genotype(normal={pairs!r}, normal_concat={concat}, reduce={reduce!r}, reduce_concat=[2, 3, 4, 5])"


GOOD_NORMAL = SPACE.to_pairs(DARTS_V2)["normal"]


@pytest.mark.parametrize("bad_op", ["sep_conv_7x7", "conv_3x3", "SEP_CONV_3X3", "skip"])
def test_parse_unknown_op_names_token(bad_op):
    pairs = list(GOOD_NORMAL)
    pairs[3] = (bad_op, 1)
    with pytest.raises(ValueError) as exc:
        SPACE.parse(_with_normal(pairs))
    assert bad_op in str(exc.value)


@pytest.mark.parametrize("pairs, token", [
    (GOOD_NORMAL[:7], "7"),                                        # node 5 with 1 input
    (GOOD_NORMAL + [("sep_conv_3x3", 3)], "9"),                    # a third input somewhere
    (GOOD_NORMAL[:2] + [("sep_conv_3x3", 1), ("skip_connect", 1)] + GOOD_NORMAL[4:], "input 1 twice"),
    (GOOD_NORMAL[:6] + [("none", 0), ("dil_conv_3x3", 2)], "none"),  # a 'none' input
    ([("sep_conv_3x3", 0), ("sep_conv_3x3", 2)] + GOOD_NORMAL[2:], "('sep_conv_3x3', 2)"),  # node 2 <- 2
    (GOOD_NORMAL[:6] + [("skip_connect", 0), ("dil_conv_3x3", 5)], "('dil_conv_3x3', 5)"),
    (GOOD_NORMAL[:6] + [("skip_connect", 0), ("dil_conv_3x3", -1)], "-1"),
    (GOOD_NORMAL[:6] + [("skip_connect", 0), ("dil_conv_3x3", "2")], "'2'"),
    (GOOD_NORMAL[:6] + [("skip_connect", 0), ("dil_conv_3x3", 2.0)], "2.0"),
    (GOOD_NORMAL[:6] + [("skip_connect", 0), ("dil_conv_3x3", 2, 1)], "('dil_conv_3x3', 2, 1)"),
    (GOOD_NORMAL[:6] + [("skip_connect", 0), (4, 2)], "(4, 2)"),
])
def test_parse_bad_nodes(pairs, token):
    with pytest.raises(ValueError) as exc:
        SPACE.parse(_with_normal(pairs))
    assert token in str(exc.value)


@pytest.mark.parametrize("text, token", [
    ("", "empty"),
    ("   ", "empty"),
    ("Genotype(normal=[('sep_conv_3x3', 0)", "near"),                       # truncated
    ("Genotype(normal=[('sep_conv_3x3' 0)], reduce=[])", "near"),          # missing comma
    ("Genotyp(normal=[], normal_concat=[], reduce=[], reduce_concat=[])", "Genotyp"),
    ("[('sep_conv_3x3', 0)]", "Genotype"),
    ("|nor_conv_3x3~0|+|none~0|skip_connect~1|", "near"),                     # an NB201 string
    (_with_normal(GOOD_NORMAL).replace("normal_concat=[2, 3, 4, 5], ", ""), "normal_concat"),
    (_with_normal(GOOD_NORMAL).replace("normal_concat", "normal_cat"), "normal_cat"),
    (_with_normal(GOOD_NORMAL, concat="[2, 3, 4]"), "[2, 3, 4]"),
    (_with_normal(GOOD_NORMAL, concat="range(2, 5)"), "range(2, 5)"),
    (_with_normal(GOOD_NORMAL, concat="range(x)"), "'x'"),
    (_with_normal(GOOD_NORMAL, concat="'2345'"), "'2345'"),
    (_with_normal(GOOD_NORMAL).replace("normal=[", "normal=list([").replace("], normal_concat", "]), normal_concat"),
     "list("),
    (_with_normal(GOOD_NORMAL) + " + 1", "Genotype"),
    ("Genotype(1, 2, 3, 4, 5)", "positional"),
    (_with_normal(GOOD_NORMAL)[:-1] + ", normal=[])", "twice"),
    (_with_normal("sep_conv_3x3"), "pairs"),
])
def test_parse_malformed_strings(text, token):
    with pytest.raises(ValueError) as exc:
        SPACE.parse(text)
    assert token in str(exc.value)


@pytest.mark.parametrize("value", [None, 7, DARTS_V2, b"Genotype()"])
def test_parse_non_string(value):
    with pytest.raises(ValueError):
        SPACE.parse(value)


@pytest.mark.parametrize("genotype", [(), (4,) * 27, (4,) * 29, (8,) + DARTS_V2[1:], (-1,) + DARTS_V2[1:],
                                      (0,) + DARTS_V2[1:], DARTS_V2[:14] + (0,) * 14])
def test_format_rejects_bad_genotypes(genotype):
    with pytest.raises(ValueError):
        SPACE.format(genotype)


def test_format_names_the_broken_cell():
    with pytest.raises(ValueError, match="reduce cell"):
        SPACE.format(DARTS_V2[:14] + (4,) * 14)


# --- repair (check_cand) ---------------------------------------------------------------------------

def test_repair_leaves_valid_genotypes_unchanged():
    rng = np.random.default_rng(2)
    for g in list(GENOTYPES.values()) + _random_valid(rng, 300):
        state = rng.bit_generator.state
        assert SPACE.repair(list(g), rng) == g
        assert rng.bit_generator.state == state  # and draws nothing


def test_repair_fixes_invalid_cells_minimally():
    rng = np.random.default_rng(3)
    for trial in range(600):
        g = tuple(int(v) for v in rng.integers(0, 8, size=28))
        if trial % 50 == 0:
            g = (0,) * 28 if trial % 100 == 0 else tuple(int(v) for v in rng.integers(1, 8, size=28))
        r = SPACE.repair(g, rng)
        _assert_valid(r)
        for cell, fixed in ((g[:14], r[:14]), (g[14:], r[14:])):
            for sl in NODE_SLICES:
                before, after = cell[sl], fixed[sl]
                live = sum(v != 0 for v in before)
                if live == 2:
                    assert after == before
                elif live > 2:  # only surplus inputs dropped to none
                    assert all(a in (b, 0) for a, b in zip(after, before))
                else:  # only none edges given a non-none op
                    assert all(a == b or (b == 0 and a != 0) for a, b in zip(after, before))


def test_repair_is_random_and_seeded():
    g = (4,) * 28
    outs = {SPACE.repair(g, np.random.default_rng(s)) for s in range(30)}
    assert len(outs) > 20
    assert SPACE.repair(g, np.random.default_rng(9)) == SPACE.repair(g, np.random.default_rng(9))
    # too many nones: the new ops cover 1..7
    ops = set()
    for s in range(40):
        ops.update(SPACE.repair((0,) * 28, np.random.default_rng(s)))
    assert ops == set(range(8))


def test_repair_cell_and_cell_is_valid():
    assert cell_is_valid(DARTS_V2[:14]) and not cell_is_valid((0,) * 14)
    rng = np.random.default_rng(4)
    assert repair_cell(DARTS_V2[14:], rng) == DARTS_V2[14:]
    assert cell_is_valid(repair_cell((7,) * 14, rng))


# --- sample / mutate / crossover -------------------------------------------------------------------

def test_sample_valid_deterministic_and_uniform_over_valid():
    rng = np.random.default_rng(5)
    samples = _random_valid(rng, 3000)
    for g in samples:
        _assert_valid(g)
    assert len(set(samples)) == 3000
    assert SPACE.sample(np.random.default_rng(5)) == samples[0]
    # node 5 (genes 9..13): each of the 10 input pairs about equally often, ops uniform over 1..7
    pairs = np.zeros(10)
    index = {p: i for i, p in enumerate(itertools.combinations(range(5), 2))}
    ops = np.zeros(8)
    for g in samples:
        live = tuple(i for i in range(5) if g[9 + i] != 0)
        pairs[index[live]] += 1
        for v in g:
            ops[v] += 1
    assert np.all(np.abs(pairs / 3000 - 0.1) < 0.025), pairs
    assert np.all(np.abs(ops[1:] / ops[1:].sum() - 1 / 7) < 0.01), ops


def test_mutate_children_valid_many_seeds():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        parent = SPACE.sample(rng)
        for p in (0.05, 0.1, 0.3, 1.0):
            _assert_valid(SPACE.mutate(parent, rng, p))
    rng = np.random.default_rng(6)
    parent = SPACE.sample(rng)
    assert SPACE.mutate(list(parent), rng, 0.0) == parent
    assert SPACE.mutate(parent, np.random.default_rng(1), 0.2) == SPACE.mutate(parent, np.random.default_rng(1), 0.2)


def test_mutate_reduce_option():
    official = DARTSSpace(mutate_reduce=False)
    assert "mutate_reduce=False" in repr(official)
    rng = np.random.default_rng(7)
    normal_changed = reduce_changed_default = 0
    for _ in range(300):
        parent = SPACE.sample(rng)
        child = official.mutate(parent, rng, 0.3)
        _assert_valid(child)
        assert child[14:] == parent[14:]
        normal_changed += child[:14] != parent[:14]
        reduce_changed_default += SPACE.mutate(parent, rng, 0.3)[14:] != parent[14:]
    assert normal_changed > 250
    assert reduce_changed_default > 250


def test_crossover_children_valid_many_seeds():
    rng = np.random.default_rng(8)
    from_parent = 0
    total = 0
    for _ in range(500):
        a, b = SPACE.sample(rng), SPACE.sample(rng)
        child = SPACE.crossover(a, b, rng)
        _assert_valid(child)
        from_parent += sum(c in (x, y) for c, x, y in zip(child, a, b))
        total += 28
    assert from_parent / total > 0.9  # repair touches only a few genes
    a = SPACE.sample(rng)
    assert SPACE.crossover(a, list(a), rng) == a
    b = SPACE.sample(rng)
    assert SPACE.crossover(a, b, np.random.default_rng(3)) == SPACE.crossover(a, b, np.random.default_rng(3))
    with pytest.raises(ValueError):
        SPACE.crossover(a, b[:20], rng)


# --- torch-free import --------------------------------------------------------------------------

def test_importing_darts_space_does_not_import_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import genas.spaces as gs\n"
        "from genas.spaces.darts_genotypes import get_genotype, list_genotypes\n"
        "s = gs.get_space('darts')\n"
        "rng = np.random.default_rng(0)\n"
        "g = s.mutate(s.crossover(s.sample(rng), s.sample(rng), rng), rng, 0.5)\n"
        "assert s.parse(s.format(g)) == g and s.is_valid(g)\n"
        "s.repair((0,) * 28, rng); s.size()\n"
        "assert all(s.is_valid(get_genotype(n)) for n in list_genotypes())\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'CLEAN', bad[:5])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), out.stdout
