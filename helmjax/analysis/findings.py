"""From a sweep directory to the answer: accuracy per level, the fitted curve, the sweet spot, noise bits.

`analyze(sweep_dir)` reads what the sweep runner wrote and returns an `Analysis`: plain numbers and
sentences-to-be, JSON-serialisable, with every problem of the input (missing runs, failed runs, no lossless
baseline, a single level) recorded in `warnings` instead of raised. Accuracies are fractions in [0, 1].
"""

import collections
import dataclasses
import itertools
import math
import pathlib
from typing import Dict, List, Optional

import numpy as np

from helmjax.analysis import bootstrap, curve
from helmjax.analysis.convergence import convergence_epoch
from helmjax.analysis.quantization_step import n_approx
from helmjax.analysis.sweep_files import (RAW, as_float, parse_level, read_config, read_examples, read_metrics,
                                          read_rows, read_test_correct)
from helmjax.run_names import run_name

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_TOLERANCE_POINTS = 1.0

LEVEL_LABELS = {"quality": "JPEG quality q (%)", "kbps": "MP3 bitrate (kbit/s)", "bits": "bit depth (bits per channel)"}
LEVEL_SYMBOLS = {"quality": "q", "kbps": "kbps", "bits": "bits"}

METHOD = {
    "accuracy": "test accuracy of the best-validation parameters of each run; mean and standard deviation over "
                "seeds of each (arch, level)",
    "bootstrap": "each replicate draws the test examples with replacement (one draw shared by all runs, so "
                 "level comparisons are paired over examples) and the seeds of each (arch, level) with "
                 "replacement (the seed part scaled by sqrt(S/(S-1)) to undo the bootstrap's small-sample bias); "
                 "fixed RNG seed, so the report is reproducible",
    "sweet_spot": "q* is the lowest level L whose accuracy is not significantly below the reference: the "
                  "one-sided {conf:.0%} bootstrap upper bound of acc(L) - acc(reference) is >= 0. "
                  "Its interval reruns the rule on each replicate (the replicate difference keeps the same margin) "
                  "and takes the {conf:.0%} percentile interval of the resulting q*",
    "tolerance": "simple rule (as in the sweep's printed table): the lowest level from which every higher level "
                 "has mean accuracy within {tol:g} accuracy points of the reference",
    "fit": "acc = c * ln(q) by least squares through the origin (the paper's upper-bound curve), and a hinge "
           "acc = plateau + slope * min(0, ln q - ln knee) with slope >= 0 (rising in log q up to the knee, flat "
           "after); both on the per-level means; R^2 against the mean; the knee's interval refits each replicate",
    "noise_bits": "H_approx is the mean coded rate at q*; noise bits = rate of the lossless data - H_approx",
    "n_approx": "JPEG: the IJG scale factor (5000/q for q < 50, else 200 - 2q, percent) and the mean scaled Annex K "
                "luminance and chrominance table entries at q*; bit depth: step 2^(8-b); MP3: bits per sample",
    "complexity": "at the largest model's q*, each smaller model's accuracy minus the largest's, paired bootstrap: "
                  "'beats' if the two-sided interval is above 0, 'matches' if the one-sided upper bound is >= 0, "
                  "else 'worse'",
    "convergence": "first epoch i with mean(val_acc[i:i+10]) > 0.99 * max(val_acc) (the original code's rule)",
}


@dataclasses.dataclass
class ArchResult:
    arch: str
    params: Optional[int]
    reference: object  # "raw" or the highest level when the sweep has no lossless baseline
    reference_mean: float
    levels: list  # numeric levels with done runs, ascending
    log_fit: Optional[dict] = None  # c * ln(q) over all levels
    log_fit_below_knee: Optional[dict] = None  # c * ln(q) over the levels up to the knee (the paper's claim)
    hinge_fit: Optional[dict] = None
    knee_ci: Optional[tuple] = None
    q_star: object = None  # the significance rule; None when every level is significantly below the reference
    q_star_ci: tuple = (None, None)
    q_star_tolerance: object = None
    q_star_tolerance_ci: tuple = (None, None)
    differences: list = dataclasses.field(default_factory=list)  # per level vs the reference
    accuracy_at_q_star: Optional[float] = None
    rate_at_q_star: Optional[float] = None  # H_approx
    noise_bits: Optional[float] = None
    n_approx_at_q_star: Optional[dict] = None
    n_approx_at_knee: Optional[dict] = None


