"""Registry-driven contracts: every registered search space, proxy and search strategy keeps the
promises the rest of genas relies on.

* spaces: ``parse(format(g)) == g``; ``sample`` / ``mutate`` / ``crossover`` give valid genotypes;
  the pure part imports without torch; ``supernet.extract(g)`` computes the supernet's function
  for ``g`` (eval mode) and its weights are the supernet's, named by ``supernet_param_name``;
* strategies: run torch-free on a pure evaluator; a search resumed after an interruption equals
  an uninterrupted one (pure evaluator on every space, and a tiny supernet);
* proxies: each gives a finite score on a tiny context (synthetic data, a supernet trained for one
  epoch), or, where the space cannot serve it, a one-line GenasError.

The helpers ``check_*`` are reused by tests of a user's own space (tests/test_custom_space.py).
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _tiny import tiny_config
from genas.errors import GenasError
from genas.proxies.registry import PROXIES, needs
from genas.search import LOG, RESULT, make_config, run_search
from genas.search.driver import STRATEGIES
from genas.spaces import SPACES, NetworkSpec, get_space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE_NAMES = SPACES.names()
PROXY_NAMES = PROXIES.names()
STRATEGY_NAMES = sorted(STRATEGIES)
# the smallest networks of each built-in space; a space added later is tried at the generic spec
TINY_SPECS = {"nb201": dict(channels=4, cells_per_stage=1), "darts": dict(channels=4, layers=3)}


def tiny_spec(space_name: str, **fields) -> NetworkSpec:
    return NetworkSpec(**{"channels": 4, "cells_per_stage": 1, "layers": 3, **TINY_SPECS.get(space_name, {}),
                          **fields})


# --- helpers (also used for a user's own space) ----------------------------------------------------

def check_genotype_contract(space, n: int = 25, seed: int = 0) -> None:
    """Round trip, and valid results of sample / mutate / crossover / repair."""
    rng = np.random.default_rng(seed)
    samples = [space.sample(rng) for _ in range(n)]
    for g in samples + list(space.published().values()):
        assert isinstance(g, tuple) and len(g) == space.num_genes, g
        text = space.format(g)
        assert isinstance(text, str) and space.parse(text) == g, (g, text)
        assert space.is_valid(g) and space.check(g) == g
        assert isinstance(space.is_connected(g), bool)
    for a, b in zip(samples, samples[1:]):
        for child in (space.mutate(a, rng, 0.5), space.mutate(a, rng, 1.0), space.crossover(a, b, rng)):
            assert isinstance(child, tuple) and space.is_valid(child) and space.parse(space.format(child)) == child
    changed = space.mutate(samples[0], rng, 1.0)
    assert changed != samples[0]  # every gene selected: a real change
    assert space.size() >= len(set(samples))
    with pytest.raises(ValueError):
        space.parse("certainly not a genotype")


def _scramble_bn(model, seed: int = 0) -> None:
    """Non-trivial BN running statistics and affine parameters, so eval-mode BN matters."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(m.bias.shape, generator=gen) - 0.5)


