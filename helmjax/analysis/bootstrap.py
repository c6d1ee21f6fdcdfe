"""The example bootstrap: test examples drawn with replacement, one draw shared by every run.

Runs share the test set, so one draw per replicate keeps every comparison between levels (and models) paired
over examples. The draw is a (B, n) matrix of counts, so every run's replicate accuracy is one matrix product:
fast enough for thousands of runs. Training-seed noise is handled in `contrasts`, not here.
"""

from typing import Sequence

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


def lowest_of_top_run(levels: Sequence, passes: Sequence[bool]):
    """The lowest level from which every higher level passes too (levels ascending); None if the top fails."""
    best = None
    for level, ok in zip(reversed(list(levels)), reversed(list(passes))):
        if not ok:
            break
        best = level
    return best
