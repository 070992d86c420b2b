"""Isomorphism classes of genotypes (issue #15, first part): NB201's own rule and a stricter one,
and commutative node inputs in DARTS cells."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from genas.spaces import get_space

NB201 = get_space("nb201")
DARTS = get_space("darts")


def test_nb201_default_rule_gives_the_benchmarks_6466_classes():
    cells = list(itertools.product(range(len(NB201.ops)), repeat=NB201.num_genes))
    assert len(cells) == 15625
    assert len({NB201.canonical(g) for g in cells}) == 6466
    assert len({NB201.canonical(g, "strict") for g in cells}) == 5390


def test_nb201_rules_on_known_cells():
    skip = NB201.parse("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    alone = NB201.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert NB201.canonical(skip, "strict") != NB201.canonical(alone, "strict")  # node 3 is zero in the first
    two = NB201.parse("|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    swapped = NB201.parse("|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|skip_connect~2|")
    assert NB201.canonical(two) == NB201.canonical(swapped)  # commutative sum at node 2
    with pytest.raises(ValueError):
        NB201.canonical(two, "loose")


def test_strict_classes_refine_nothing_they_only_merge():
    """Every default class lies inside one strict class."""
    cells = list(itertools.product(range(len(NB201.ops)), repeat=NB201.num_genes))
    strict_of: dict[str, str] = {}
    for g in cells:
        d, s = NB201.canonical(g), NB201.canonical(g, "strict")
        assert strict_of.setdefault(d, s) == s


def test_darts_node_inputs_commute():
    """A Genotype string may list a node's two (op, input) pairs in either order: one class."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = DARTS.sample(rng)
        pairs = DARTS.to_pairs(g)
        flipped = {w: [p for node in range(4) for p in reversed(pairs[w][2 * node: 2 * node + 2])]
                   for w in ("normal", "reduce")}
        text = (f"Genotype(normal={flipped['normal']!r}, normal_concat=[2, 3, 4, 5], "
                f"reduce={flipped['reduce']!r}, reduce_concat=[2, 3, 4, 5])")
        assert text != DARTS.format(g)
        assert DARTS.canonical(DARTS.parse(text)) == DARTS.canonical(g)
    a, b = DARTS.sample(rng), DARTS.sample(rng)
    assert DARTS.canonical(a) != DARTS.canonical(b)
