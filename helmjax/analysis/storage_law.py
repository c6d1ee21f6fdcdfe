"""How to store a training set within a budget: the storage law err(n, L) = E + A·n^(−α) + B·L^(−β).

Mentzer and Montanari ("Scaling Training Data with Lossy Image Compression", arXiv 2407.17954) model the test
error of a classifier trained on n images stored at L bits each by that sum; at a fixed storage s = n·L the best
bits per image then grows as s^(α/(α+β)), so below some budget more images compressed harder beat fewer images
stored well. A sweep over `data.train_fraction` x level measures points of that surface; this module fits it
(weighted least squares, bootstrap intervals over seeds and test examples, leave-one-grid-point-out prediction
error) and answers budgets with it. Pure functions of the sweep's rows and per-example test correctness.

L is the payload (entropy-coded data without container headers) in bits per image where the codec separates
it, else the whole file; the raw level enters at the lossless rate of the same images. Storage is counted in
whole files (what a user keeps), training images only.
"""

import dataclasses
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import optimize

from helmjax.layout import RAW

PARAMS = ("E", "a", "alpha", "b", "beta")
# The box the fit searches: errors in [0, 1], terms of at most 5 at the scale point, exponents in [0.01, 4].
LOWER = (0.0, 0.0, 0.01, 0.0, 0.01)
UPPER = (1.0, 5.0, 4.0, 5.0, 4.0)


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One (n, level) of the grid: its runs' test errors and what a stored image costs there."""
    n: int
    level: object
    payload_bits: float  # L: bits per image the law is fitted on
    file_bytes: float  # what one stored image takes on disk
    errors: np.ndarray  # per run (seed), test error in [0, 1]
    correct: Optional[np.ndarray]  # (runs, test examples) bool, for the bootstrap; None when not kept
    num_test: int
    pixels: Optional[float] = None  # per image, for bits per pixel; None for audio

    @property
    def payload_bpp(self) -> Optional[float]:
        return None if not self.pixels else self.payload_bits / self.pixels

    @property
    def mean(self) -> float:
        return float(np.mean(self.errors))


def _image_rates(row: dict) -> Tuple[float, float]:
    """(payload bits, file bytes) per item of a results row; the raw level at its lossless rate."""
    storage_bits = 8.0 * row["bytes_per_item"]
    for prefix in ("bpp", "bits_per_second"):
        rate = row.get(prefix)
        if rate:
            per_rate = storage_bits / rate  # pixels (or seconds) per item
            if row["level"] == RAW:
                lossless = row.get(f"{prefix}_lossless")
                if lossless is None:
                    return float("nan"), float("nan")
                return lossless * per_rate, lossless * per_rate / 8.0
            payload = row.get(f"{prefix}_payload")
            return (payload if payload is not None else rate) * per_rate, storage_bits / 8.0
    return float("nan"), float("nan")


def grid_points(rows: Sequence[dict], correct_of: Callable[[dict], Optional[np.ndarray]] = lambda row: None
                ) -> List[GridPoint]:
    """The finished runs of `rows` (one arch) grouped by (n_train, level); `correct_of(row)` gives a run's
    per-example test correctness (None when not kept: the bootstrap then resamples its errors binomially)."""
    groups: Dict[tuple, List[dict]] = {}
    for row in rows:
        if row.get("status") == "done" and row.get("test_acc") is not None and row.get("n_train"):
            groups.setdefault((int(row["n_train"]), row["level"]), []).append(row)
    points = []
    for (n, level), members in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        payload, file_bytes = _image_rates(members[0])
        if not math.isfinite(payload) or payload <= 0:
            continue
        pixels = 8.0 * members[0]["bytes_per_item"] / members[0]["bpp"] if members[0].get("bpp") else None
        corrects = [correct_of(r) for r in members]
        correct = np.stack(corrects) if all(c is not None for c in corrects) and len(
            {len(c) for c in corrects}) == 1 else None
        points.append(GridPoint(n, level, payload, file_bytes, np.array([1.0 - r["test_acc"] for r in members]),
                                correct, int(members[0]["num_test"]), pixels))
    return points


def law(params: np.ndarray, n, bits, scale: Tuple[float, float]):
    """Predicted error at n images of `bits` each; a and b are in units of the scale (n_max, L_max)."""
    e, a, alpha, b, beta = params
    return e + a * (np.asarray(n, float) / scale[0]) ** (-alpha) + b * (np.asarray(bits, float) / scale[1]) ** (-beta)


def point_variances(points: Sequence[GridPoint]) -> np.ndarray:
    """Variance of each point's mean error: test-example noise p(1−p)/m plus a seed variance pooled over the
    grid (the seeds' spread beyond what test noise explains), over the point's number of seeds."""
    binomial = np.array([max(p.mean * (1 - p.mean), 0.25 / p.num_test) / p.num_test for p in points])
    spread = [(np.var(p.errors, ddof=1), len(p.errors) - 1, b) for p, b in zip(points, binomial)
              if len(p.errors) > 1]
    dof = sum(d for _, d, _ in spread)
    tau2 = max(0.0, sum(d * (v - b) for v, d, b in spread) / dof) if dof else 0.0
    return np.array([(b + tau2) / len(p.errors) for p, b in zip(points, binomial)])


