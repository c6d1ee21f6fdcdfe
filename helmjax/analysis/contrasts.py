"""Differences of mean accuracies with intervals that cover both sources of noise a sweep has.

A sweep's accuracy at one (arch, level) is the mean over a few training seeds, measured on one finite test set.
Both are noise. A *contrast* is a weighted sum of such group means (acc(q20) - acc(raw); a difference in
differences for model sizes) and its standard error has two parts:

- test examples: the test set is a sample. Its part is the variance of the contrast over bootstrap resamples of
  the examples, one draw shared by every run, so contrasts are paired over examples;
- training seeds: the spread of runs around their (arch, level) mean, pooled over the arch's levels (with 2-5
  seeds per level, one level's own variance has 1-4 degrees of freedom: far too few; the pooled one has many).
  Runs spread less near the ceiling (a 99.6% level varies by tenths of a point, a 60% one by points: the noise
  ladder's sweeps), so the pooling is quasi-binomial: each level's squared deviations are divided by p(1 - p)
  at its mean, the pooled dispersion is multiplied back by p(1 - p) at each level. A level whose own spread is
  larger uses its own. A level with one seed borrows the pooled variance. The seed spread holds each run's own
  luck on the test examples too, so that part is taken out of the example bootstrap, leaving the shared part
  (the test set as a sample).

Seeds are not paired across levels: with the pooled variance, a per-seed block effect would cost more degrees
of freedom than it saves, and leaving it out is conservative when same-seed runs are positively correlated.
The bound uses Student's t with Welch-Satterthwaite degrees of freedom, so it stays valid with 2-5 seeds (where
a percentile bootstrap over the seeds is far too narrow). With one seed everywhere the interval covers
test-example noise only; `Estimate.seeds_covered` says so and callers call the result exploratory. Near 0% and
100% a symmetric t interval leaves [0, 1]: the intervals the analysis reports of an accuracy or of a difference of
two come from `bounded`, built on these estimates.
"""

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import stats


@dataclasses.dataclass
class Group:
    """The done runs of one (arch, level): seeds, test accuracies and example-bootstrap replicates."""
    seeds: Tuple
    acc: np.ndarray  # (S,) test accuracy per seed
    replicates: np.ndarray  # (B, S) test accuracy of each run under each shared example resample
    correct: Optional[np.ndarray] = None  # (S, n) per-example correctness, when every run saved it
    pooled: Optional["Pooled"] = None  # the arch's pooled variances (see `share_pooled_variance`)
    test_size: Optional[int] = None  # test examples per run, when `correct` is not known
    # The accuracy of a null hypothesis the group is tested against (reference - δ in a non-inferiority test): the
    # seed variance's p(1 - p) is then the larger of the two, so a lucky run cannot narrow its own interval.
    null_accuracy: Optional[float] = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.acc))

    @property
    def size(self) -> int:
        return len(self.acc)

    @property
    def num_test(self) -> int:
        """Test examples per run: from the per-example correctness, else as the runs' rows say, else a default."""
        return self.correct.shape[1] if self.correct is not None else self.test_size or DEFAULT_NUM_TEST

    @property
    def binomial_scale(self) -> float:
        """p(1 - p) at the group's mean accuracy, p kept half an example from 0 and 1: how the spread of runs
        scales with the level's accuracy in the quasi-binomial pooling."""
        n = self.num_test
        p = min(max(self.mean, 0.5 / n), 1.0 - 0.5 / n)
        return p * (1.0 - p)

    @property
    def seed_scale(self) -> float:
        """p(1 - p) the pooled dispersion is multiplied back by: at the group's mean, or at its null accuracy where
        that is larger (nearer 50%)."""
        if self.null_accuracy is None:
            return self.binomial_scale
        n = self.num_test
        p = min(max(self.null_accuracy, 0.5 / n), 1.0 - 0.5 / n)
        return max(self.binomial_scale, p * (1.0 - p))

    def pooled_seed_var(self) -> float:
        """The arch's pooled seed variance at this group's accuracy (`seed_scale`), never below `Pooled.floor`."""
        return max(self.pooled.seed_dispersion, self.pooled.floor) * self.seed_scale

    def pooled_example_var(self) -> float:
        """The part of `pooled_seed_var` that is a run's own luck on the examples."""
        return self.pooled.example_dispersion * self.seed_scale

    def seed_variance(self) -> Optional[Tuple[float, float, object]]:
        """(variance of one run, its df, the estimate it comes from): the larger of the group's own and its arch's
        pooled variance; None with one seed and nothing to borrow."""
        if self.pooled is None:
            return None
        own = float(np.var(self.acc, ddof=1)) if self.size >= 2 else 0.0
        pooled = self.pooled_seed_var()
        if own > pooled * (1 + 1e-9):
            return own, self.size - 1.0, id(self)
        return pooled, self.pooled.df, id(self.pooled)


DEFAULT_NUM_TEST = 1000  # for the binomial scale when per-example correctness is not known