@dataclasses.dataclass
class Analysis:
    sweep_dir: str
    experiment: str
    dataset: str
    quantizer: str
    level_name: str
    level_label: str
    rate_name: str  # "bpp" or "bits_per_second"
    rate_label: str
    raw_rate: Optional[float]
    levels: list  # numeric ascending, then "raw" when present
    archs: list  # ascending parameter count
    params: dict
    accuracy: list  # one row per (arch, level)
    rates: list  # one row per level: coded rate, N_approx
    per_arch: Dict[str, ArchResult]
    complexity: dict
    convergence: list  # one row per run
    runs: dict
    missing: list
    failed: list
    warnings: list
    method: dict
    bootstrap: dict

    def to_dict(self) -> dict:
        return _json_safe(dataclasses.asdict(self))

    def level_text(self, level) -> str:
        """How a level reads in sentences: "q=20", "32 kbps", "4 bits", "raw"."""
        if level is None:
            return "none"
        if level == RAW:
            return RAW
        value = f"{level:g}" if isinstance(level, float) else str(level)
        if self.level_name == "quality":
            return f"q={value}"
        return f"{value} {LEVEL_SYMBOLS.get(self.level_name, self.level_name)}"


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def _level_key(level):
    return (1, 0.0) if level == RAW else (0, float(level))


def _finite_mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


@dataclasses.dataclass
class _Run:
    name: str
    level: object
    arch: str
    seed: object
    row: dict
    test_acc: float
    val_acc: float
    correct: Optional[np.ndarray] = None
    column: Optional[int] = None  # column of this run in the replicate matrix


def _parse_runs(rows, level_name, warnings):
    runs, failed = [], []
    for row in rows:
        level = parse_level(row.get("level", row.get(level_name)))
        if level is None:
            warnings.append(f"run {row['run']}: unreadable level {row.get('level')!r}; skipped")
            continue
        arch = str(row.get("arch", "?"))
        run = _Run(row["run"], level, arch, row.get("seed"), row, as_float(row.get("test_acc")),
                   as_float(row.get("val_acc")))
        status = row.get("status", "done")
        if status != "done" or not math.isfinite(run.test_acc):
            reason = row.get("error") or (f"status {status!r}" if status != "done" else "test accuracy is NaN")
            failed.append({"run": run.name, "level": level, "arch": arch, "seed": run.seed, "error": str(reason)})
            continue
        runs.append(run)
    return runs, failed


def _missing_runs(config, rows, level_name, warnings) -> list:
    grid = config.get("grid") or {}
    if not grid:
        return []
    seen = {"level": [], "arch": [], "seed": []}
    present = set()
    for row in rows:
        key = (parse_level(row.get("level", row.get(level_name))), str(row.get("arch", "?")), row.get("seed"))
        present.add(key)
        for name, value in zip(("level", "arch", "seed"), key):
            seen[name].append(value)
    axes = {
        "level": grid.get("level", grid.get(level_name)),
        "arch": grid.get("arch"),
        "seed": grid.get("seed"),
    }
    for name in axes:
        if axes[name] is None:
            axes[name] = sorted(set(seen[name]), key=str)
        elif not isinstance(axes[name], (list, tuple)):
            axes[name] = [axes[name]]
    other = sorted(set(grid) - {"level", level_name, "arch", "seed"})
    if other:
        warnings.append(f"the grid also varies {', '.join(other)}: missing runs are listed over level, arch and "
                        f"seed only")
    expected = [(parse_level(l), str(a), s) for l, a, s in itertools.product(axes["level"], axes["arch"], axes["seed"])]
    missing = [{"level": l, "arch": a, "seed": s, "run": run_name(level_name, l, a, s)}
               for l, a, s in expected if (l, a, s) not in present]
    return sorted(missing, key=lambda m: (_level_key(m["level"]), m["arch"], str(m["seed"])))


