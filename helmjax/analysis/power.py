"""Power of the non-inferiority test before anything is trained: how small a margin δ a sweep's design can show.

The analysis (`contrasts`, `bounded`, `noninferiority`) passes a level when the one-sided lower bound of
D = acc(level) - acc(reference) at `confidence` is above -δ. This module predicts how often that happens for a
level whose true accuracy is `drop` below the reference's, from the design (S_L seeds per level, S_R at the
reference, the arch's levels, n test examples) and the noise, and inverts it for the smallest δ, the seeds or the
test examples that give 80% power.

Noise in the model, as the variance of one run's test accuracy over training seeds at the reference's accuracy p
(`Noise.run_var`, what a level's seeds spread by and the analysis pools):

    σ² = σ_train² + κ p(1 - p) / n

- training noise σ_train: the spread of a run's accuracy on all the examples there could be;
- the run's own luck on the n examples it is scored on, κ p(1 - p) / n: κ = 1 when runs' errors are independent
  across examples (the most it can be, by Jensen), below 1 when runs agree on which examples are hard.
Both scale with p(1 - p) to a level's accuracy, as the analysis' quasi-binomial pooling assumes. D is normal with
mean -drop and variance σ² (c/S_L + 1/S_R), c = p_L(1 - p_L) / p(1 - p).

The bound, as the analysis computes it: per group the seeds' sum of squares over σ² is chi-square with S - 1 df
(Q_L at the level, Q_R at the reference, Q_X over the arch's other levels); the pooled estimate is
σ² (Q_L + Q_R + Q_X) / ν, ν = levels (S_L - 1) + S_R - 1; a group with 2+ seeds whose own variance is larger uses
its own (`Group.seed_variance`); the t quantile has the Welch-Satterthwaite df over the estimates used; the bound
is the square-and-add of the two accuracies' Wilson limits (`bounded.Difference.lower`; each accuracy's own interval
also holds the test set as a sample, (1 - κ) p(1 - p) / n, which the paired difference cancels). The seed means are
independent of the variance estimates, so

    power = E_Q[ Φ((δ - drop - offset(Q)) / sd(D)) ],   offset = D - lower bound,

integrated on a grid of equal-probability nodes of each chi-square. Where every variance comes from the pooled
estimate and the Wilson limits are the t limits (far from 0% and 100%), this is the noncentral t power,
`noncentral_t_power`: P(t'(ν, (δ - drop) / sd(D)) > t_{ν, confidence}). With one seed everywhere the analysis is
exploratory: its interval is the example bootstrap (each run's own luck, normal quantile) and leaves σ_train out.

Left out (small for a level that loses little, the planner's question): the test set as a sample of all examples,
which every level shares, so the paired difference nearly cancels it (the analysis adds the part it measures; the
planner takes it as 0); the Wilson skew's dependence on the observed rather than the expected accuracies; seeds
paired across levels (the analysis does not pair them either); failed runs and outlying reference runs. The
planner's power is per level; q* reaches a level only when every less compressed one passes too.
"""

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np
from scipy import optimize, stats

TARGET_POWER = 0.8
NODES = 40  # equal-probability nodes per chi-square variable of the integration grid
MAX_SEEDS = 64  # seeds per level searched for `seeds_needed`
MAX_TEST = 10 ** 8  # test examples searched for `examples_needed`


@dataclasses.dataclass(frozen=True)
class Noise:
    """Seed noise of one run at the reference's accuracy (fractions, not points)."""
    accuracy: float  # expected accuracy of the reference (and of a level that loses nothing)
    train_sd: float  # sd over training seeds of a run's accuracy on all examples (an infinite test set)
    example_share: float = 1.0  # κ: a run's own luck on n test examples is κ p(1 - p) / n

    def own_var(self, num_test: int, accuracy: Optional[float] = None) -> float:
        """The variance of one run's test accuracy from its own luck on the n examples it is scored on."""
        p = self.accuracy if accuracy is None else accuracy
        return self.example_share * binomial_scale(p, num_test) / num_test

    def run_var(self, num_test: int) -> float:
        """The variance of one run's test accuracy over training seeds, on one test set of `num_test` examples:
        what the spread of a level's seeds shows and the analysis pools."""
        return self.train_sd ** 2 + self.own_var(num_test)


