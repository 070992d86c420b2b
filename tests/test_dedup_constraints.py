"""Isomorph-aware search and resource constraints (issue: a search that knows its space).

* Same canonical form => same function: stand-alone NB201 networks of two strings of one class,
  with the weights of every edge keyed by what that edge computes, give the same outputs; strings
  of different classes generally do not.
* Dedup: no two scored candidates share a canonical form, copies name the scored string they copy,
  budgets count distinct functions.
* Constraints: every scored candidate is inside the limits, costs are the evaluation network's
  (NB201: exactly NAS-Bench-201's own params/FLOPs table), an impossible limit is one line up front.
"""
from __future__ import annotations

import csv
import itertools
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from genas.cli import main
from genas.engine.cost import CostModel, cost_model
from genas.search import LOG, RESULT, TabularOracle, make_config, make_strategy, run_search
from genas.spaces import get_space
from genas.spaces.nb201 import NB201_EDGES, NB201_OPS

SHARED = Path(__file__).resolve().parents[2] / "shared/data/nb201"
NB201_CSV, COSTS = SHARED / "nats_tss_test_acc_200ep.csv", SHARED / "nb201_params_flops_derived.csv"
C10 = "CIFAR10TestAccuracy200Epochs"
needs_nb201 = pytest.mark.skipif(not NB201_CSV.exists(), reason=f"NB201 tables not found in {SHARED}")
ALL = list(itertools.product(range(len(NB201_OPS)), repeat=len(NB201_EDGES)))


def edge_keys(genotype):
    """What each edge computes, as an expression of the cell input: equal keys, equal values."""
    nodes, keys, e = ["x"], [], 0
    for node in range(1, 4):
        terms = []
        for src in range(node):
            op = NB201_OPS[genotype[e]]
            dead = op == "none" or nodes[src] == "0"  # an op of a zero node is zero (no BN shift)
            keys.append(None if dead else f"({nodes[src]})@{op}")
            if not dead:
                terms.append(nodes[src] if op == "skip_connect" else keys[-1])
            e += 1
        nodes.append("+".join(sorted(terms)) if terms else "0")
    return keys


def draw(p, name, gen):
    """Scaled random weights (outputs of order 1), BN scales near 1, zero shifts and biases."""
    if name.endswith("bias"):
        return torch.zeros_like(p)
    if p.dim() == 1:
        return 1 + 0.2 * torch.randn(p.shape, generator=gen)
    return torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5


def keyed_network(space, genotype):
    """A small stand-alone network whose edge weights are seeded by what the edge computes.

    BN shifts are zero (beta = 0, running mean 0), so an op applied to an all-zero node outputs
    zero, as in a BN-recalibrated ``affine=False`` supernet; with a learned shift it would add a
    constant (see the canonical-form docstring).
    """
    net = space.build_network(genotype, space.spec(channels=4, cells_per_stage=1, in_channels=1, num_classes=5))
    keys = edge_keys(genotype)
    with torch.no_grad():
        for name, p in net.named_parameters():  # stem, residual blocks, head: keyed by name
            p.copy_(draw(p, name, torch.Generator().manual_seed(zlib.crc32(name.encode()))))
        for c, cell in enumerate(m for m in net.cells if hasattr(m, "edges")):
            for e, op in cell.edges.items():
                gen = torch.Generator().manual_seed(zlib.crc32(f"{c}|{keys[int(e)]}".encode()))
                for name, p in op.named_parameters():
                    p.copy_(draw(p, name, gen))
    return net.eval()


@pytest.mark.parametrize("rule", ["default", "strict"])
def test_same_canonical_form_computes_the_same_function(rule):
    space, rng = get_space("nb201"), np.random.default_rng(0)
    classes: dict[str, list] = {}
    for g in ALL:
        classes.setdefault(space.canonical(g, rule), []).append(g)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    shared = [m for m in classes.values() if len(m) > 1]
    for i in rng.choice(len(shared), 25, replace=False):
        a, b = (shared[i][j] for j in rng.choice(len(shared[i]), 2, replace=False))
        ya, yb = keyed_network(space, a)(x), keyed_network(space, b)(x)
        assert torch.allclose(ya, yb, rtol=1e-4, atol=1e-5), (space.format(a), space.format(b))
    forms = list(classes)
    differ = 0
    for _ in range(25):
        fa, fb = rng.choice(len(forms), 2, replace=False)
        ya, yb = (keyed_network(space, classes[forms[f]][0])(x) for f in (fa, fb))
        differ += not torch.allclose(ya, yb, rtol=1e-4, atol=1e-5)
    assert differ >= 23  # different forms generally compute different functions


