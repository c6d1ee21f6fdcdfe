"""Bounded intervals: Wilson and Newcombe's method 10 reproduce the published worked examples, accuracies stay in
[0, 1] and differences in [-1, 1] at 0% and 100%, away from the bounds they are the contrast's t interval, and the
non-inferiority test decides with the bound it reports."""

import math

import numpy as np
import pytest
from scipy import stats

from helmjax.analysis import bounded, contrasts, noninferiority
from helmjax.analysis.contrasts import Estimate, Group

Z95 = float(stats.norm.ppf(0.975))


def _group(acc, noise=0.0, test_size=2000, rng=None, resamples=400):
    acc = np.asarray(acc, float)
    rng = rng or np.random.default_rng(0)
    replicates = acc + rng.normal(0, noise, (resamples, len(acc))) if noise else np.tile(acc, (resamples, 1))
    return Group(seeds=tuple(range(len(acc))), acc=acc, replicates=replicates, test_size=test_size)


@pytest.mark.parametrize("k, n, expected", [
    # R. G. Newcombe (1998), Statistics in Medicine 17:857-872, worked examples, method 3 (Wilson score).
    (81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718)),
    # 0/10 and 10/10: the single-proportion limits inside examples (e), (f), (h) of Newcombe's Table II below.
    (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0))])
def test_wilson_reproduces_published_limits(k, n, expected):
    low, high = bounded.wilson(k, n, Z95)
    assert (round(low, 4), round(high, 4)) == expected


@pytest.mark.parametrize("counts, expected", [
    # R. G. Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10, 95% limits for p1 - p2.
    ((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)), ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)), ((0, 10, 0, 20), (-0.1611, 0.2775)), ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0)), ((10, 10, 0, 10), (0.6075, 1.0))])
def test_newcombe_method_10_reproduces_table_ii(counts, expected):
    low, high = bounded.newcombe(*counts, Z95)
    assert (round(low, 4), round(high, 4)) == expected


def test_intervals_stay_inside_their_range_at_0_and_100_percent():
    assert bounded.wilson(2000, 2000, Z95)[1] == 1.0 and bounded.wilson(0, 2000, Z95)[0] == 0.0
    for se in (1e-4, 0.01, 0.5, 5.0):  # from tight to absurdly wide: never outside [0, 1], the estimate inside
        top, bottom, high_up = (bounded.Accuracy(_group([p]), Estimate(p, se, 2.0, True), seeds_covered=True)
                                for p in (1.0, 0.0, 0.98))
        low, high = top.interval(0.95)
        assert 0.0 <= low < high == 1.0
        low, high = bottom.interval(0.95)
        assert low == 0.0 < high <= 1.0
        low, high = high_up.interval(0.99)
        assert 0.0 <= low <= 0.98 <= high <= 1.0
    # 2000/2000 against 0/2000, each with wide limits: the difference cannot pass 1 (or -1 the other way round).
    assert bounded.mover(1.0, (0.3, 1.0), 0.0, (0.0, 0.7)) == (pytest.approx(1.0 - 0.7 * math.sqrt(2.0)), 1.0)
    # At correlation -1 the square-and-add reaches its widest, (low1 - high2, high1 - low2), and no further.
    assert bounded.mover(0.0, (0.0, 0.7), 1.0, (0.3, 1.0), correlation=-1.0) == (-1.0, pytest.approx(0.4))


def test_an_accuracy_is_wilson_at_the_examples_its_standard_error_is_worth():
    # One run, test-example noise only: Wilson of k right of n.
    lone = bounded.accuracy(_group([0.8], noise=0.009))
    assert not lone.seeds_covered and lone.interval(0.95) == bounded.wilson(1600, 2000, Z95)
    # A mean over seeds: Wilson at n_eff = p(1 - p) / se² with the t quantile; at 80% that is the t interval.
    a, b = _group([0.80, 0.81, 0.805]), _group([0.70, 0.72, 0.71])
    contrasts.share_pooled_variance([a, b])
    mean, plain = bounded.accuracy(a), contrasts.contrast([(1.0, a)])
    n_eff = a.binomial_scale / plain.se ** 2
    t = stats.t.ppf(0.975, plain.df)
    assert mean.effective_n == pytest.approx(n_eff) and mean.interval(0.95) == bounded.wilson(0.805 * n_eff, n_eff, t)
    width = plain.interval(0.95)[1] - plain.interval(0.95)[0]
    assert np.allclose(mean.interval(0.95), plain.interval(0.95), atol=0.03 * width)