def _attach_correctness(sweep_dir, runs, warnings) -> Optional[int]:
    """Loads test_correct.npy of each run; returns the shared test-set size (None if none could be used)."""
    for run in runs:
        run.correct = read_test_correct(sweep_dir / "runs" / run.name)
    lengths = collections.Counter(len(r.correct) for r in runs if r.correct is not None)
    if not lengths:
        if runs:
            warnings.append("no test_correct.npy files: test-example noise is approximated as binomial and level "
                            "comparisons are not paired")
        return None
    num_test = lengths.most_common(1)[0][0]
    odd = [r.name for r in runs if r.correct is not None and len(r.correct) != num_test]
    lacking = [r.name for r in runs if r.correct is None]
    for run in runs:
        if run.correct is not None and len(run.correct) != num_test:
            run.correct = None
    if odd:
        warnings.append(f"test_correct.npy of {len(odd)} run(s) has a length other than {num_test} ({_few(odd)}): "
                        f"treated as missing")
    if lacking:
        warnings.append(f"test_correct.npy is missing for {len(lacking)} run(s) ({_few(lacking)}): binomial "
                        f"approximation for their test noise")
    mismatched = [r.name for r in runs if r.correct is not None
                  and abs(float(r.correct.mean()) - r.test_acc) > 0.5 / num_test]
    if mismatched:
        warnings.append(f"test_acc disagrees with test_correct.npy for {len(mismatched)} run(s) ({_few(mismatched)}); "
                        f"test_acc is used for the point estimates")
    return num_test


def _few(names, limit=5) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _replicate_matrix(runs, num_test, rng, resamples) -> np.ndarray:
    """(B, R) replicate test accuracy of every done run."""
    out = np.empty((resamples, len(runs)), np.float32)
    for index, run in enumerate(runs):
        run.column = index
    with_correct = [r for r in runs if r.correct is not None]
    if with_correct:
        counts = bootstrap.example_counts(rng, num_test, resamples)
        block = bootstrap.run_replicates(np.stack([r.correct for r in with_correct]), counts)
        out[:, [r.column for r in with_correct]] = block
    for run in runs:
        if run.correct is None:
            size = as_float(run.row.get("num_test")) if run.row.get("num_test") else num_test
            if size and math.isfinite(size):
                out[:, run.column] = bootstrap.binomial_replicates(rng, run.test_acc, int(size), resamples)
            else:
                out[:, run.column] = run.test_acc
    return out


def _rate_settings(level_name, runs, examples):
    audio = level_name == "kbps" or (runs and all(r.row.get("bpp") is None for r in runs)
                                     and any(r.row.get("bits_per_second") is not None for r in runs))
    if audio:
        return "bits_per_second", "bits per second"
    return "bpp", "bits per pixel"


