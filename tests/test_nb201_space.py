"""NB201 search space: string encoding against the full NATS-Bench table, connectivity, and the
space contract (sample / mutate / crossover / parse errors / registry / torch-free import)."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from genas.errors import GenasError
from genas.spaces import Genotype, SearchSpace, get_space, list_spaces
from genas.spaces.nb201 import NB201_EDGES, NB201_OPS, NB201Space

SPACE = NB201Space()
ALL_GENOTYPES = list(itertools.product(range(5), repeat=6))


# --- encoding against the NATS-Bench table ------------------------------------------------------

def test_round_trip_every_nats_row(nats_rows):
    assert len(nats_rows) == 15625
    genotypes = []
    for row in nats_rows:
        s = row["ArchitectureString"]
        g = SPACE.parse(s)
        assert isinstance(g, tuple) and len(g) == 6 and all(type(v) is int for v in g), s
        assert SPACE.format(g) == s
        genotypes.append(g)
    assert len(set(genotypes)) == 15625
    # the table holds the whole space, so parse maps it onto every genotype exactly once
    assert set(genotypes) == set(ALL_GENOTYPES)


def test_size():
    assert SPACE.size() == 15625 == len(ALL_GENOTYPES)


def test_format_parse_round_trip_every_genotype():
    strings = set()
    for g in ALL_GENOTYPES:
        s = SPACE.format(g)
        assert SPACE.parse(s) == g
        strings.add(s)
    assert len(strings) == 15625


def test_known_rows(nats_rows):
    # SOURCE.md: best CIFAR-10 arch is index 6111
    best = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert nats_rows[6111]["ArchitectureString"] == best
    assert SPACE.parse(best) == (3, 3, 3, 1, 3, 2)
    # index 0 of NATS-Bench
    assert SPACE.parse(nats_rows[0]["ArchitectureString"]) == (4, 2, 1, 2, 1, 1)


def test_gene_order_is_canonical_string_order():
    # genes (a..f) -> |a~0|+|b~0|c~1|+|d~0|e~1|f~2|
    assert SPACE.format((1, 2, 3, 4, 0, 1)) == (
        "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|skip_connect~2|")
    assert SPACE.ops == NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert SPACE.edges == NB201_EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    assert SPACE.num_genes == 6


def test_format_accepts_lists_and_numpy_ints():
    s = SPACE.format(np.array([3, 0, 1, 2, 4, 0]))
    assert s == SPACE.format((3, 0, 1, 2, 4, 0)) == SPACE.format([3, 0, 1, 2, 4, 0])
    assert SPACE.check(np.array([3, 0, 1, 2, 4, 0], dtype=np.int64)) == (3, 0, 1, 2, 4, 0)
    assert all(type(v) is int for v in SPACE.check(np.array([3, 0, 1, 2, 4, 0])))


# --- connectivity ------------------------------------------------------------------------------

def test_is_connected_matches_the_341_disconnected_archs(nats_rows):
    disconnected_by_table = {SPACE.parse(r["ArchitectureString"]) for r in nats_rows
                             if float(r["CIFAR10TestAccuracy200Epochs"]) == 10.0}
    assert len(disconnected_by_table) == 341
    disconnected = {g for g in ALL_GENOTYPES if not SPACE.is_connected(g)}
    assert disconnected == disconnected_by_table


@pytest.mark.parametrize("genotype, connected", [
    ((0, 0, 0, 0, 0, 0), False),
    ((1, 1, 1, 0, 0, 0), False),  # nodes 1 and 2 reached, but no edge into node 3
    ((0, 0, 3, 0, 0, 3), False),  # 1->2->3 but nothing enters node 1
    ((0, 0, 0, 0, 2, 0), False),  # 1->3 with node 1 unreachable
    ((0, 0, 0, 4, 0, 0), True),   # direct 0->3
    ((1, 0, 0, 0, 3, 0), True),   # 0->1->3
    ((0, 2, 0, 0, 0, 1), True),   # 0->2->3
    ((3, 0, 2, 0, 0, 4), True),   # 0->1->2->3
])
def test_is_connected_examples(genotype, connected):
    assert SPACE.is_connected(genotype) is connected


# --- parse / format errors ---------------------------------------------------------------------

@pytest.mark.parametrize("bad_op", ["conv_5x5", "nor_conv_3x3x", "NONE", "skip"])
def test_parse_unknown_op_names_token(bad_op):
    s = f"|nor_conv_3x3~0|+|none~0|{bad_op}~1|+|skip_connect~0|none~1|none~2|"
    with pytest.raises(ValueError) as exc:
        SPACE.parse(s)
    assert bad_op in str(exc.value)


GOOD = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "|nor_conv_3x3~0||none~0|skip_connect~1||skip_connect~0|none~1|avg_pool_3x3~2|",  # missing '+'
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|",  # two groups
    GOOD + "+|none~0|",  # four groups
    "|nor_conv_3x3~1|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # wrong input index
    "|nor_conv_3x3~0|+|none~1|skip_connect~0|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # swapped indices
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~3|",  # index 3
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~02|",
    "nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # missing leading '|'
    "|nor_conv_3x3~0+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # missing '|' before '+'
    "|nor_conv_3x3~0|+|none~0skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # missing inner '|'
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2",  # missing trailing '|'
    "|nor_conv_3x3|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # no '~'
    "|nor_conv_3x3~0|none~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # node 1, 2 inputs
    "|nor_conv_3x3~0|+|none~0|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # node 2, 1 input
    "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|none~3|",
    "|~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",  # empty op
    "|nor_conv_3x3~0|+||+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "|+|+|",
])
def test_parse_malformed_strings(text):
    assert SPACE.parse(GOOD) == (3, 0, 1, 1, 0, 4)  # the unmodified string parses
    with pytest.raises(ValueError):
        SPACE.parse(text)


@pytest.mark.parametrize("value", [None, 123, (3, 0, 1, 1, 0, 4), b"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
def test_parse_non_string(value):
    with pytest.raises(ValueError):
        SPACE.parse(value)


def test_parse_wrong_input_index_message_names_token():
    with pytest.raises(ValueError, match="nor_conv_3x3~1"):
        SPACE.parse("|nor_conv_3x3~1|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")


@pytest.mark.parametrize("genotype", [(), (0,) * 5, (0,) * 7, (0, 0, 0, 0, 0, 5), (-1, 0, 0, 0, 0, 0),
                                      (0, 0, 99, 0, 0, 0)])
def test_format_rejects_bad_genotypes(genotype):
    with pytest.raises(ValueError):
        SPACE.format(genotype)
    with pytest.raises(ValueError):
        SPACE.check(genotype)
    with pytest.raises(ValueError):
        SPACE.is_connected(genotype)


# --- sample / mutate / crossover ---------------------------------------------------------------

def _assert_valid(g):
    assert isinstance(g, tuple)
    assert len(g) == 6
    assert all(type(v) is int and 0 <= v < 5 for v in g), g


def test_sample_valid_uniform_and_deterministic():
    rng = np.random.default_rng(0)
    samples = [SPACE.sample(rng) for _ in range(5000)]
    for g in samples:
        _assert_valid(g)
    counts = np.zeros((6, 5))
    for g in samples:
        for i, v in enumerate(g):
            counts[i, v] += 1
    freq = counts / len(samples)
    assert np.all(np.abs(freq - 0.2) < 0.03), freq  # uniform per gene (sd ~0.006)
    assert len(set(samples)) > 4000  # 5000 draws from 15625: ~4250 distinct expected
    assert SPACE.sample(np.random.default_rng(0)) == samples[0]
    rng_a, rng_b, rng_c = np.random.default_rng(7), np.random.default_rng(7), np.random.default_rng(8)
    seq_a = [SPACE.sample(rng_a) for _ in range(50)]
    assert seq_a == [SPACE.sample(rng_b) for _ in range(50)]
    assert seq_a != [SPACE.sample(rng_c) for _ in range(50)]


def test_mutate_p0_returns_parent():
    rng = np.random.default_rng(1)
    for _ in range(200):
        parent = SPACE.sample(rng)
        child = SPACE.mutate(list(parent), rng, 0.0)
        assert child == parent
        _assert_valid(child)


def test_mutate_p1_changes_every_gene():
    rng = np.random.default_rng(2)
    for _ in range(500):
        parent = SPACE.sample(rng)
        child = SPACE.mutate(parent, rng, 1.0)
        _assert_valid(child)
        assert all(c != p for c, p in zip(child, parent)), (parent, child)


def test_mutate_rate_and_new_values_uniform():
    rng = np.random.default_rng(3)
    changed, new_values = [], np.zeros((5, 5))
    for _ in range(4000):
        parent = SPACE.sample(rng)
        child = SPACE.mutate(parent, rng, 0.25)
        _assert_valid(child)
        changed.append(sum(c != p for c, p in zip(child, parent)))
        for c, p in zip(child, parent):
            if c != p:
                new_values[p, c] += 1
    assert abs(np.mean(changed) - 1.5) < 0.08  # 6 genes x 0.25
    # a changed gene takes each of the 4 other ops about equally often
    for p in range(5):
        row = np.delete(new_values[p], p)
        assert row.min() > 0.7 * row.mean(), new_values


def test_mutate_does_not_modify_input_and_is_deterministic():
    parent = [3, 0, 1, 2, 4, 0]
    a = SPACE.mutate(parent, np.random.default_rng(5), 0.5)
    b = SPACE.mutate(parent, np.random.default_rng(5), 0.5)
    assert parent == [3, 0, 1, 2, 4, 0]
    assert a == b
    _assert_valid(a)
    children = {SPACE.mutate(parent, np.random.default_rng(s), 0.5) for s in range(30)}
    assert len(children) > 10


def test_mutate_rejects_bad_parent():
    with pytest.raises(ValueError):
        SPACE.mutate((0, 0, 0), np.random.default_rng(0), 0.5)
    with pytest.raises(ValueError):
        SPACE.mutate((0, 0, 0, 0, 0, 9), np.random.default_rng(0), 0.5)


def test_crossover_takes_each_gene_from_a_parent():
    rng = np.random.default_rng(4)
    from_a = np.zeros(6)
    n = 2000
    for _ in range(n):
        a, b = SPACE.sample(rng), SPACE.sample(rng)
        child = SPACE.crossover(a, b, rng)
        _assert_valid(child)
        for c, x, y in zip(child, a, b):
            assert c in (x, y)
    # with parents that differ at every gene, the origin of each gene is visible
    a, b = (0, 1, 2, 3, 4, 0), (1, 2, 3, 4, 0, 1)
    for _ in range(n):
        child = SPACE.crossover(a, b, rng)
        from_a += [c == x for c, x in zip(child, a)]
        assert all(c in (x, y) for c, x, y in zip(child, a, b))
    assert np.all(np.abs(from_a / n - 0.5) < 0.05), from_a / n


def test_crossover_identical_parents_and_determinism():
    a, b = (3, 3, 3, 1, 3, 2), (0, 4, 1, 2, 0, 4)
    rng = np.random.default_rng(9)
    assert SPACE.crossover(a, a, rng) == a
    assert SPACE.crossover(list(a), np.array(b), np.random.default_rng(11)) == \
        SPACE.crossover(a, b, np.random.default_rng(11))
    children = {SPACE.crossover(a, b, np.random.default_rng(s)) for s in range(40)}
    assert len(children) > 10
    with pytest.raises(ValueError):
        SPACE.crossover(a, (0, 0), rng)


def test_whole_search_trajectory_is_reproducible():
    def run(seed):
        rng = np.random.default_rng(seed)
        pop = [SPACE.sample(rng) for _ in range(10)]
        for _ in range(20):
            pop.append(SPACE.mutate(SPACE.crossover(pop[-1], pop[-2], rng), rng, 0.3))
        return pop

    assert run(123) == run(123)
    assert run(123) != run(124)


# --- registry and torch-free import -------------------------------------------------------------

def test_get_space_and_list_spaces():
    s = get_space("nb201")
    assert isinstance(s, NB201Space) and isinstance(s, SearchSpace)
    assert s.name == "nb201"
    assert "nb201" in list_spaces()
    assert Genotype == tuple[int, ...]


def test_get_space_unknown_lists_available():
    with pytest.raises(GenasError) as exc:
        get_space("nope")
    msg = str(exc.value)
    assert "nope" in msg
    for name in list_spaces():
        assert name in msg


def test_importing_spaces_does_not_import_torch():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "import genas.spaces as gs\n"
        "s = gs.get_space('nb201')\n"
        "rng = np.random.default_rng(0)\n"
        "g = s.mutate(s.crossover(s.sample(rng), s.sample(rng), rng), rng, 0.5)\n"
        "assert s.parse(s.format(g)) == g\n"
        "s.is_connected(g); s.size()\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if bad else 'CLEAN', bad[:5])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CLEAN"), out.stdout


def test_build_methods_validate_genotype():
    with pytest.raises(ValueError):
        SPACE.build_network((0, 0, 0, 0, 0))
    with pytest.raises(ValueError):
        SPACE.build_network((0, 0, 0, 0, 0, 5))
