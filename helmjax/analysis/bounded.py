"""Intervals that stay inside their logical range: an accuracy in [0, 1], a difference of accuracies in [-1, 1].

A symmetric t interval around 100% (2000/2000 right) reaches past 100%; score intervals do not:

- one run's accuracy from test-example noise alone (k right of n): the Wilson score interval;
- a mean over seeds, whose standard error (`contrasts.contrast`: seed spread pooled as a quasi-binomial dispersion,
  and the test set as a sample) is worth an effective number of test examples, n_eff = p(1 - p) / se² with p(1 - p)
  the binomial scale the pooling uses (`Group.binomial_scale`): the Wilson interval of p at n_eff, with the t
  quantile of the estimate's degrees of freedom. It is the score interval of the quasi-binomial model itself
  (variance ∝ p(1 - p)); far from 0% and 100% it is the t interval;
- a difference of two accuracies: the square-and-add (MOVER) combination of the two accuracies' Wilson intervals,
  Newcombe's hybrid score interval (method 10) for independent runs. Runs share the test examples, so levels are
  correlated: the correlation is the one that makes square-and-add reproduce the contrast's own variance, and away
  from the bounds the interval is the contrast's Welch t interval. The non-inferiority rule keeps its statistical
  model; near 0% and 100% the score intervals' skew moves its bounds.

`Difference.lower` is the one-sided bound the fixed-sequence test decides with and the report prints.
"""

import dataclasses
import math
from typing import Optional, Tuple

from helmjax.analysis import contrasts
from helmjax.analysis.contrasts import Estimate, Group

Interval = Tuple[float, float]


def wilson(successes: float, trials: int, critical: float) -> Interval:
    """Wilson score interval of a proportion, successes of trials, at a critical value (1.96 for two-sided 95%).

    E. B. Wilson (1927), Probable inference, the law of succession, and statistical inference, JASA 22:209-212;
    method 3 in R. G. Newcombe (1998), Two-sided confidence intervals for the single proportion: comparison of seven
    methods, Statistics in Medicine 17:857-872. Inside [0, 1] for every count, 0 and n included. Non-integer counts
    serve an effective sample size (trials = p(1 - p) / variance, successes = p * trials), as for proportions from
    clustered samples: E. L. Korn and B. I. Graubard (1998), Confidence intervals for proportions with small expected
    number of positive counts estimated from survey data, Survey Methodology 24:193-201; the quasi-binomial variance
    φ p(1 - p) is P. McCullagh and J. A. Nelder (1989), Generalized Linear Models, 2nd ed., §4.5."""
    n, k, z2 = float(trials), float(successes), critical * critical
    centre = (k + z2 / 2.0) / (n + z2)
    half = critical / (n + z2) * math.sqrt(max(k * (n - k) / n, 0.0) + z2 / 4.0)
    # At k = 0 and k = n the limit is exactly 0 or 1; rounding would leave it a hair off.
    return 0.0 if k <= 0 else max(0.0, float(centre - half)), 1.0 if k >= n else min(1.0, float(centre + half))


def mover(first: float, first_interval: Interval, second: float, second_interval: Interval,
          correlation: float = 0.0) -> Interval:
    """Interval of first - second from each one's own interval (square and add; MOVER).

    R. G. Newcombe (1998), Interval estimation for the difference between independent proportions: comparison of
    eleven methods, Statistics in Medicine 17:873-890, method 10 (with Wilson intervals and no correlation); the
    correlated form as in R. G. Newcombe (1998), Improved confidence intervals for the difference between binomial
    proportions based on paired data, Statistics in Medicine 17:2635-2650, and G. Y. Zou and A. Donner (2008),
    Construction of confidence limits about effect measures: a general approach, Statistics in Medicine
    27:1693-1702. With each estimate inside its interval and correlation >= -1, the result lies within
    (first low - second high, first high - second low): inside [-1, 1] for accuracies."""
    (l1, u1), (l2, u2) = first_interval, second_interval
    r = min(1.0, max(-1.0, correlation))
    d = first - second
    below = math.sqrt(max((first - l1) ** 2 + (u2 - second) ** 2 - 2.0 * r * (first - l1) * (u2 - second), 0.0))
    above = math.sqrt(max((u1 - first) ** 2 + (second - l2) ** 2 - 2.0 * r * (u1 - first) * (second - l2), 0.0))
    return max(d - below, l1 - u2), min(d + above, u1 - l2)


def newcombe(successes1: float, trials1: int, successes2: float, trials2: int, critical: float) -> Interval:
    """Newcombe's hybrid score interval (method 10) of p1 - p2 for two independent proportions."""
    return mover(successes1 / trials1, wilson(successes1, trials1, critical),
                 successes2 / trials2, wilson(successes2, trials2, critical))


