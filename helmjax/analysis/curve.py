"""The paper's accuracy-vs-quality curve: Accuracy = c * log(q), and a hinge variant with a plateau.

The paper reads accuracy as rising like c * log(q) until a knee, beyond which more bits buy nothing. The
hinge model says exactly that and makes the knee a parameter:

    acc(q) = plateau + slope * min(0, ln q - ln knee)      (slope >= 0)

i.e. a straight line in log q up to `knee`, flat after it. It is linear in (plateau, slope) for a fixed
knee, so the fit scans the knee over a fine grid in log q and solves the rest in closed form: no
optimiser to diverge, and it runs batched over bootstrap replicates. All logs are natural logs.
"""

import dataclasses
import math
from typing import Optional

import numpy as np

KNEE_GRID_POINTS = 400
FLAT_DROP = 0.01  # a fitted drop below one accuracy point across the sweep is read as "flat"


@dataclasses.dataclass(frozen=True)
class LogFit:
    """acc = c * ln(q), least squares through the origin; r2 against the mean (can be negative)."""
    c: float
    r2: float


@dataclasses.dataclass(frozen=True)
class HingeFit:
    knee: float  # level where the rising line meets the plateau
    plateau: float  # accuracy on the flat part
    slope: float  # accuracy per unit of ln(level) below the knee
    r2: float
    drop: float  # plateau minus the fitted accuracy at the lowest level
    shape: str  # "knee", "flat" (no drop within the sweep) or "rising" (no plateau within the sweep)


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum((y - predicted) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def fit_log(levels, accuracies) -> Optional[LogFit]:
    """The paper's upper-bound curve; None when no level is above 1 (ln 1 = 0 carries no information)."""
    x = np.log(np.asarray(levels, float))
    y = np.asarray(accuracies, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if not np.any(x != 0):
        return None
    c = float(np.dot(x, y) / np.dot(x, x))
    return LogFit(c=c, r2=_r2(y, c * x))


def hinge_curve(fit: HingeFit, levels) -> np.ndarray:
    x = np.log(np.asarray(levels, float))
    return fit.plateau + fit.slope * np.minimum(0.0, x - np.log(fit.knee))


def fit_hinge_batch(levels, accuracies: np.ndarray) -> dict:
    """Hinge fits of many curves at once: accuracies (B, L) over the same levels -> arrays of (B,).

    Returns dict of knee, plateau, slope, sse. Needs at least 3 distinct levels (3 parameters).
    """
    x = np.log(np.asarray(levels, float))
    y = np.atleast_2d(np.asarray(accuracies, float))
    knees = np.linspace(x.min(), x.max(), KNEE_GRID_POINTS)
    z = np.minimum(0.0, x[None, :] - knees[:, None])  # (G, L)
    zc = z - z.mean(axis=1, keepdims=True)
    szz = np.sum(zc ** 2, axis=1)  # (G,); zero when the knee is at the lowest level (a flat line)
    yc = y - y.mean(axis=1, keepdims=True)
    syy = np.sum(yc ** 2, axis=1)  # (B,)
    sxy = yc @ zc.T  # (B, G)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where((szz > 0) & (sxy > 0), sxy / np.where(szz > 0, szz, 1.0), 0.0)
    sse = syy[:, None] - slope * sxy
    # Ties (e.g. a flat curve fits equally at every knee) go to the lowest knee: prefer "no drop".
    best = np.argmin(np.round(sse, 12), axis=1)
    rows = np.arange(len(y))
    best_slope = slope[rows, best]
    plateau = y.mean(axis=1) - best_slope * z[best].mean(axis=1)
    return {"knee": np.exp(knees[best]), "plateau": plateau, "slope": best_slope, "sse": sse[rows, best]}


def fit_hinge(levels, accuracies) -> Optional[HingeFit]:
    """The hinge fit of one curve; None with fewer than 3 distinct finite levels."""
    levels = np.asarray(levels, float)
    y = np.asarray(accuracies, float)
    keep = np.isfinite(y) & (levels > 0)
    levels, y = levels[keep], y[keep]
    if len(np.unique(levels)) < 3:
        return None
    batch = fit_hinge_batch(levels, y[None, :])
    knee, plateau, slope = float(batch["knee"][0]), float(batch["plateau"][0]), float(batch["slope"][0])
    fitted = plateau + slope * np.minimum(0.0, np.log(levels) - np.log(knee))
    drop = plateau - float(fitted[np.argmin(levels)])
    # A plateau needs two levels on it: a knee past the middle (in log) of the two highest levels is none.
    second, top = np.unique(levels)[-2:]
    if drop < FLAT_DROP:
        shape = "flat"
    elif knee >= math.sqrt(second * top):
        shape = "rising"
    else:
        shape = "knee"
    return HingeFit(knee=knee, plateau=plateau, slope=slope, r2=_r2(y, fitted), drop=drop, shape=shape)