def analyze(sweep_dir, *, resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
            seed: int = 0) -> Analysis:
    """Analyses one sweep directory; problems of the input become `Analysis.warnings`, not exceptions."""
    sweep_dir = pathlib.Path(sweep_dir)
    warnings: List[str] = []
    rows = read_rows(sweep_dir, warnings)
    config = read_config(sweep_dir, warnings)
    first = rows[0] if rows else {}
    level_name = str(config.get("level_name") or first.get("level_name") or "quality")
    tolerance = tolerance_fraction(config.get("tolerance"))
    tolerance_points = 100.0 * tolerance
    rng = np.random.default_rng(seed)

    runs, failed = _parse_runs(rows, level_name, warnings)
    missing = _missing_runs(config, rows, level_name, warnings)
    if not rows:
        warnings.append("the results hold no runs yet")
    elif not runs:
        warnings.append("no run finished successfully: nothing to analyse")
    if failed:
        warnings.append(f"{len(failed)} run(s) failed and are left out: {_few(f['run'] for f in failed)}")
    if missing:
        warnings.append(f"{len(missing)} run(s) of the grid have no result yet (a partial sweep): "
                        f"{_few(m['run'] for m in missing)}")

    examples = read_examples(sweep_dir)
    rate_name, rate_label = _rate_settings(level_name, runs, examples)
    num_test = _attach_correctness(sweep_dir, runs, warnings)
    replicates = _replicate_matrix(runs, num_test, rng, resamples) if runs else np.zeros((resamples, 0))

    groups: Dict[tuple, List[_Run]] = collections.defaultdict(list)
    for run in runs:
        groups[(run.arch, run.level)].append(run)
    params = {}
    for run in runs:
        value = run.row.get("params")
        if value is not None and math.isfinite(as_float(value)):
            params[run.arch] = int(value)
    archs = sorted({r.arch for r in runs}, key=lambda a: (params.get(a, math.inf), a))
    all_levels = sorted({r.level for r in runs}, key=_level_key)

    single_seed = sorted({arch for (arch, _), members in groups.items() if len(members) == 1})
    if single_seed:
        warnings.append(f"only one seed for some levels of {', '.join(single_seed)}: their intervals cover "
                        f"test-example noise only, not training noise")

    group_replicates = {key: bootstrap.seed_resample(rng, replicates[:, [r.column for r in members]])
                        for key, members in sorted(groups.items(), key=lambda kv: (kv[0][0], _level_key(kv[0][1])))}
    group_means = {key: float(np.mean([r.test_acc for r in members])) for key, members in groups.items()}

    # Convergence per run.
    convergence_rows = []
    no_metrics = []
    for run in runs:
        metrics = read_metrics(sweep_dir / "runs" / run.name)
        if not metrics:
            no_metrics.append(run.name)
        epoch = convergence_epoch([as_float(m.get("val_acc")) for m in metrics]) if metrics else None
        convergence_rows.append({"run": run.name, "arch": run.arch, "level": run.level, "seed": run.seed,
                                 "convergence_epoch": epoch, "epochs": len(metrics) or run.row.get("epochs")})
    if no_metrics:
        warnings.append(f"metrics.jsonl is missing for {len(no_metrics)} run(s) ({_few(no_metrics)}): "
                        f"no convergence epoch for them")
    epochs_by_group = collections.defaultdict(list)
    for row in convergence_rows:
        if row["convergence_epoch"] is not None:
            epochs_by_group[(row["arch"], row["level"])].append(row["convergence_epoch"])

    # Coded rate per level (a property of the data, shared by every arch).
    rates = []
    for level in all_levels:
        members = [r for r in runs if r.level == level]
        rate = _finite_mean(as_float(r.row.get(rate_name)) for r in members)
        sample_rate = _finite_mean(as_float(r.row.get("sample_rate")) for r in members)
        rates.append({"level": level, "rate": rate, "sample_rate": sample_rate,
                      "n_approx": n_approx(level_name, level, bits_per_second=_finite_mean(
                          as_float(r.row.get("bits_per_second")) for r in members), sample_rate=sample_rate)})
    rate_of = {row["level"]: row["rate"] for row in rates}
    raw_rate = rate_of.get(RAW)
    if raw_rate is None and rate_name == "bpp":
        raw_rate = _raw_bpp_from_examples(examples)
        if raw_rate is not None:
            warnings.append(f"no lossless run to read the raw rate from: {raw_rate:g} bits per pixel assumed "
                            f"(8 bits x channels of the example images)")

    accuracy = []
    for arch in archs:
        for level in all_levels:
            members = groups.get((arch, level))
            if not members:
                continue
            values = [r.test_acc for r in members]
            epochs = epochs_by_group.get((arch, level), [])
            accuracy.append({
                "arch": arch, "level": level, "mean": float(np.mean(values)),
                "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "n": len(values),
                "ci": bootstrap.interval(group_replicates[(arch, level)], confidence),
                "val_mean": _finite_mean(r.val_acc for r in members),
                "convergence_epoch": float(np.mean(epochs)) if epochs else None,
                "train_seconds": _finite_mean(as_float(r.row.get("train_seconds")) for r in members),
                "rate": rate_of.get(level)})

    per_arch = {}
    no_raw = []
    for arch in archs:
        result = _analyze_arch(arch, params.get(arch), groups, group_means, group_replicates, level_name,
                               rates, raw_rate, tolerance, confidence, warnings)
        if result is not None:
            per_arch[arch] = result
            if result.reference != RAW:
                no_raw.append(arch)
    if no_raw:
        warnings.append(f"no lossless (raw) baseline for {', '.join(no_raw)}: the highest level is the reference, "
                        f"so q* means 'not significantly below the highest level'")

    complexity = _complexity(archs, params, per_arch, groups, group_means, group_replicates, all_levels,
                             confidence, warnings)

    return Analysis(
        sweep_dir=str(sweep_dir), experiment=str(config.get("experiment") or first.get("experiment") or sweep_dir.name),
        dataset=str(config.get("dataset") or first.get("dataset") or "?"),
        quantizer=_quantizer_name(config, first),
        level_name=level_name, level_label=LEVEL_LABELS.get(level_name, level_name),
        rate_name=rate_name, rate_label=rate_label, raw_rate=raw_rate,
        levels=all_levels, archs=archs, params=params, accuracy=accuracy, rates=rates, per_arch=per_arch,
        complexity=complexity, convergence=convergence_rows,
        runs={"results": len(rows), "done": len(runs), "failed": len(failed), "missing": len(missing),
              "expected": len(rows) + len(missing) if config.get("grid") else None},
        missing=missing, failed=failed, warnings=warnings,
        method={k: v.format(conf=confidence, tol=tolerance_points) for k, v in METHOD.items()},
        bootstrap={"resamples": resamples, "confidence": confidence, "seed": seed, "num_test": num_test,
                   "tolerance_points": tolerance_points})


