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


DEMO_WINNER = "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"


def test_nb201_prune_keeps_the_class_under_both_rules_and_only_removes_ops():
    cells = list(itertools.product(range(len(NB201.ops)), repeat=NB201.num_genes))
    changed = 0
    for g in cells:
        p = NB201.prune(g)
        assert all(b in (a, 0) for a, b in zip(g, p))  # an op is kept or becomes none
        assert NB201.prune(p) == p and NB201.is_connected(p) == NB201.is_connected(g)
        assert NB201.canonical(p) == NB201.canonical(g) and NB201.canonical(p, "strict") == NB201.canonical(g, "strict")
        changed += p != g
    assert 0 < changed < len(cells)
    assert NB201.format(NB201.prune(NB201.parse(DEMO_WINNER))) == \
        "|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"  # node 2 feeds nothing
    assert DARTS.prune(DARTS.sample(np.random.default_rng(0))) is not None  # identity elsewhere


@pytest.mark.parametrize("text", [DEMO_WINNER, "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|"])
def test_pruned_network_computes_the_same_function_with_fewer_parameters(text):
    import torch

    g = NB201.parse(text)
    full, pruned = NB201.build_network(g, channels=4, cells_per_stage=1), NB201.build_network(NB201.prune(g), channels=4,
                                                                                              cells_per_stage=1)
    kept = {k: v for k, v in full.state_dict().items() if k in pruned.state_dict()}
    pruned.load_state_dict(kept)  # strict: every weight of the pruned network comes from the full one
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in full.parameters())
    full.eval(), pruned.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(full(x), pruned(x))


def test_winner_genotype_prunes_a_search_result_and_reads_old_ones():
    from genas.errors import GenasError
    from genas.spaces import winner_genotype

    result = {"space": "nb201", "best": {"genotype": DEMO_WINNER, "score": 1.0}}
    assert winner_genotype(result) == NB201.format(NB201.prune(NB201.parse(DEMO_WINNER)))
    darts = DARTS.format(DARTS.sample(np.random.default_rng(1)))
    assert winner_genotype({"space": "darts", "best": {"genotype": darts}}) == darts
    with pytest.raises(GenasError):
        winner_genotype({"space": "nb201", "best": {"genotype": "|bad|"}})


def test_winner_genotype_keeps_the_string_of_a_retraining_started_before_pruning():
    from genas.spaces import winner_genotype

    result = {"space": "nb201", "best": {"genotype": DEMO_WINNER, "score": 1.0}}
    pruned = winner_genotype(result)
    assert pruned != DEMO_WINNER  # the demo winner has a dead op, so the two cases differ
    assert winner_genotype(result, started=DEMO_WINNER) == DEMO_WINNER
    assert winner_genotype(result, started=pruned) == pruned
    assert winner_genotype(result, started="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") == pruned