def check_extract_matches_supernet(space, spec: NetworkSpec, n: int = 3, image_size: int = 16) -> None:
    """``extract(g)`` computes ``supernet(x, g)`` (eval mode, within 1e-5) with the supernet's weights."""
    import torch

    from genas.spaces import Supernet

    torch.manual_seed(0)
    supernet = space.build_supernet(spec)
    assert isinstance(supernet, Supernet) and supernet.spec.num_classes == spec.num_classes
    _scramble_bn(supernet)
    supernet.eval()
    x = torch.randn(4, spec.in_channels, image_size, image_size, generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(2)
    full = supernet.state_dict()
    for _ in range(n):
        g = space.sample(rng)
        net = supernet.extract(g).eval()
        assert hasattr(net, "drop_path_prob")
        with torch.no_grad():
            want = supernet(x, g)
            got = net(x)
            logits, _aux = net(x, return_aux=True)
        assert got.shape == want.shape == (4, spec.num_classes)
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (space.format(g), (got - want).abs().max())
        assert torch.equal(logits, got)
        sub = supernet.subnet_state_dict(g)
        assert set(sub) == set(net.state_dict())
        for name, value in net.state_dict().items():
            assert torch.equal(value, full[supernet.supernet_param_name(name, g)]), name
        stand_alone = space.build_network(g, spec).train()
        assert stand_alone.drop_path_prob == 0.0 or space.has_drop_path
        logits, aux = stand_alone(x, return_aux=True)
        assert logits.shape == (4, spec.num_classes) and (aux is None or aux.shape == logits.shape)


# --- spaces ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SPACE_NAMES)
def test_genotype_contract(name):
    check_genotype_contract(get_space(name))


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_extract_computes_the_supernet_function(name):
    check_extract_matches_supernet(get_space(name), tiny_spec(name, num_classes=5, in_channels=1))


PURE = """
import json, sys
from pathlib import Path
import genas, genas.search, genas.spaces, genas.registry, genas.run_folder, genas.io, genas.options
from genas.spaces import get_space
from genas.search import make_config, run_search
space = get_space(sys.argv[1])
__import__(type(space).__module__)
out = {}
for strategy in json.loads(sys.argv[2]):
    cfg = make_config(strategy, population=4, topk=2, generations=2, seed=0,
                      **(dict(mutations=2, crossovers=1) if strategy == "evolution" else {}))
    res = run_search(space, lambda gs: [float(sum(g)) for g in gs], strategy, cfg, Path(sys.argv[3]) / strategy,
                     progress=False)
    out[strategy] = res["evaluations"]
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))[:5]
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", SPACE_NAMES)
def test_pure_space_and_strategies_need_no_torch(name, tmp_path):
    res = subprocess.run([sys.executable, "-c", PURE, name, json.dumps(STRATEGY_NAMES), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout) == {s: 8 for s in STRATEGY_NAMES}


# --- strategies: interrupted + resumed == uninterrupted ---------------------------------------------

class Interrupted(Exception):
    pass


def pure_score(space, g) -> float:
    return int.from_bytes(hashlib.sha256(space.format(g).encode()).digest()[:6], "big") / 2.0 ** 48


def _search_cfg(strategy: str, **extra):
    evo = dict(mutations=3, crossovers=2) if strategy == "evolution" else {}
    return make_config(strategy, population=6, topk=3, generations=4, seed=3, **evo, **extra)


def _log_without_times(folder: Path) -> list[dict]:
    """The candidate log without its wall times (of the driver and of the proxy's raw record)."""
    rows = [json.loads(line) for line in (folder / LOG).read_text().splitlines()]
    for r in rows:
        if isinstance(r.get("raw"), dict):
            r["raw"].pop("seconds", None)
    return [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in rows]


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_resumed_search_equals_uninterrupted(name, strategy, tmp_path):
    space = get_space(name)

    def evaluate(gs):
        return [dict(score=pure_score(space, g), extra=len(g)) for g in gs]

    whole = run_search(space, evaluate, strategy, _search_cfg(strategy), tmp_path / "whole", progress=False)
    calls = []

    def dies_in_generation_three(gs):
        calls.append(len(gs))
        if len(calls) == 3:
            raise Interrupted
        return evaluate(gs)

    with pytest.raises(Interrupted):
        run_search(space, dies_in_generation_three, strategy, _search_cfg(strategy), tmp_path / "cut", progress=False)
    assert not (tmp_path / "cut" / RESULT).exists()
    resumed = run_search(space, evaluate, strategy, _search_cfg(strategy), tmp_path / "cut", resume=True,
                         progress=False)
    assert resumed == whole
    assert (tmp_path / "cut" / RESULT).read_bytes() == (tmp_path / "whole" / RESULT).read_bytes()
    assert _log_without_times(tmp_path / "cut") == _log_without_times(tmp_path / "whole")


# --- proxies on a tiny supernet ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """One finished one-epoch supernet run per space, on the synthetic data."""
    from genas.supernet.train import train_supernet

    runs = {}
    for name in SPACE_NAMES:
        run = tmp_path_factory.mktemp(f"contracts-{name}") / "run"
        spec = TINY_SPECS.get(name, {})
        train_supernet(tiny_config(space=name, epochs=1, max_train_images=96, val_images=32, **spec), run,
                       device="cpu", progress=False)
        runs[name] = run
    return runs


SCORING = dict(val_images=48, bn_images=32, bn_batch_size=32, batch_size=48, alpha_auto_archs=3)


@pytest.fixture(scope="module")
def contexts(tiny_runs):
    from genas.proxies import ScoringConfig
    from genas.workflows.scoring import scoring_context

    return {name: scoring_context(run, ScoringConfig(**SCORING)) for name, run in tiny_runs.items()}


@pytest.mark.parametrize("proxy", PROXY_NAMES)
@pytest.mark.parametrize("name", SPACE_NAMES)
def test_every_proxy_scores_finite_or_refuses_in_one_line(name, proxy, contexts):
    from genas.proxies import make_evaluator

    ctx = contexts[name]
    if "path_vector" in needs(proxy) and not hasattr(ctx.supernet, "path_vector"):
        with pytest.raises(GenasError) as exc:
            make_evaluator(ctx, proxy)
        assert "\n" not in str(exc.value) and proxy in str(exc.value)
        return
    evaluate = make_evaluator(ctx, proxy)
    rng = np.random.default_rng(5)
    genotypes = [ctx.space.sample(rng) for _ in range(2)]
    for rec in evaluate(genotypes):
        assert isinstance(rec["score"], float) and math.isfinite(rec["score"]), (proxy, rec)


def test_supernet_search_resumed_after_interruption_equals_uninterrupted(tiny_runs, monkeypatch, tmp_path):
    import genas

    run = tiny_runs["nb201"]
    opts = dict(population=4, topk=2, generations=3, mutations=2, crossovers=1, device="cpu", **SCORING)
    whole = genas.search_run(run, "flatness", seed=1, name="whole", **opts)
    real = PROXIES.get("flatness")
    calls = []

    def dies(ctx, genotype):
        calls.append(genotype)
        if len(calls) == 6:  # inside the second generation
            raise Interrupted
        return real(ctx, genotype)

    monkeypatch.setitem(PROXIES._items, "flatness", dies)
    with pytest.raises(Interrupted):
        genas.search_run(run, "flatness", seed=1, name="cut", **opts)
    monkeypatch.setitem(PROXIES._items, "flatness", real)
    resumed = genas.search_run(run, "flatness", seed=1, name="cut", resume=True, **opts)
    paths = ("folder", "report", "report_html")
    assert {k: v for k, v in resumed.items() if k not in paths} == {k: v for k, v in whole.items() if k not in paths}
    assert Path(whole["report_html"]).is_file() and Path(whole["report"]).is_file()  # as `genas search` writes
    assert _log_without_times(Path(resumed["folder"])) == _log_without_times(Path(whole["folder"]))
    with pytest.raises(GenasError, match="resume"):  # a finished search is not silently redone
        genas.search_run(run, "flatness", seed=1, name="cut", **opts)