def _quantizer_name(config: dict, first_row: dict) -> str:
    """sweep.json may hold the quantizer as a name or as its config block ({"name": ..., options})."""
    quantizer = config.get("quantizer_name") or config.get("quantizer") or first_row.get("quantizer") or "?"
    if isinstance(quantizer, dict):
        quantizer = quantizer.get("name", "?")
    return str(quantizer)


def tolerance_fraction(value) -> float:
    """sweep.json's tolerance as a fraction of accuracy: values below 1 are fractions (0.01 = one point), values
    of 1 or more are accuracy points (a tolerance of 100% or more would mean nothing)."""
    number = as_float(value)
    if not math.isfinite(number) or number < 0:
        return DEFAULT_TOLERANCE_POINTS / 100.0
    return number if number < 1.0 else number / 100.0


def _raw_bpp_from_examples(examples) -> Optional[float]:
    for images in examples.values():
        if images.ndim == 4:
            return 8.0 * images.shape[-1]
        if images.ndim == 3:
            return 8.0
    return None


def _analyze_arch(arch, params, groups, group_means, group_replicates, level_name, rates, raw_rate,
                  tolerance, confidence, warnings) -> Optional[ArchResult]:
    levels = sorted([level for (a, level) in groups if a == arch and level != RAW], key=float)
    has_raw = (arch, RAW) in groups
    if not levels:
        warnings.append(f"arch {arch}: only the lossless baseline finished, no compressed level to compare")
        return None
    reference = RAW if has_raw else levels[-1]
    candidates = levels if has_raw else levels[:-1]
    reference_replicates = group_replicates[(arch, reference)]
    reference_mean = group_means[(arch, reference)]
    result = ArchResult(arch=arch, params=params, reference=reference, reference_mean=reference_mean, levels=levels)

    diff_point, diff_replicates = {}, {}
    for level in candidates:
        diff_point[level] = group_means[(arch, level)] - reference_mean
        diff_replicates[level] = group_replicates[(arch, level)] - reference_replicates
    sweet = bootstrap.significance_sweet_spot(candidates, diff_point, diff_replicates, confidence)
    means = {level: group_means[(arch, level)] for level in candidates}
    if candidates:
        # In an interval, "no compressed level passes" means the sweet spot is the reference itself.
        or_reference = lambda ci: tuple(reference if level is None else level for level in ci)
        result.q_star, result.q_star_ci = sweet["q_star"], or_reference(sweet["ci"])
        result.q_star_tolerance = bootstrap.tolerance_sweet_spot(candidates, means, reference_mean, tolerance)
        result.q_star_tolerance_ci = or_reference(bootstrap.tolerance_sweet_spot_ci(
            candidates, {level: group_replicates[(arch, level)] for level in candidates}, reference_replicates,
            tolerance, confidence))
        if result.q_star is None:
            warnings.append(f"arch {arch}: every compressed level is significantly below the reference "
                            f"({reference}): no sweet spot within the sweep")
    else:
        # A single level and no raw run: it is its own reference.
        result.q_star = result.q_star_tolerance = reference
        result.q_star_ci = result.q_star_tolerance_ci = (reference, reference)
        warnings.append(f"arch {arch}: a single level and no lossless baseline: nothing to compare, so q* is that "
                        f"level by definition")
    for level in candidates:
        low, high = bootstrap.interval(diff_replicates[level], confidence)
        upper = sweet["upper_bounds"][level]
        result.differences.append({"level": level, "diff": diff_point[level], "ci": (low, high),
                                   "upper_bound": upper, "not_below": bool(upper >= 0.0)})

    failing_above = [d for d in result.differences
                     if result.q_star is not None and d["level"] > result.q_star and not d["not_below"]]
    if failing_above:
        worst = min(d["diff"] for d in failing_above)
        warnings.append(f"arch {arch}: {len(failing_above)} level(s) above q*={result.q_star} are significantly "
                        f"below the reference (by up to {-100 * worst:.2f} points): a noisy or sloping plateau; "
                        f"more seeds would settle it")

    level_means = [group_means[(arch, level)] for level in levels]
    log_fit = curve.fit_log(levels, level_means)
    result.log_fit = dataclasses.asdict(log_fit) if log_fit else None
    hinge = curve.fit_hinge(levels, level_means)
    if hinge is not None:
        result.hinge_fit = dataclasses.asdict(hinge)
        rising = [(level, mean) for level, mean in zip(levels, level_means) if level <= hinge.knee]
        if len(rising) >= 2:
            below_knee = curve.fit_log(*zip(*rising))
            result.log_fit_below_knee = dataclasses.asdict(below_knee) if below_knee else None
        stacked = np.stack([group_replicates[(arch, level)] for level in levels], axis=1)
        result.knee_ci = bootstrap.knee_interval(curve.fit_hinge_batch(levels, stacked)["knee"], confidence)
        if hinge.shape == "flat":
            warnings.append(f"arch {arch}: accuracy is flat across the sweep (the fit drops {100 * hinge.drop:.2f} "
                            f"points): no knee within the levels tried; try lower levels")
        elif hinge.shape == "rising":
            warnings.append(f"arch {arch}: accuracy still rises at the highest level: no plateau within the sweep; "
                            f"try higher levels")
    elif len(levels) < 3:
        warnings.append(f"arch {arch}: {len(levels)} compressed level(s): too few to fit the knee (needs 3)")

    rate_of = {row["level"]: row for row in rates}
    if result.q_star is not None:
        result.accuracy_at_q_star = group_means[(arch, result.q_star)]
        row = rate_of.get(result.q_star, {})
        result.rate_at_q_star = row.get("rate")
        result.n_approx_at_q_star = row.get("n_approx")
        if result.rate_at_q_star is not None and raw_rate is not None:
            result.noise_bits = raw_rate - result.rate_at_q_star
    if hinge is not None and hinge.shape == "knee":
        knee_level = hinge.knee if level_name == "kbps" else int(round(hinge.knee))
        nearest = min(levels, key=lambda level: abs(math.log(level) - math.log(hinge.knee)))
        result.n_approx_at_knee = n_approx(level_name, knee_level, bits_per_second=1000.0 * hinge.knee
                                           if level_name == "kbps" else None,
                                           sample_rate=rate_of.get(nearest, {}).get("sample_rate"))
    return result