@dataclasses.dataclass(frozen=True)
class Design:
    """What the analysis of one arch sees: seeds per compressed level and at the reference, compressed levels
    (the seed spread is pooled over them and the reference), test examples and the confidence of the bound."""
    level_seeds: int
    reference_seeds: int
    levels: int
    num_test: int
    confidence: float

    @property
    def pooled_df(self) -> int:
        return self.levels * (self.level_seeds - 1) + self.reference_seeds - 1

    @property
    def seeds_covered(self) -> bool:
        """Training noise is part of the interval (some group has 2+ seeds); else the analysis is exploratory."""
        return self.pooled_df > 0


def binomial_scale(p: float, num_test: int) -> float:
    """p(1 - p), p kept half an example from 0 and 1 (as `contrasts.Group.binomial_scale`)."""
    p = min(max(p, 0.5 / num_test), 1.0 - 0.5 / num_test)
    return p * (1.0 - p)


def _level_scale(design: Design, noise: Noise, drop: float) -> float:
    """c: how much more a run at the level varies than one at the reference, p_L(1 - p_L) / p(1 - p)."""
    return binomial_scale(noise.accuracy - drop, design.num_test) / binomial_scale(noise.accuracy, design.num_test)


def difference_sd(design: Design, noise: Noise, drop: float = 0.0) -> float:
    """The true sd of D = acc(level) - acc(reference), the level `drop` below the reference."""
    run_var = noise.run_var(design.num_test)
    return math.sqrt(run_var * (_level_scale(design, noise, drop) / design.level_seeds + 1.0 / design.reference_seeds))


def _chi2_nodes(df: int) -> Tuple[np.ndarray, np.ndarray]:
    if df <= 0:
        return np.zeros(1), np.ones(1)
    return stats.chi2.ppf((np.arange(NODES) + 0.5) / NODES, df), np.full(NODES, 1.0 / NODES)


def _boundary_scale(design: Design, noise: Noise, drop: float, margin: Optional[float]) -> float:
    """The analysis' scale of the level's seed variance, p(1 - p) at the null boundary p - δ where that is larger
    than at the level's accuracy (`contrasts.Group.seed_scale`), relative to the reference's."""
    if margin is None:
        return _level_scale(design, noise, drop)
    at_level = binomial_scale(noise.accuracy - drop, design.num_test)
    at_boundary = binomial_scale(noise.accuracy - margin, design.num_test)
    return max(at_level, at_boundary) / binomial_scale(noise.accuracy, design.num_test)


