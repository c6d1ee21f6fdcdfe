"""Bootstrap over test examples and seeds, and the sweet-spot rules built on it.

One replicate draws the test examples with replacement (the same draw for every run: runs share the test
set, so comparisons between levels are paired over examples) and, per (arch, level), the seeds with
replacement. The example draw is a (B, n) matrix of counts, so every run's replicate accuracy is one matrix
product: fast enough for thousands of runs.
"""

from typing import Dict, List, Optional, Sequence

import numpy as np


def example_counts(rng: np.random.Generator, num_examples: int, resamples: int) -> np.ndarray:
    """(B, n) float32: how often each test example is drawn in each replicate (rows sum to n)."""
    draws = rng.integers(0, num_examples, size=(resamples, num_examples))
    offsets = (np.arange(resamples) * num_examples)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * num_examples)
    return counts.reshape(resamples, num_examples).astype(np.float32)


def run_replicates(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(R, n) per-example correctness of R runs -> (B, R) replicate accuracies."""
    return (counts @ correct.T.astype(np.float32)) / counts.shape[1]


def binomial_replicates(rng: np.random.Generator, accuracy: float, num_test: int, resamples: int) -> np.ndarray:
    """Fallback for a run without per-example correctness: test noise as Binomial(n, acc) / n (unpaired)."""
    return rng.binomial(int(num_test), float(np.clip(accuracy, 0.0, 1.0)), size=resamples) / float(num_test)


def seed_resample(rng: np.random.Generator, replicates: np.ndarray) -> np.ndarray:
    """(B, S) replicate accuracies of S seeds -> (B,) mean over seeds drawn with replacement.

    The bootstrap of a mean of S values has variance (S-1)/S of the true one, a big bias for the usual
    3 seeds; the seed part of each draw is scaled by sqrt(S/(S-1)) to undo it.
    """
    resamples, seeds = replicates.shape
    if seeds == 1:
        return replicates[:, 0].copy()
    picks = rng.integers(0, seeds, size=(resamples, seeds))
    drawn = np.take_along_axis(replicates, picks, axis=1).mean(axis=1)
    centre = replicates.mean(axis=1)
    return centre + np.sqrt(seeds / (seeds - 1.0)) * (drawn - centre)


def interval(values: np.ndarray, confidence: float) -> tuple:
    """Two-sided percentile interval."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def upper_bound(values: np.ndarray, confidence: float) -> float:
    """One-sided percentile upper bound."""
    return float(np.percentile(values, 100.0 * confidence))


def lowest_passing(levels: Sequence, passes: Sequence[bool]):
    """The lowest level (levels ascending) that passes; None if none does."""
    for level, ok in zip(levels, passes):
        if ok:
            return level
    return None


def lowest_of_top_run(levels: Sequence, passes: Sequence[bool]):
    """The lowest level from which every higher level passes too (levels ascending); None if the top fails."""
    best = None
    for level, ok in zip(reversed(list(levels)), reversed(list(passes))):
        if not ok:
            break
        best = level
    return best


def _top_run_index(passes: np.ndarray) -> np.ndarray:
    """(B, L) booleans -> (B,) index where the run of passes reaching the top level starts; L if the top fails."""
    fails_at_or_above = np.cumsum(~passes[:, ::-1], axis=1)[:, ::-1] > 0
    return np.where(fails_at_or_above.any(axis=1),
                    passes.shape[1] - np.argmax(fails_at_or_above[:, ::-1], axis=1), 0)


def _first_pass_index(passes: np.ndarray) -> np.ndarray:
    """(B, L) booleans -> (B,) index of the first passing level, L where none passes."""
    return np.where(passes.any(axis=1), np.argmax(passes, axis=1), passes.shape[1])


def significance_sweet_spot(levels: Sequence, diff_point: Dict, diff_replicates: Dict,
                            confidence: float) -> dict:
    """The lowest level not significantly below the reference, and a CI for it.

    Rule: level L passes when the one-sided `confidence` bootstrap upper bound U(L) of acc(L) - acc(ref) is
    >= 0; q* is the lowest passing level. (Demanding that every higher level pass too would let one chance
    failure among many plateau levels move q*: a multiple-testing trap.) CI: the rule rerun on each replicate,
    with the replicate's difference d_b(L) carrying the same margin (pass if d_b(L) + U(L) - d(L) >= 0);
    the interval holds the percentiles of the resulting q*_b over the ordered levels.
    """
    levels = list(levels)
    uppers = {level: upper_bound(diff_replicates[level], confidence) for level in levels}
    q_star = lowest_passing(levels, [uppers[level] >= 0.0 for level in levels])
    if not levels:
        return {"q_star": None, "ci": (None, None), "upper_bounds": uppers}
    margin = np.stack([diff_replicates[level] + uppers[level] - diff_point[level] for level in levels], axis=1)
    ci = _level_interval(levels, _first_pass_index(margin >= 0.0), confidence)
    return {"q_star": q_star, "ci": ci, "upper_bounds": uppers}


def tolerance_sweet_spot(levels: Sequence, means: Dict, reference_mean: float, tolerance: float):
    """The lowest level from which every higher level has mean accuracy within `tolerance` of the reference.

    (The same rule as the sweep's printed table; with a tolerance of a point or more, unlike a 5% test, one
    plateau level rarely fails by chance.)
    """
    return lowest_of_top_run(list(levels), [means[level] >= reference_mean - tolerance for level in levels])


def tolerance_sweet_spot_ci(levels: Sequence, level_replicates: Dict, reference_replicates: np.ndarray,
                            tolerance: float, confidence: float) -> tuple:
    levels = list(levels)
    if not levels:
        return (None, None)
    passes = np.stack([level_replicates[level] >= reference_replicates - tolerance for level in levels], axis=1)
    return _level_interval(levels, _top_run_index(passes), confidence)


def _level_interval(levels: List, index: np.ndarray, confidence: float) -> tuple:
    """Percentile interval of level indices; index len(levels) (no level passes) maps to None."""
    tail = 100.0 * (1.0 - confidence) / 2.0
    low = int(np.percentile(index, tail, method="lower"))
    high = int(np.percentile(index, 100.0 - tail, method="higher"))
    as_level = lambda i: levels[i] if i < len(levels) else None
    return (as_level(low), as_level(high))


def knee_interval(knees: np.ndarray, confidence: float) -> Optional[tuple]:
    knees = knees[np.isfinite(knees)]
    if knees.size == 0:
        return None
    return interval(knees, confidence)
