"""Flatness variants beyond the paper: noise scalings, perturbed parameters, depth at sigma=0, alpha auto."""
import dataclasses

import numpy as np
import pytest
import torch

from _tiny import train_tiny
from genas.workflows.scoring import scoring_context
from genas.engine.checkpoint import state_digest
from genas.errors import GenasError
from genas.proxies import ScoringConfig, ScoringContext, get_proxy
from genas.proxies.config import FLATNESS_PRESETS, scoring_config
from genas.proxies.flatness import auto_alpha, flatness_score, flatness_terms, resolve_alpha
from genas.proxies.perturb import noise_like, perturbed_levels
from genas.spaces import get_space

pytestmark = pytest.mark.usefixtures("one_thread")

SPACE = get_space("nb201")
STDS = (0.01, 0.03, 0.06)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("variants") / "run"
    train_tiny(path, epochs=2)
    return path


def make_ctx(run, **cfg):
    base = dict(val_images=96, bn_images=64, bn_batch_size=32, batch_size=48)
    return scoring_context(run, ScoringConfig(**{**base, **cfg}))


@pytest.fixture(scope="module")
def ctx(run):
    return make_ctx(run)


def genotype(seed=0):
    return SPACE.sample(np.random.default_rng(seed))


def _levels(net, **kw):
    theta = {n: p.detach().clone() for n, p in net.named_parameters()}
    out = [{n: p.detach().clone() for n, p in net.named_parameters()} for _ in perturbed_levels(net, STDS, **kw)]
    return theta, out


def test_filter_normalized_noise_has_the_requested_norm_per_filter(ctx):
    net = ctx.recalibrated(genotype())
    theta, levels = _levels(net, scaling="filter")
    checked = 0
    for name, w in theta.items():
        if w.dim() < 2 or w.norm() == 0:
            continue
        for k, std in enumerate(STDS):
            delta = (levels[k][name] - w).flatten(1).norm(dim=1)
            torch.testing.assert_close(delta, std * w.flatten(1).norm(dim=1), rtol=1e-4, atol=1e-7)
        checked += 1
    assert checked >= 3
    # a 1-D parameter is one filter: its whole perturbation has norm s_k * ||theta||
    vec = next(n for n, w in theta.items() if w.dim() == 1 and w.norm() > 0)
    assert (levels[1][vec] - theta[vec]).norm().item() == pytest.approx(STDS[1] * theta[vec].norm().item(), rel=1e-4)


def test_element_relative_noise_is_the_draw_times_the_weight_size(ctx):
    net = ctx.recalibrated(genotype())
    theta, levels = _levels(net, scaling="element")
    name = "classifier.weight"
    for k, std in enumerate(STDS):
        e = noise_like(theta[name], name, k, 0, 0)
        torch.testing.assert_close(levels[k][name], theta[name] + std * theta[name].abs() * e)


def test_weights_only_leaves_bn_affine_and_biases_bitwise_unchanged(ctx):
    net = ctx.recalibrated(genotype())
    for scaling in ("absolute", "element", "filter"):
        theta, levels = _levels(net, scaling=scaling, params="weights")
        assert any(w.dim() == 1 for w in theta.values())
        for level in levels:
            for name, w in theta.items():
                if w.dim() < 2:
                    assert torch.equal(level[name], w), name
                else:
                    assert not torch.equal(level[name], w), name
        # and everything is restored after the iteration
        for name, p in net.named_parameters():
            assert torch.equal(p, theta[name])


def test_scalings_keep_common_random_numbers_and_restore_the_net(ctx):
    net = ctx.recalibrated(genotype(1))
    before = state_digest(net.state_dict())
    a = _levels(net, scaling="filter", seed=3)[1]
    b = _levels(net, scaling="filter", seed=3)[1]
    c = _levels(net, scaling="filter", seed=4)[1]
    assert all(torch.equal(a[1][n], b[1][n]) for n in a[1])
    assert not torch.equal(a[1]["classifier.weight"], c[1]["classifier.weight"])
    assert state_digest(net.state_dict()) == before
    with pytest.raises(ValueError, match="noise scaling"):
        next(perturbed_levels(net, STDS, scaling="layer"))
    with pytest.raises(ValueError, match="noise params"):
        next(perturbed_levels(net, STDS, params="bn"))


def test_depth_at_zero_splits_the_official_depth_term():
    losses, stds = [1.2, 1.5, 2.1], [0.1, 0.3, 0.6]
    slopes, depth = flatness_terms(losses, stds)
    assert slopes == pytest.approx(0.3 / 0.2 + 0.6 / 0.3) and depth == pytest.approx(12.0)
    slopes0, depth0 = flatness_terms(losses, stds, loss0=1.0)
    assert slopes0 == pytest.approx(0.2 / 0.1 + 0.3 / 0.2 + 0.6 / 0.3) and depth0 == pytest.approx(10.0)
    # official depth |L1/s1| = first slope from (0, L0) + L0/s1 when the loss rises
    assert depth == pytest.approx(depth0 + (slopes0 - slopes))
    assert flatness_score(losses, stds, 0.5, 0.0, loss0=1.0) == pytest.approx(1 / (slopes0 + 0.5 * depth0))
    assert flatness_score([1.0, float("nan"), 2.0], stds, 1.0, loss0=0.5) == 0.0