def fit(points: Sequence[GridPoint], means: Optional[np.ndarray] = None, variances: Optional[np.ndarray] = None,
        start: Optional[np.ndarray] = None) -> dict:
    """Weighted least squares of the law over the points (their mean errors, or `means`), from `start` (a nearby
    fit's parameters) or else several starts; {"params", "scale", "cost"}."""
    n = np.array([p.n for p in points], float)
    bits = np.array([p.payload_bits for p in points], float)
    y = np.array([p.mean for p in points]) if means is None else np.asarray(means)
    var = point_variances(points) if variances is None else variances
    weight = 1.0 / np.sqrt(np.maximum(var, 1e-8))
    scale = (float(n.max()), float(bits.max()))
    lower, upper = list(LOWER), list(UPPER)

    def residuals(params):
        return (law(params, n, bits, scale) - y) * weight

    starts = [np.clip(start, lower, upper)] if start is not None else [
        [max(0.0, float(y.min()) * 0.8), 0.05, alpha, 0.05, beta] for alpha in (0.3, 1.0) for beta in (0.3, 1.0, 2.5)]
    best = None
    for x0 in starts:
        result = optimize.least_squares(residuals, x0, bounds=(lower, upper), method="trf")
        if best is None or result.cost < best.cost:
            best = result
    return {"params": best.x, "scale": scale, "cost": float(best.cost)}


def leave_one_out(points: Sequence[GridPoint]) -> np.ndarray:
    """Per grid point: the law fitted without it (from every start), minus its observed mean error."""
    variances = point_variances(points)
    out = []
    for k, p in enumerate(points):
        rest = [q for j, q in enumerate(points) if j != k]
        fitted = fit(rest, variances=np.delete(variances, k))
        out.append(float(law(fitted["params"], p.n, p.payload_bits, fitted["scale"])) - p.mean)
    return np.array(out)


def bootstrap(points: Sequence[GridPoint], resamples: int, rng: np.random.Generator, start: np.ndarray
              ) -> np.ndarray:
    """(resamples, 5) refitted parameters, each fitted to the grid with seeds resampled within each point and
    test examples resampled once for all runs (they share the test set); the scale stays the full fit's."""
    m = points[0].num_test
    out = []
    for _ in range(resamples):
        examples = rng.integers(0, m, m)
        means = []
        for p in points:
            seeds = rng.integers(0, len(p.errors), len(p.errors))
            if p.correct is not None and p.correct.shape[1] == m:
                errors = 1.0 - p.correct[seeds][:, examples].mean(axis=1)
            else:
                errors = rng.binomial(p.num_test, p.errors[seeds]) / p.num_test
            means.append(errors.mean())
        out.append(fit(points, means=np.array(means), start=start)["params"])
    return np.array(out)


@dataclasses.dataclass(frozen=True)
class StorageLaw:
    """The fitted law of one architecture, its bootstrap replicates and how well it predicts left-out points."""
    points: Tuple[GridPoint, ...]
    params: np.ndarray
    scale: Tuple[float, float]
    replicates: np.ndarray  # (resamples, 5)
    loo: np.ndarray  # per point: predicted minus observed error
    point_se: np.ndarray  # per point: the standard error of its mean error
    confidence: float

    def predict(self, n, bits, params: Optional[np.ndarray] = None):
        return law(self.params if params is None else params, n, bits, self.scale)

    def interval(self, values: np.ndarray) -> Tuple[float, float]:
        tail = 100 * (1 - self.confidence) / 2
        return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))

    def parameter(self, name: str) -> dict:
        k = PARAMS.index(name)
        return {"mean": float(self.params[k]), "ci": self.interval(self.replicates[:, k])}

    @property
    def loo_rms(self) -> float:
        return float(np.sqrt(np.mean(self.loo ** 2)))

    @property
    def noise_rms(self) -> float:
        return float(np.sqrt(np.mean(self.point_se ** 2)))

    @property
    def describes_data(self) -> bool:
        """The law predicts a left-out grid point about as well as that point is measured: leave-one-out RMS
        error at most twice the RMS standard error of a point's mean (a misfit no larger than the noise)."""
        return self.loo_rms <= 2.0 * self.noise_rms

    @property
    def optimal_bits_exponent(self) -> dict:
        """α/(α+β): how the best bits per image grows with the budget."""
        ratio = lambda p: p[2] / (p[2] + p[4])
        return {"mean": float(ratio(self.params)), "ci": self.interval(np.array([ratio(p) for p in self.replicates]))}