def same_weights(a, b):
    """Whether two strings use the same supernet weights: they differ only on edges whose op has
    no parameters or is dead (``none``, or applied to an all-zero node)."""
    ka, kb = edge_keys(a), edge_keys(b)
    free = lambda op, key: key is None or not NB201_OPS[op].startswith("nor_conv")
    return all(x == y or (free(x, p) and free(y, q)) for x, y, p, q in zip(a, b, ka, kb))


def test_strict_classes_are_one_function_on_an_affine_false_supernet():
    """Why ``auto`` dedup is strict on a supernet: with the batch's BN statistics (what recalibration
    gives), strings that NB201's rule tells apart but the strict rule does not, and that use the same
    supernet weights, give the same outputs (the demo's top-3 were such strings, with one score)."""
    space, rng = get_space("nb201"), np.random.default_rng(1)
    torch.manual_seed(0)
    net = space.build_supernet(space.spec(channels=4, cells_per_stage=1, in_channels=1, num_classes=5)).train()
    strict: dict[str, list] = {}
    for g in ALL:
        strict.setdefault(space.canonical(g, "strict"), []).append(g)
    pairs = [(a, b) for members in strict.values() for a, b in itertools.combinations(members[:8], 2)
             if space.canonical(a) != space.canonical(b) and same_weights(a, b)]
    demo = [space.parse(s) for s in ("|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|avg_pool_3x3~2|",
                                     "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|skip_connect~2|",
                                     "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_3x3~2|")]
    assert len({space.canonical(g, "strict") for g in demo}) == 1 and len({space.canonical(g) for g in demo}) == 3
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for a, b in [(demo[0], demo[1]), (demo[0], demo[2])] + [pairs[i] for i in rng.choice(len(pairs), 25, replace=False)]:
            assert torch.allclose(net(x, a), net(x, b), rtol=1e-5, atol=1e-6), (space.format(a), space.format(b))


@needs_nb201
def test_nb201_cost_model_equals_the_benchmarks_table():
    space = get_space("nb201")
    model = cost_model(space)
    rows = list(csv.DictReader(COSTS.open()))
    assert len(rows) == 15625
    for r in rows:
        cost = model(space.parse(r["arch_str"]))
        assert cost["params"] == round(float(r["params_M_cifar10"]) * 1e6)
        assert abs(cost["macs"] / 1e6 - float(r["flops_M_cifar10"])) < 1e-4
    g = space.parse(rows[123]["arch_str"])  # the additive model is the exact count
    assert CostModel(space).measure(g) == model(g)


def synthetic(genotypes):
    return [float(sum((i + 1) * (v + 1) ** 2 for i, v in enumerate(g)) % 97) for g in genotypes]


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_dedup_scores_each_function_once_and_logs_copies(tmp_path, strategy):
    space = get_space("nb201")
    extra = dict(mutations=20, crossovers=10) if strategy == "evolution" else {}
    cfg = make_config(strategy, population=40, topk=5, generations=8, seed=2, **extra)
    scored: list = []
    result = run_search(space, lambda gs: scored.extend(gs) or synthetic(gs), strategy, cfg, tmp_path / "s",
                        progress=False, cost=cost_model(space))
    rows = [json.loads(line) for line in (tmp_path / "s" / LOG).read_text().splitlines()]
    real = [r for r in rows if "copy_of" not in r]
    forms = [space.canonical(space.parse(r["genotype"])) for r in real]
    assert len(forms) == len(set(forms)) == result["evaluations"] == len(scored) == cfg.budget
    copies = [r for r in rows if "copy_of" in r]
    assert len(copies) == result["copies"] and (strategy == "random" or copies)  # evolution proposes repeats
    score_of = {r["genotype"]: r["score"] for r in real}
    for r in copies:
        rep = space.parse(r["copy_of"])
        assert space.canonical(space.parse(r["genotype"])) == space.canonical(rep) and r["score"] == score_of[r["copy_of"]]
        assert r["generation"] >= next(x["generation"] for x in real if x["genotype"] == r["copy_of"])
    model = cost_model(space)
    assert all({k: r[k] for k in ("params", "macs")} == model(space.parse(r["genotype"])) for r in rows)
    strings = sum(t["strings"] for t in result["topk"])
    assert strings >= len(result["topk"]) and result["best"] == result["topk"][0]