@dataclasses.dataclass(frozen=True)
class Accuracy:
    """One (arch, level)'s mean accuracy over its seeds with a Wilson interval at an effective number of test
    examples: n when only test-example noise is covered (one seed, nothing to borrow), p(1 - p) / se² with the
    seed noise (see the module docstring). `estimate` is the group's own contrast (value, se, df)."""
    group: Group
    estimate: Estimate
    seeds_covered: bool

    @property
    def value(self) -> float:
        return self.group.mean

    @property
    def effective_n(self) -> float:
        """Test examples the mean's standard error is worth (inf when it is 0)."""
        if not self.seeds_covered:
            return float(self.group.num_test)
        se = self.estimate.se
        return self.group.seed_scale / (se * se) if se > 0 else math.inf

    def limits(self, critical: float) -> Interval:
        """The interval at a critical value (a t quantile: a difference passes the one of its own df)."""
        n, p = self.effective_n, self.group.mean
        return (p, p) if math.isinf(n) else wilson(p * n, n, critical)

    @property
    def variance(self) -> float:
        """The variance the Wilson interval is built on, p(1 - p) / n_eff: se² away from 0% and 100%, 0 at them."""
        p = self.group.mean
        return p * (1.0 - p) / self.effective_n

    def interval(self, confidence: float) -> Interval:
        """Two-sided interval."""
        return self.limits(self.estimate.critical(0.5 + confidence / 2.0))


def accuracy(group: Group) -> Accuracy:
    """One group's mean accuracy with its bounded interval (what the accuracy table reports)."""
    estimate = contrasts.contrast([(1.0, group)])
    return Accuracy(group=group, estimate=estimate, seeds_covered=estimate.seeds_covered)


@dataclasses.dataclass(frozen=True)
class Difference:
    """acc(first) - acc(second) of two (arch, level) groups, its interval inside [-1, 1]: the MOVER combination of
    the two accuracies' bounded intervals at the difference's own critical value (Welch-Satterthwaite df, or normal
    with example noise only), with the correlation that makes the square-and-add give the contrast's own variance
    (runs share the test examples, so levels are paired; see the module docstring)."""
    first: Accuracy
    second: Accuracy
    estimate: Estimate  # the contrast: value, se, df, seeds_covered
    correlation: float

    @property
    def value(self) -> float:
        return self.estimate.value

    @property
    def seeds_covered(self) -> bool:
        return self.estimate.seeds_covered

    def _limits(self, probability: float) -> Interval:
        critical = self.estimate.critical(probability)
        low, high = mover(self.first.value, self.first.limits(critical), self.second.value,
                          self.second.limits(critical), self.correlation)
        return max(-1.0, low), min(1.0, high)

    def lower(self, confidence: float) -> float:
        """One-sided lower confidence bound (what non-inferiority decides with)."""
        return self._limits(confidence)[0]

    def upper(self, confidence: float) -> float:
        return self._limits(confidence)[1]

    def interval(self, confidence: float) -> Interval:
        """Two-sided interval."""
        return self._limits(0.5 + confidence / 2.0)


def difference(first: Group, second: Group, margin: Optional[float] = None) -> Difference:
    """acc(first) - acc(second) with a bounded interval; its value, se and df are `contrasts.contrast`'s.

    With a non-inferiority margin δ, first's seed variance takes p(1 - p) at the null boundary acc(second) - δ
    where that is larger than at its own mean (`Group.null_accuracy`): scaled at its observed mean, a level whose one
    run was lucky (2000/2000) got a narrow interval and passed too often (VALIDATION.md section 1).

    The correlation r solves v1 + v2 - 2 r sqrt(v1 v2) = se², with v1, v2 the variances the two accuracies'
    intervals are built on (`Accuracy.variance`) and se the contrast's (paired over the shared test examples, seed
    spread pooled): far from 0% and 100% the square-and-add then gives the contrast's t interval back."""
    if margin is not None:
        first = dataclasses.replace(first, null_accuracy=second.mean - margin)
    estimate = contrasts.contrast([(1.0, first), (-1.0, second)])
    parts = [Accuracy(group, contrasts.contrast([(1.0, group)]), estimate.seeds_covered) for group in (first, second)]
    v1, v2 = (part.variance for part in parts)
    product = math.sqrt(v1 * v2)
    correlation = (v1 + v2 - estimate.se ** 2) / (2.0 * product) if product > 0 else 0.0
    return Difference(first=parts[0], second=parts[1], estimate=estimate,
                      correlation=float(min(1.0, max(-1.0, correlation))))