def bound_offsets(design: Design, noise: Noise, drop: float = 0.0,
                  margin: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(offsets, weights): the distribution of how far the analysis' lower bound lies below D, over the variance
    estimates the design's seeds give.

    Per group the seeds' sum of squares over the dispersion is chi-square with S - 1 df: Q_L at the level, Q_R
    at the reference, Q_X over the other levels; the pooled dispersion estimate is φ (Q_L + Q_R + Q_X) / ν. A
    group with 2+ seeds whose own variance is larger uses its own (df S - 1), as `Group.seed_variance` does. The
    bound is `bounded.Difference.lower`: the square-and-add of the two accuracies' Wilson limits at the t quantile
    of the Welch df (each accuracy's interval also holds the test set as a sample, (1 - κ) p(1 - p) / n, which
    the pairing cancels in D), at the expected accuracies. With `margin`, the level's seed variance in the
    contrast (D's standard error, its df) is scaled at the null boundary where that is larger, as the analysis
    does; its Wilson interval, a score interval, keeps its own accuracy's p(1 - p) (`bounded.Accuracy`); and the
    pooled dispersion is at least 1/(R n) for the R runs pooled (`contrasts.Pooled.floor`)."""
    p_ref, p_level, n = noise.accuracy, noise.accuracy - drop, design.num_test
    level_scale = _level_scale(design, noise, drop)
    contrast_scale = _boundary_scale(design, noise, drop, margin)
    s_l, s_r = design.level_seeds, design.reference_seeds
    if design.seeds_covered:
        run_var = noise.run_var(n)
        df_l, df_r = s_l - 1, s_r - 1
        df_x = design.pooled_df - df_l - df_r
        (q_l, w_l), (q_r, w_r), (q_x, w_x) = _chi2_nodes(df_l), _chi2_nodes(df_r), _chi2_nodes(df_x)
        weights = np.einsum("i,j,k->ijk", w_l, w_r, w_x).ravel()
        q_l, q_r, q_x = (a.ravel() for a in np.meshgrid(q_l, q_r, q_x, indexing="ij"))
        nu = float(design.pooled_df)
        pooled = (q_l + q_r + q_x) / nu  # the pooled estimate over its truth
        if margin is not None:  # the floor, in units of the true dispersion run_var / p(1 - p)
            runs = (design.levels * s_l if s_l > 1 else 0) + (s_r if s_r > 1 else 0)
            dispersion = run_var / binomial_scale(p_ref, n)
            pooled = np.maximum(pooled, 1.0 / (runs * n) / dispersion) if runs else pooled
        own_l = q_l / df_l if df_l else np.zeros_like(q_l)
        own_r = q_r / df_r if df_r else np.zeros_like(q_r)
        # The level's own spread is as it is; the pooled estimate comes scaled to the boundary: it wins the max
        # rule more often (more df), and the level's Wilson interval takes p(1 - p) / seed scale of the variance
        # used (`bounded.Accuracy.effective_n`).
        own_scaled_l, pooled_scaled_l = own_l * level_scale, pooled * contrast_scale
        use_own_l, use_own_r = own_scaled_l > pooled_scaled_l * (1 + 1e-9), own_r > pooled * (1 + 1e-9)
        v_l = run_var / s_l * np.where(use_own_l, own_scaled_l, pooled_scaled_l)  # D's standard error and df
        wilson_l = v_l * level_scale / contrast_scale  # the level's own Wilson interval
        v_r = run_var / s_r * np.where(use_own_r, own_r, pooled)
        # Welch-Satterthwaite over the estimates used: terms from the pooled one share its df.
        v_pool = np.where(use_own_l, 0.0, v_l) + np.where(use_own_r, 0.0, v_r)
        denominator = v_pool ** 2 / nu
        if df_l:
            denominator = denominator + np.where(use_own_l, v_l, 0.0) ** 2 / df_l
        if df_r:
            denominator = denominator + np.where(use_own_r, v_r, 0.0) ** 2 / df_r
        critical = stats.t.ppf(design.confidence, (v_l + v_r) ** 2 / denominator)
    else:
        # One seed everywhere: the analysis' interval is the example bootstrap of the paired difference, which
        # holds each run's own luck on the examples and no training noise (normal quantile).
        weights = np.ones(1)
        v_l = np.array([noise.own_var(n, p_level) / s_l])
        wilson_l = v_l
        v_r = np.array([noise.own_var(n, p_ref) / s_r])
        critical = np.array([stats.norm.ppf(design.confidence)])
    test_set = lambda p: (1.0 - noise.example_share) * binomial_scale(p, n) / n
    return _mover_offset(p_level, wilson_l + test_set(p_level), p_ref, v_r + test_set(p_ref), v_l + v_r,
                         critical, n), weights


def _wilson_limits(p: float, variance: np.ndarray, critical: np.ndarray, num_test: int
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """`bounded.wilson` of an accuracy p with the given variance (at n_eff = p(1 - p) / variance trials, as
    `bounded.Accuracy.effective_n`), vectorised over variance and critical value."""
    trials = binomial_scale(p, num_test) / variance
    z2 = critical * critical
    centre = (p * trials + z2 / 2.0) / (trials + z2)
    half = critical / (trials + z2) * np.sqrt(np.maximum(p * (1.0 - p) * trials, 0.0) + z2 / 4.0)
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def _mover_offset(first: float, first_var, second: float, second_var, difference_var, critical,
                  num_test: int) -> np.ndarray:
    """D - `bounded.Difference.lower`: the square-and-add (`bounded.mover`) of the two Wilson intervals, with the
    correlation that gives the difference's own variance (`bounded.difference`), vectorised."""
    low1, _ = _wilson_limits(first, first_var, critical, num_test)
    _, high2 = _wilson_limits(second, second_var, critical, num_test)
    a, b = first - low1, high2 - second
    r = np.clip((first_var + second_var - difference_var) / (2.0 * np.sqrt(first_var * second_var)), -1.0, 1.0)
    return np.minimum(np.sqrt(np.maximum(a * a + b * b - 2.0 * r * a * b, 0.0)), a + b)


def power(design: Design, noise: Noise, margin: float, drop: float = 0.0) -> float:
    """P(the analysis passes a level whose true accuracy is `drop` below the reference's) at margin δ (fractions).

    D ~ N(-drop, sd²) independent of the variance estimates, so P = E[Φ((δ - drop - offset) / sd)]."""
    sd = difference_sd(design, noise, drop)
    if sd == 0.0:  # no noise at all: D is the drop
        return float(margin > drop)
    offsets, weights = bound_offsets(design, noise, drop, margin)
    return float(np.sum(weights * stats.norm.cdf((margin - drop - offsets) / sd)))


def noncentral_t_power(design: Design, noise: Noise, margin: float, drop: float = 0.0) -> float:
    """The textbook power: every variance from the pooled estimate and the t bound, so (D + δ) / se is noncentral
    t with the pooled df ν and noncentrality (δ - drop) / sd. `power` equals it where no group can use its own
    spread (one seed per level) and the Wilson limits are the t limits (far from 0% and 100%); elsewhere the max
    rule and the Wilson skew near the ceiling widen the analysis' bound, and the real power is lower."""
    sd = difference_sd(design, noise, drop)
    if not design.seeds_covered:
        se = math.sqrt(noise.own_var(design.num_test) * (
            _level_scale(design, noise, drop) / design.level_seeds + 1.0 / design.reference_seeds))
        return float(stats.norm.cdf((margin - drop - stats.norm.ppf(design.confidence) * se) / sd))
    nu = design.pooled_df
    return float(stats.nct.sf(stats.t.ppf(design.confidence, nu), nu, (margin - drop) / sd))


def smallest_margin(design: Design, noise: Noise, drop_share: float = 0.0, target: float = TARGET_POWER) -> float:
    """The smallest δ at which a level `drop_share` x δ below the reference passes with probability `target`
    (drop_share 0: a level that loses nothing; 0.5: one that loses half the margin)."""
    assert 0.0 <= drop_share < 1.0
    gap = lambda margin: power(design, noise, margin, drop_share * margin) - target
    high = 1e-3
    while gap(high) < 0:
        high *= 2.0
        if high > 1.0:
            return math.inf
    return float(optimize.brentq(gap, high / 2.0 if high > 1e-3 else 0.0, high, xtol=1e-6))


def seeds_needed(design: Design, noise: Noise, margin: float, drop: float = 0.0,
                 target: float = TARGET_POWER) -> Optional[int]:
    """The fewest seeds per level (the reference keeping its extra seeds) for `target` power at δ, counting only
    designs whose interval covers training noise; None beyond MAX_SEEDS."""
    extra = design.reference_seeds - design.level_seeds
    with_seeds = lambda s: dataclasses.replace(design, level_seeds=s, reference_seeds=s + extra)
    return _smallest(lambda s: power(with_seeds(s), noise, margin, drop) >= target, 1 if extra else 2, MAX_SEEDS)


def examples_needed(design: Design, noise: Noise, margin: float, drop: float = 0.0,
                    target: float = TARGET_POWER) -> Optional[int]:
    """The fewest test examples for `target` power at δ with the design's seeds; None when training noise alone
    (an infinite test set) keeps the power below it. (With one seed everywhere this is the power of an exploratory
    test, whose interval leaves training noise out.)"""
    with_test = lambda n: dataclasses.replace(design, num_test=n)
    return _smallest(lambda n: power(with_test(n), noise, margin, drop) >= target, 10, MAX_TEST)


def _smallest(enough, low: int, high: int) -> Optional[int]:
    """The smallest integer in [low, high] where `enough` (monotone) holds; None if not even at `high`."""
    if not enough(high):
        return None
    if enough(low):
        return low
    while high - low > 1:  # enough(high), not enough(low)
        middle = (low + high) // 2 if high - low < 64 else int(math.sqrt(low * high))
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high