def _complexity(archs, params, per_arch, groups, group_means, group_replicates, all_levels, confidence,
                warnings) -> dict:
    """Accuracy vs parameter count: does a smaller model match or beat the largest (the paper's Figure 4)?"""
    sized = [arch for arch in archs if arch in params]
    if len(sized) < 2:
        return {"largest": None, "level": None, "comparisons": [], "per_level": []}
    largest = max(sized, key=lambda a: (params[a], a))

    def compare(arch, level):
        diffs = group_replicates[(arch, level)] - group_replicates[(largest, level)]
        low, high = bootstrap.interval(diffs, confidence)
        upper = bootstrap.upper_bound(diffs, confidence)
        verdict = "beats" if low > 0 else "matches" if upper >= 0 else "worse"
        return {"arch": arch, "params": params[arch], "level": level,
                "accuracy": group_means[(arch, level)], "largest_accuracy": group_means[(largest, level)],
                "diff": group_means[(arch, level)] - group_means[(largest, level)], "ci": (low, high),
                "upper_bound": upper, "verdict": verdict}

    per_level = []
    for level in all_levels:
        if (largest, level) not in groups:
            continue
        per_level += [compare(arch, level) for arch in sized if arch != largest and (arch, level) in groups]
    largest_result = per_arch.get(largest)
    level = None
    if largest_result is not None:
        level = largest_result.q_star if largest_result.q_star is not None else largest_result.reference
    comparisons = [row for row in per_level if row["level"] == level]
    if level is not None and not comparisons:
        warnings.append(f"no smaller model has results at the largest model's q* ({level}): model sizes not compared")
    return {"largest": largest, "level": level, "comparisons": comparisons, "per_level": per_level}
