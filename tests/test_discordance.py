"""The discordant-pair statistic of the flatness-vs-loss study (genas.analysis.discordance)."""
import itertools

import numpy as np
import pytest

from genas.analysis.discordance import bootstrap_ci, decision, discordant_advantage


def by_hand(a, b, t):
    right_a = right_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        sa, sb, st = np.sign(a[i] - a[j]), np.sign(b[i] - b[j]), np.sign(t[i] - t[j])
        if sa * sb < 0 and st != 0:
            right_a += sa == st
            right_b += sb == st
    n = right_a + right_b
    return (right_a - right_b) / n, n


def test_d_counts_who_is_right_on_the_discordant_pairs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = rng.integers(0, 6, 30).astype(float)  # ties in the truth are left out
        a, b = t + rng.normal(0, 2, 30), np.round(t + rng.normal(0, 2, 30))  # and ties in a proxy
        d, n = discordant_advantage(a, b, t)
        assert (d, n) == pytest.approx(by_hand(a, b, t))
    t = rng.normal(size=40)
    noisy = t + rng.normal(0, 1, 40)
    assert discordant_advantage(t, noisy, t)[0] == 1.0 and discordant_advantage(noisy, t, t)[0] == -1.0
    assert np.isnan(discordant_advantage(t, t, t)[0])  # no discordant pair


def test_bootstrap_over_architectures_and_the_decision_rule():
    rng = np.random.default_rng(1)
    t = rng.normal(size=60)
    a, b = t + rng.normal(0, 0.5, 60), t + rng.normal(0, 1.5, 60)  # a is the better proxy
    res = bootstrap_ci(a, b, t, resamples=500, seed=0)
    assert res["ci"][0] <= res["D"] <= res["ci"][1] and -1 <= res["ci"][0] and res["ci"][1] <= 1
    assert res["ci"][0] > 0 and decision(res["ci"]) == "FBS adds information beyond the loss"
    assert bootstrap_ci(a, b, t, resamples=500, seed=0) == res  # seeded
    assert decision([-0.3, -0.1]) == "the loss is better" and decision([-0.1, 0.2]) == "no detectable information"


def test_the_bootstrap_shortcut_gives_the_resampled_statistic_exactly():
    from genas.analysis.discordance import _pair_matrices, _resampled

    rng = np.random.default_rng(2)
    for _ in range(10):
        t = rng.integers(0, 8, 25).astype(float)
        a, b = t + rng.normal(0, 2, 25), np.round(t + rng.normal(0, 2, 25))
        disc, score = _pair_matrices(a, b, t)
        for _ in range(20):
            idx = rng.integers(0, 25, 25)
            got, want = _resampled(disc, score, idx), discordant_advantage(a, b, t, idx)
            assert got[1] == want[1] and (got[0] == want[0] or np.isnan(got[0]) and np.isnan(want[0]))
