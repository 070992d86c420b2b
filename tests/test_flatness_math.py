import math

import pytest

from genas.proxies import flatness_score


def test_pure_flatness_alpha_zero():
    # slopes |0.1/0.002| + |0.3/0.003| = 50 + 100
    assert flatness_score([2.0, 2.1, 2.4], [0.001, 0.003, 0.006], alpha=0.0) == pytest.approx(1 / (150 + 1e-5), rel=1e-12)


def test_depth_term_with_alpha():
    # 150 + alpha * 2.0 / 0.001
    assert flatness_score([2.0, 2.1, 2.4], [0.001, 0.003, 0.006], alpha=1.0) == pytest.approx(1 / 2150.00001, rel=1e-12)
    assert flatness_score([2.0, 2.1, 2.4], [0.001, 0.003, 0.006], alpha=0.5) == pytest.approx(1 / 1150.00001, rel=1e-12)


def test_slopes_use_absolute_values():
    # a loss that falls then rises counts both slopes positively
    assert flatness_score([1.0, 0.8, 1.1], [0.01, 0.02, 0.03], alpha=0.0, eps=0.0) == pytest.approx(1 / (20 + 30))


def test_single_std():
    assert flatness_score([0.5], [0.01], alpha=1.0) == pytest.approx(1 / (50 + 1e-5))
    assert flatness_score([0.5], [0.01], alpha=0.0) == pytest.approx(1e5)


def test_flatter_and_deeper_scores_higher():
    flat = flatness_score([1.0, 1.01, 1.02], [0.001, 0.003, 0.006])
    sharp = flatness_score([1.0, 1.2, 1.9], [0.001, 0.003, 0.006])
    deep = flatness_score([0.5, 0.51, 0.52], [0.001, 0.003, 0.006])
    assert deep > flat > sharp


def test_non_finite_loss_scores_zero():
    assert flatness_score([1.0, float("nan"), 2.0], [0.001, 0.003, 0.006]) == 0.0
    assert flatness_score([1.0, 2.0, float("inf")], [0.001, 0.003, 0.006]) == 0.0


@pytest.mark.parametrize("losses,stds,match", [
    ([1.0, 2.0], [0.001], "match"),
    ([], [], "at least one"),
    ([1.0, 2.0], [0.003, 0.001], "strictly increasing"),
    ([1.0, 2.0], [0.001, 0.001], "strictly increasing"),
    ([1.0], [0.0], "positive"),
    ([1.0], [-0.01], "positive"),
    ([1.0], [math.nan], "positive"),
])
def test_bad_inputs(losses, stds, match):
    with pytest.raises(ValueError, match=match):
        flatness_score(losses, stds)


def test_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        flatness_score([1.0], [0.1], alpha=-1)