def test_a_mean_at_100_percent_over_seeds_ends_at_100_percent():
    """Three seeds at 2000/2000 borrow the spread of a noisy level: the symmetric t interval passed 100%."""
    top, low = _group([1.0, 1.0, 1.0]), _group([0.55, 0.62, 0.60])
    contrasts.share_pooled_variance([top, low])
    assert contrasts.contrast([(1.0, top)]).interval(0.95)[1] > 1.0  # the old interval
    lower, upper = bounded.accuracy(top).interval(0.95)
    assert upper == 1.0 and 0.0 < lower < 1.0
    # A difference of two such means, and of the top against the noisy level, stays inside [-1, 1].
    for first, second in ((top, top), (top, low), (low, top)):
        d = bounded.difference(first, second)
        a, b = d.interval(0.95)
        assert -1.0 <= a <= d.lower(0.95) <= d.value <= d.upper(0.95) <= b <= 1.0


def test_away_from_the_bounds_the_difference_is_the_contrasts_t_interval():
    # Symmetric limits and the correlation the variances imply: square-and-add is the paired t interval exactly.
    se1, se2, cov, t = 0.004, 0.005, 0.6 * 0.004 * 0.005, 2.1
    se = math.sqrt(se1 ** 2 + se2 ** 2 - 2 * cov)
    r = cov / (se1 * se2)
    low, high = bounded.mover(0.80, (0.80 - t * se1, 0.80 + t * se1), 0.78, (0.78 - t * se2, 0.78 + t * se2), r)
    assert low == pytest.approx(0.02 - t * se) and high == pytest.approx(0.02 + t * se)
    # On groups at 80% with seed spread and shared example noise, the bounded interval and bound differ from the
    # contrast's by a small part of their width (the logit scale's slight asymmetry, half an example of shift).
    rng = np.random.default_rng(3)
    shared = rng.normal(0, 0.004, (400, 1))
    a = Group(seeds=(0, 1, 2), acc=np.array([0.80, 0.81, 0.805]), test_size=2000,
              replicates=np.array([0.80, 0.81, 0.805]) + shared + rng.normal(0, 0.002, (400, 3)))
    b = Group(seeds=(0, 1, 2), acc=np.array([0.79, 0.80, 0.785]), test_size=2000,
              replicates=np.array([0.79, 0.80, 0.785]) + shared + rng.normal(0, 0.002, (400, 3)))
    contrasts.share_pooled_variance([a, b])
    estimate, d = contrasts.contrast([(1.0, a), (-1.0, b)]), bounded.difference(a, b)
    assert d.value == estimate.value and d.correlation > 0.3  # paired over the shared examples
    width = estimate.interval(0.95)[1] - estimate.interval(0.95)[0]
    assert np.allclose(d.interval(0.95), estimate.interval(0.95), atol=0.02 * width)
    assert d.lower(0.95) == pytest.approx(estimate.lower(0.95), abs=0.02 * width)
    # One seed each, test-example noise only: Wilson limits, the examples' pairing as the correlation.
    lone_a = Group(seeds=(0,), acc=np.array([0.80]), test_size=2000,
                   replicates=0.80 + shared + rng.normal(0, 0.006, (400, 1)))
    lone_b = Group(seeds=(0,), acc=np.array([0.79]), test_size=2000,
                   replicates=0.79 + shared + rng.normal(0, 0.006, (400, 1)))
    lone, plain = bounded.difference(lone_a, lone_b), contrasts.contrast([(1.0, lone_a), (-1.0, lone_b)])
    assert not lone.seeds_covered and 0.0 < lone.correlation < 1.0
    width = plain.interval(0.95)[1] - plain.interval(0.95)[0]
    assert np.allclose(lone.interval(0.95), plain.interval(0.95), atol=0.05 * width)