@dataclasses.dataclass(frozen=True)
class Pooled:
    """The spread of one run's accuracy around its (arch, level) mean, pooled over the arch's levels as a
    dispersion: variance / p(1 - p) (see `Group.binomial_scale`)."""
    seed_dispersion: float  # all of a run's spread: training noise and its own luck on the test examples
    df: float
    example_dispersion: float  # the part from the run's own luck on the examples (already in the bootstrap)
    # The least dispersion used, 1/(R n) for R pooled runs of n test examples: their spread cannot be measured finer
    # than the binomial noise of their R n examples together. Runs that all score 2000/2000 have no spread at all (a
    # small validation split saturates and the best epoch is tied); without a floor every comparison with them would
    # have an interval of width 0. (1/n, a binomial count per run, costs power wherever runs agree on the hard
    # examples: VALIDATION.md section 1.)
    floor: float = 0.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A contrast: its value, standard error and degrees of freedom (inf when only example noise is known)."""
    value: float
    se: float
    df: float
    seeds_covered: bool  # training-seed noise is part of `se`

    def critical(self, probability: float) -> float:
        """The t quantile at the estimate's degrees of freedom (normal with test-example noise only)."""
        if math.isfinite(self.df):
            return float(stats.t.ppf(probability, self.df))
        return float(stats.norm.ppf(probability))

    def _t(self, probability: float) -> float:
        return 0.0 if self.se == 0.0 else self.critical(probability)

    def lower(self, confidence: float) -> float:
        """One-sided lower confidence bound."""
        return self.value - self._t(confidence) * self.se

    def upper(self, confidence: float) -> float:
        return self.value + self._t(confidence) * self.se

    def interval(self, confidence: float) -> Tuple[float, float]:
        """Two-sided interval."""
        half = self._t(0.5 + confidence / 2.0) * self.se
        return self.value - half, self.value + half

    def p_value(self) -> float:
        """Two-sided p-value of "the contrast is zero"."""
        if self.se == 0.0:
            return 0.0 if self.value != 0.0 else 1.0
        z = abs(self.value) / self.se
        tail = stats.t.sf(z, self.df) if math.isfinite(self.df) else stats.norm.sf(z)
        return float(min(1.0, 2.0 * tail))


def share_pooled_variance(groups: Sequence[Group]) -> Optional[Pooled]:
    """Pools the seed spread of one arch's groups with 2+ seeds and gives it to every group (one-seed groups
    borrow it; the others use the larger of their own and the pooled variance)."""
    squares, df, example_sum, runs = 0.0, 0, 0.0, 0
    for group in groups:
        if group.size >= 2:
            runs += group.size
            scale = group.binomial_scale
            squares += float(np.sum((group.acc - group.acc.mean()) ** 2)) / scale
            df += group.size - 1
            if group.correct is not None:
                # Per example, the spread of correctness over seeds: each run's own luck on the test set.
                example_sum += (group.size - 1) * float(np.mean(np.var(group.correct, axis=0, ddof=1))) \
                    / group.correct.shape[1] / scale
    floor = 1.0 / (runs * max(group.num_test for group in groups)) if df else 0.0
    pooled = Pooled(squares / df, float(df), example_sum / df, floor) if df else None
    for group in groups:
        group.pooled = pooled
    return pooled


def _seed_terms(terms) -> Optional[list]:
    """Per term: (seed variance of its mean, the estimate it comes from, its df, example variance already in the
    bootstrap); None when some group has one seed and nothing to borrow."""
    out = []
    for w, g in terms:
        seed = g.seed_variance()
        if seed is None:
            return None
        variance, df, source = seed
        out.append((w * w * variance / g.size, source, df, w * w * g.pooled_example_var() / g.size))
    return out


def contrast(terms: Sequence[Tuple[float, Group]]) -> Estimate:
    """sum(weight * group mean) with its standard error over test examples and training seeds."""
    terms = list(terms)
    value = sum(w * g.mean for w, g in terms)
    example_draws = sum(w * g.replicates.mean(axis=1) for w, g in terms)
    example_var = float(np.var(example_draws, ddof=1)) if np.ndim(example_draws) and len(example_draws) > 1 else 0.0
    seed_terms = _seed_terms(terms)
    if seed_terms is None:  # one seed and nothing to borrow: test-example noise only
        return Estimate(value=float(value), se=math.sqrt(example_var), df=math.inf, seeds_covered=False)
    by_source = {}  # terms from one variance estimate share its df (Welch-Satterthwaite is over estimates)
    for variance, source, df, _ in seed_terms:
        total_variance, _ = by_source.get(source, (0.0, df))
        by_source[source] = (total_variance + variance, df)
    seed_var = sum(v for v, _ in by_source.values())
    # The seed spread already holds each run's own luck on the examples; keep only the shared part of the
    # example bootstrap (the test set as a sample of all examples).
    shared = max(example_var - sum(t[3] for t in seed_terms), 0.0)
    total = seed_var + shared
    denominator = sum(v * v / df for v, df in by_source.values() if v > 0)
    df = total ** 2 / denominator if denominator > 0 else math.inf
    return Estimate(value=float(value), se=math.sqrt(total), df=float(df), seeds_covered=True)


def level_replicates(group: Group, rng: np.random.Generator) -> np.ndarray:
    """(B,) replicate means of one group with both noises: the shared part of the example bootstrap, plus seed
    noise drawn from a t distribution with the pooled df (for curve fits on replicates)."""
    base = group.replicates.mean(axis=1)
    seed = group.seed_variance()
    if seed is None:
        return base
    seed_var = seed[0] / group.size
    example_var = float(np.var(base, ddof=1))
    shared = max(example_var - group.pooled_example_var() / group.size, 0.0)
    shrink = math.sqrt(shared / example_var) if example_var > 0 else 0.0
    centre = base.mean()
    return centre + shrink * (base - centre) + math.sqrt(seed_var) * rng.standard_t(group.pooled.df, size=len(base))


def holm(p_values: Sequence[float]) -> list:
    """Holm-adjusted p-values (familywise error over the family given), in the input order."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