def test_auto_alpha_balances_spreads_and_is_order_free():
    terms = [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (5.0, 31.0)]
    slopes, depths = np.array([t[0] for t in terms]), np.array([t[1] for t in terms])
    mad = lambda v: np.median(np.abs(v - np.median(v)))  # noqa: E731
    assert auto_alpha(terms) == pytest.approx(mad(slopes) / mad(depths))
    assert auto_alpha(terms[::-1]) == auto_alpha(terms)
    assert auto_alpha(terms + [(float("inf"), 1.0)]) == auto_alpha(terms)  # blown-up candidates ignored
    assert auto_alpha([(1.0, 5.0), (2.0, 5.0)]) == 1.0  # constant depth: nothing to balance
    with pytest.raises(ValueError, match="at least 2"):
        auto_alpha([(1.0, 1.0)])


def test_auto_alpha_is_deterministic_for_a_fixed_population(run):
    a = make_ctx(run, alpha="auto", alpha_auto_archs=4, stds=STDS)
    b = make_ctx(run, alpha="auto", alpha_auto_archs=4, stds=STDS)
    alpha = resolve_alpha(a)
    assert alpha > 0 and alpha == resolve_alpha(b) == resolve_alpha(a)
    res = get_proxy("flatness")(a, genotype(2))
    assert res.raw["alpha"] == alpha
    assert res.value == pytest.approx(flatness_score(res.raw["losses"], STDS, alpha))
    c = make_ctx(run, alpha="auto", alpha_auto_archs=4, stds=STDS, seed=1)
    assert resolve_alpha(c) != alpha  # another seed draws another sample and other noise


def test_proxy_with_depth_at_zero_uses_the_unperturbed_validation_loss(run):
    ctx = make_ctx(run, depth_at="zero", noise_scaling="filter", noise_params="weights", stds=STDS, alpha=0.3)
    g = genotype(3)
    res = get_proxy("flatness")(ctx, g)
    assert res.raw["loss0"] == ctx.evaluation(g)["loss"]
    assert res.value == pytest.approx(flatness_score(res.raw["losses"], STDS, 0.3, loss0=res.raw["loss0"]))


def test_config_validation_and_presets():
    with pytest.raises(GenasError, match="noise-scaling"):
        ScoringConfig(noise_scaling="layer").validate()
    with pytest.raises(GenasError, match="noise-params"):
        ScoringConfig(noise_params="bn").validate()
    with pytest.raises(GenasError, match="depth-at"):
        ScoringConfig(depth_at="one").validate()
    with pytest.raises(GenasError, match="--alpha must be"):
        ScoringConfig(alpha="lots").validate()
    assert ScoringConfig(alpha="0.5").validate().alpha == 0.5
    paper = scoring_config("paper")
    assert (paper.stds, paper.alpha, paper.noise_scaling, paper.noise_params, paper.depth_at, paper.noise_mode) == (
        (0.001, 0.003, 0.006), 1.0, "absolute", "all", "sigma1", "independent")
    official = scoring_config("official", val_images=100)
    assert official.noise_mode == "cumulative" and official.bn_mode == "official" and not official.common_noise
    assert official.val_images == 100
    assert scoring_config("paper", alpha=0.0).alpha == 0.0  # explicit options override the preset
    assert set(FLATNESS_PRESETS) >= {"paper", "official", "calibrated"}
    calibrated = scoring_config("calibrated")  # the paper's noise, alpha balanced over the population
    assert calibrated.alpha == "auto" and calibrated.stds == paper.stds and calibrated.depth_at == "sigma1"
    assert (calibrated.noise_scaling, calibrated.noise_params) == ("absolute", "all")
    with pytest.raises(GenasError, match="flatness-preset"):
        scoring_config("sharp")
    assert dataclasses.asdict(scoring_config()) == dataclasses.asdict(ScoringConfig().validate())


def test_a_search_made_before_a_scoring_setting_existed_still_resumes(tmp_path):
    import json

    from genas.options import to_dict
    from genas.workflows.search import SCORING, _check_scoring

    record = dict(metric="flatness", scoring=to_dict(ScoringConfig().validate()), supernet_run="/r")
    old = json.loads(json.dumps(record))
    del old["scoring"]["noise_scaling"], old["scoring"]["channels_last"]  # an older genas wrote fewer settings
    (tmp_path / SCORING).write_text(json.dumps(old))
    _check_scoring(tmp_path, record, resume=True)  # the missing settings ran with their defaults
    changed = dict(record, scoring=dict(record["scoring"], noise_scaling="filter"))
    with pytest.raises(GenasError, match="noise_scaling|scoring"):
        _check_scoring(tmp_path, changed, resume=True)
