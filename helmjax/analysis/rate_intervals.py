"""Bit rates with intervals over the items (images, clips) they were measured on.

Per level the sweep stores each item's coded bits: the whole file, and the entropy-coded payload alone (headers
and tables excluded: at 32x32 they are most of a JPEG file). The lossless reference rate is a real lossless
codec's size of the same items. The noise bits at a level are lossless minus payload, paired item by item; their
interval comes from a bootstrap over items.
"""

from typing import Optional

import numpy as np


def _bootstrap_means(rng: np.random.Generator, values: np.ndarray, resamples: int) -> np.ndarray:
    n = len(values)
    picks = rng.integers(0, n, size=(resamples, n))
    return values[picks].mean(axis=1)


def mean_with_interval(rng: np.random.Generator, values: np.ndarray, resamples: int, confidence: float) -> dict:
    """{"mean", "ci"} of per-item values (percentile bootstrap over items; items are many, so it is fine)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"mean": None, "ci": (None, None)}
    if values.size == 1:
        return {"mean": float(values[0]), "ci": (None, None)}
    draws = _bootstrap_means(rng, values, resamples)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return {"mean": float(values.mean()), "ci": (float(low), float(high))}


def paired_difference(lossless: np.ndarray, coded: np.ndarray, index: Optional[np.ndarray] = None) -> np.ndarray:
    """Per-item lossless - coded bits; `index` names the items the lossless codec measured (a subset)."""
    coded = np.asarray(coded, float)
    if index is not None:
        coded = coded[np.asarray(index, int)]
    lossless = np.asarray(lossless, float)
    if len(lossless) != len(coded):
        raise ValueError(f"{len(lossless)} lossless items vs {len(coded)} coded items: not the same items")
    return lossless - coded
