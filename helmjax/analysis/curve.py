"""The shape of accuracy against compression level: a monotone fit, the knee, and the paper's log curve.

The knee is where a monotone (isotonic, non-decreasing in ln level) fit of the per-level mean accuracies,
interpolated linearly in ln level, has dropped δ below its plateau (its mean over the levels within 2δ of its top). A monotone
fit assumes only that more bits never cost accuracy, so no curve shape is imposed; a curve that never drops more
than δ over the sampled levels has no knee in range, and the knee is then censored ("at or below the lowest
level"), never a number. Whether there is a drop is decided on bootstrap replicates (see `knee_call`).

The paper reads accuracy as a + c * ln(level); it is fitted with an intercept and reported with its R².
All logs are natural logs. The levels given to the knee functions are axis positions, ascending = less compression
(`levels.LevelScale.position`: the level itself for JPEG quality, its inverse when higher levels compress more).
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np
from scipy import stats
from scipy.optimize import isotonic_regression

LOG_FIT_MIN_R2 = 0.5
PLATEAU_WINDOW = 2.0  # in margins: the levels whose fit is this close to the top make the plateau  # below this the paper's curve "does not fit" and is not drawn


def monotone_fit(accuracies, weights=None) -> np.ndarray:
    """Isotonic (non-decreasing) fit of accuracies given in ascending level order."""
    y = np.asarray(accuracies, float)
    return isotonic_regression(y, weights=None if weights is None else np.asarray(weights, float)).x


def plateau(fitted: np.ndarray, margin: float) -> float:
    """The fit's plateau: its mean over the levels within 2 margins of its top (one noisy top level would
    otherwise set the plateau alone and drag the knee onto the flat part)."""
    return float(np.mean(fitted[fitted >= fitted[-1] - PLATEAU_WINDOW * margin]))


def crossing(fitted: np.ndarray, margin: float) -> Optional[int]:
    """Index i such that the monotone fit is below plateau - margin at level i and not at level i + 1; None when
    it never drops that far. The knee lies between the sampled levels i and i + 1: where exactly is not measured."""
    below = np.flatnonzero(fitted < plateau(fitted, margin) - margin)
    return None if below.size == 0 else int(below[-1])  # monotone: every level up to i is below, i + 1 is not


def knee_level(levels: Sequence, fitted: np.ndarray, margin: float) -> Optional[float]:
    """Level where the fit, interpolated linearly in ln level, crosses plateau - margin; None when it never drops
    that far. The interpolation places the knee inside its bracket (see `crossing`); it is a convention."""
    i = crossing(fitted, margin)
    if i is None:
        return None
    target = plateau(fitted, margin) - margin
    with np.errstate(divide="ignore"):  # a level 0 (WebP quality 0) sits at -inf; the knee then interpolates to it
        x0, x1 = np.log(float(levels[i])), np.log(float(levels[i + 1]))
    y0, y1 = fitted[i], fitted[i + 1]
    return float(np.exp(x0 + (target - y0) / (y1 - y0) * (x1 - x0)))


def drop(fitted: np.ndarray, margin: float) -> float:
    """Plateau minus the fit at the lowest level."""
    return plateau(fitted, margin) - float(fitted[0])


@dataclasses.dataclass(frozen=True)
class KneeCall:
    shape: str  # "knee": a drop larger than the margin in at least `confidence` of replicates; else "flat"
    knee: Optional[float]  # from the point fit; None when censored (no drop larger than the margin)
    ci: tuple  # (low, high) of the interpolated knee over replicates; low None = "at or below the lowest level"
    bracket: tuple  # (low, high) sampled levels: the replicates' crossings lie between them; low None = censored
    drop: float  # plateau minus the fit at the lowest level (point fit)
    drop_share: float  # share of replicates whose drop exceeds the margin
    plateau: float
    fitted: list  # the point fit per level


def knee_call(levels: Sequence, means: Sequence[float], replicates: np.ndarray, margin: float, confidence: float,
              weights=None) -> KneeCall:
    """The knee of one curve: point fit on `means`, call and interval from `replicates` (B, L), levels ascending."""
    fitted = monotone_fit(means, weights)
    knees = np.full(len(replicates), -np.inf)  # -inf: no drop larger than the margin (censored low)
    crossings = np.full(len(replicates), -1)  # -1: censored low
    drops = np.empty(len(replicates))
    for b, row in enumerate(replicates):
        fit_b = monotone_fit(row, weights)
        drops[b] = drop(fit_b, margin)
        i = crossing(fit_b, margin)
        if i is not None:
            crossings[b] = i
            knees[b] = knee_level(levels, fit_b, margin)
    share = float(np.mean(drops > margin))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(knees, [tail, 100.0 - tail], method="nearest")
    ci = (None if not np.isfinite(low) else float(low), None if not np.isfinite(high) else float(high))
    first, last = np.percentile(crossings, [tail, 100.0 - tail], method="nearest")
    plain = lambda level: level.item() if isinstance(level, np.generic) else level
    bracket = (None if first < 0 else plain(levels[int(first)]), None if last < 0 else plain(levels[int(last) + 1]))
    knee = knee_level(levels, fitted, margin)
    shape = "knee" if share >= confidence and knee is not None else "flat"
    return KneeCall(shape=shape, knee=knee if shape == "knee" else None, ci=ci, bracket=bracket,
                    drop=drop(fitted, margin),
                    drop_share=share, plateau=plateau(fitted, margin), fitted=fitted.tolist())


@dataclasses.dataclass(frozen=True)
class LogFit:
    """acc = a + c * ln(level) by least squares; r2 against the mean (can be negative); c's standard error from
    the residuals (the level means as the observations), with its degrees of freedom."""
    a: float
    c: float
    r2: float
    c_se: float
    df: int

    @property
    def fits(self) -> bool:
        return self.r2 >= LOG_FIT_MIN_R2


def fit_log(levels, accuracies) -> Optional[LogFit]:
    """The paper's curve with an intercept, over the positive levels; None with fewer than 3 distinct ones."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.log(np.asarray(levels, float))
    y = np.asarray(accuracies, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 3:
        return None
    c, a = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (a + c * x)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    df = len(x) - 2
    c_se = float(np.sqrt(residual / df / np.sum((x - x.mean()) ** 2)))
    return LogFit(a=float(a), c=float(c), r2=r2, c_se=c_se, df=df)


def slope_interval(fit: LogFit, confidence: float) -> tuple:
    """Two-sided t interval of c."""
    half = float(stats.t.ppf(0.5 + confidence / 2.0, fit.df)) * fit.c_se
    return fit.c - half, fit.c + half