def test_non_inferiority_decides_with_the_bounded_bound_it_reports():
    """Two levels at 100% (2000/2000 every seed): the symmetric bound passes a 0.2-point margin, the bounded one,
    wider below 100% on the logit scale, does not; q* follows the bound the test records."""
    reference, level, noisy = _group([1.0, 1.0, 1.0]), _group([1.0, 1.0, 1.0]), _group([0.55, 0.62, 0.60])
    contrasts.share_pooled_variance([reference, level, noisy])
    margin = 0.002
    assert contrasts.contrast([(1.0, level), (-1.0, reference)]).lower(0.95) > -margin
    d = bounded.difference(level, reference)
    q_star, [test] = noninferiority.fixed_sequence([20], {20: d}, margin, 0.95)
    assert test.lower_bound == d.lower(0.95) < -margin and not test.passed and q_star is None
    assert test.ci == d.interval(0.95) and test.ci[1] <= 1.0
    q_star, [test] = noninferiority.fixed_sequence([20], {20: d}, 0.01, 0.95)
    assert test.passed and q_star == 20 and test.lower_bound > -0.01


def test_a_level_is_scaled_at_the_null_boundary_so_a_lucky_run_does_not_narrow_its_interval():
    """The demo's shape: one run per level, three at raw. A level whose one run scored 2000/2000 takes p(1 - p) at
    raw - δ (98.7%), not at its own 100%: its seed variance and the difference's interval are the wider ones."""
    reference, lucky = _group([0.997, 0.998, 0.996]), _group([1.0])
    contrasts.share_pooled_variance([reference, lucky])
    margin = 0.01
    at_boundary = bounded.difference(lucky, reference, margin=margin)
    observed = bounded.difference(lucky, reference)
    null = reference.mean - margin
    assert at_boundary.first.group.seed_scale == pytest.approx(null * (1 - null))
    assert lucky.seed_scale == lucky.binomial_scale < 1e-3 < null * (1 - null)  # the group itself is not changed
    assert at_boundary.estimate.se > 3 * observed.estimate.se
    # The Wilson limits of the square-and-add already take p(1 - p) at the limit (a score interval), so with no
    # correlation left to fit the bound is the same: the rule acts through the contrast's se, df and correlation.
    assert at_boundary.lower(0.95) <= observed.lower(0.95)
    # A level observed below the boundary keeps its own (larger) p(1 - p): the rule never narrows an interval.
    low = _group([0.95])
    low.pooled = reference.pooled
    d = bounded.difference(low, reference, margin=margin)
    assert d.first.group.seed_scale == pytest.approx(0.95 * 0.05)


def test_runs_that_all_score_100_percent_never_give_a_zero_width_interval():
    """The demo with the best-epoch tie rule: all three raw runs and a level's run at 2000/2000 (no spread at all).
    The pooled dispersion is floored at 1/(R n) for R pooled runs of n examples, so the level's seed variance at the
    null boundary is p(1 - p)/(R n) and the difference and accuracy intervals have width."""
    reference, level = _group([1.0, 1.0, 1.0]), _group([1.0])
    pooled = contrasts.share_pooled_variance([reference, level])
    assert pooled.seed_dispersion == 0.0 and pooled.floor == pytest.approx(1 / (3 * 2000))
    d = bounded.difference(level, reference, margin=0.01)
    null = 1.0 - 0.01
    assert d.first.group.pooled_seed_var() == pytest.approx(null * (1 - null) / 6000)
    low, high = d.interval(0.95)
    assert low < -0.001 and high > 0.0 and d.lower(0.95) < -0.001
    accuracy_low, accuracy_high = bounded.accuracy(reference).interval(0.95)
    assert accuracy_low < 1.0 == accuracy_high
    # Without the floor (as before) the interval collapses to a point.
    for group in (reference, level):
        group.pooled = contrasts.Pooled(0.0, pooled.df, 0.0)
    assert bounded.difference(level, reference, margin=0.01).interval(0.95) == (0.0, 0.0)