def test_dedup_off_scores_strings_as_the_paper():
    space = get_space("nb201")
    strat = make_strategy("evolution", space, make_config("evolution", population=40, topk=5, generations=8, seed=2,
                                                          mutations=20, crossovers=10, dedup="off"))
    while not strat.done:
        batch = strat.pending()
        strat.tell(batch, synthetic(batch))
    forms = [space.canonical(g) for g in strat.visited]
    assert len(forms) > len(set(forms)) and not strat.copies  # isomorphs were scored again


@needs_nb201
@pytest.mark.slow
def test_constrained_oracle_search_stays_inside_and_finds_the_constrained_best():
    space = get_space("nb201")
    oracle, model = TabularOracle(NB201_CSV, C10, space, canonical_rule="default"), cost_model(space)
    limit = 101306  # the 10th percentile of NB201 params: 491 functions (2,187 strings) meet it
    feasible = {g: v for g, v in oracle.scores.items() if model(g)["params"] <= limit}
    best = max(feasible.values())
    assert max(oracle.scores.values()) > best  # the constraint binds
    for seed in range(3):  # benchmarks/tabular_strategies.py --constraints measures 100 seeds
        strat = make_strategy("evolution", space, make_config("evolution", seed=seed, max_params=limit), model)
        while not strat.done:
            batch = strat.pending()
            strat.tell(batch, oracle(batch))
        assert all(model(g)["params"] <= limit for g in strat.visited)
        assert strat.best()[1] == best


def test_constraint_options_fail_in_one_line_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "s"
    table = tmp_path / "t.csv"
    table.write_text("arch_str,acc\n" + "".join(f"{get_space('nb201').format(g)},{i}\n" for i, g in enumerate(ALL)))
    base = ["search", "--oracle", str(table), "--oracle-column", "acc", "-o", str(out), "--no-progress"]
    for extra, message in ((["--max-params", "10"], "no nb201 architecture meets the resource limits"),
                           (["--min-macs", "5e9"], "no nb201 architecture meets the resource limits"),
                           (["--min-params", "2e5", "--max-params", "1e5"], "--min-params 200000 exceeds"),
                           (["--max-macs", "-1"], "--max-macs")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("genas: error: ") and message in err, err
        assert not out.exists()
    assert main(["run", "-o", str(tmp_path / "r"), "--max-params", "10"]) == 2
    assert "no nb201 architecture meets" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_constrained_oracle_cli_records_costs_and_resumes(tmp_path, capsys):
    table = tmp_path / "t.csv"
    space = get_space("nb201")
    table.write_text("arch_str,acc\n" + "".join(f"{space.format(g)},{sum(g) % 13}\n" for g in ALL))
    out = tmp_path / "s"
    args = ["search", "--oracle", str(table), "--oracle-column", "acc", "-o", str(out), "--no-progress",
            "--population", "20", "--generations", "3", "--mutations", "8", "--crossovers", "8",
            "--max-params", "3e5", "--min-macs", "2e7"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    assert rows and all(r["params"] <= 3e5 and r["macs"] >= 2e7 for r in rows)
    assert json.loads((out / RESULT).read_text())["config"]["dedup"] == "default"  # auto on a table: NB201's rule
    first = (out / RESULT).read_bytes()
    assert main(args + ["--resume"]) == 0 and (out / RESULT).read_bytes() == first
    assert main(args[:-2] + ["--min-macs", "3e7", "--resume"]) == 2
    assert "cannot resume" in capsys.readouterr().err