def fit_law(points: Sequence[GridPoint], *, resamples: int = 200, confidence: float = 0.95, seed: int = 0
            ) -> Optional[StorageLaw]:
    """The law with intervals, or None when the grid cannot identify it (fewer than 2 sizes or 2 rates, or
    fewer points than parameters + 1)."""
    points = tuple(points)
    if len({p.n for p in points}) < 2 or len({p.payload_bits for p in points}) < 2 or len(points) < len(PARAMS) + 1:
        return None
    fitted = fit(points)
    replicates = bootstrap(points, resamples, np.random.default_rng(seed), fitted["params"])
    return StorageLaw(points, fitted["params"], fitted["scale"], replicates, leave_one_out(points),
                      np.sqrt(point_variances(points)), confidence)


@dataclasses.dataclass(frozen=True)
class Choice:
    """A way to store the training set: n images at one level."""
    name: str
    level: object
    n: int
    payload_bits: float
    file_bytes: float
    error: dict  # {"mean", "ci"} predicted test error
    extrapolated: bool  # n outside the measured sizes

    @property
    def stored_bytes(self) -> float:
        return self.n * self.file_bytes


def _choice(law_: StorageLaw, name: str, point: GridPoint, n: int) -> Choice:
    sizes = [p.n for p in law_.points]
    values = np.array([law_.predict(n, point.payload_bits, r) for r in law_.replicates])
    return Choice(name, point.level, n, point.payload_bits, point.file_bytes,
                  {"mean": float(law_.predict(n, point.payload_bits)), "ci": law_.interval(values)},
                  not min(sizes) <= n <= max(sizes))


def level_costs(law_: StorageLaw) -> Dict[object, GridPoint]:
    """One grid point per level (its rates; the largest n's where a level was measured at several)."""
    out = {}
    for p in sorted(law_.points, key=lambda p: p.n):
        out[p.level] = p
    return out


def _fitting(costs: Dict[object, GridPoint], budget_bytes: float, available: int) -> List[Tuple[GridPoint, int]]:
    """(level's grid point, images that fit) for every level where at least one image fits the budget."""
    out = []
    for point in costs.values():
        n = min(available, int(budget_bytes // point.file_bytes))
        if n >= 1:
            out.append((point, n))
    return out


def answer_budget(law_: StorageLaw, budget_bytes: float, available: int, q_star=None) -> dict:
    """The (n, level) with the lowest predicted error whose training images fit in `budget_bytes` (n at most the
    `available` images), against the naive choices: every image at the lossless rate, as many as fit, and
    every image at q* (when given); differences with paired bootstrap intervals."""
    costs = level_costs(law_)
    candidates = [_choice(law_, "optimum", point, n) for point, n in _fitting(costs, budget_bytes, available)]
    if not candidates:
        return {"budget_bytes": budget_bytes, "best": None, "naive": [],
                "why": "the budget holds not one image at any measured level"}
    best = min(candidates, key=lambda c: c.error["mean"])
    naive = []
    if RAW in costs:
        point = costs[RAW]
        naive.append(_choice(law_, "lossless", point, min(available, int(budget_bytes // point.file_bytes))))
    if q_star is not None and q_star in costs and q_star != RAW:
        point = costs[q_star]
        naive.append(_choice(law_, "all at q*", point, min(available, int(budget_bytes // point.file_bytes))))
    comparisons = []
    for other in naive:
        if other.n < 1:
            comparisons.append({"against": other.name, "diff": None})
            continue
        diffs = np.array([law_.predict(other.n, other.payload_bits, r) - law_.predict(best.n, best.payload_bits, r)
                          for r in law_.replicates])
        comparisons.append({"against": other.name, "diff": {
            "mean": float(law_.predict(other.n, other.payload_bits) - law_.predict(best.n, best.payload_bits)),
            "ci": law_.interval(diffs)}})
    # how often the bootstrap's own optimum is the same level: the choice's stability
    same = np.mean([min(candidates, key=lambda c: law_.predict(c.n, c.payload_bits, r)).level == best.level
                    for r in law_.replicates])
    return {"budget_bytes": budget_bytes, "best": best, "naive": naive, "gain": comparisons,
            "same_level_share": float(same)}


def optimal_bits_curve(law_: StorageLaw, budgets: Sequence[float], available: int) -> List[dict]:
    """Per budget: the best measured level's bits per image, and the continuous optimum of the law
    (n = budget / file size, with the file size taken proportional to L at the grid's mean header ratio)."""
    costs = level_costs(law_)
    ratio = float(np.median([p.file_bytes * 8.0 / p.payload_bits for p in costs.values()]))
    grid = np.geomspace(min(p.payload_bits for p in costs.values()) / 4,
                        max(p.payload_bits for p in costs.values()) * 4, 400)
    out = []
    for budget in budgets:
        fitting = _fitting(costs, budget, available)
        best = min(fitting, key=lambda pn: law_.predict(pn[1], pn[0].payload_bits))[0] if fitting else None
        n = np.minimum(available, np.floor(budget * 8.0 / (grid * ratio)))
        ok = n >= 1
        errors = np.where(ok, law_.predict(np.maximum(n, 1), grid), np.inf)
        out.append({"budget_bytes": float(budget),
                    "best_measured_bits": None if best is None else best.payload_bits,
                    "continuous_bits": float(grid[int(np.argmin(errors))]) if ok.any() else None})
    return out
