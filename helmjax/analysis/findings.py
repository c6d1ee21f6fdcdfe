"""From a sweep directory to the answer: accuracy per level, the sweet spot, the knee, true rates, noise bits.

`analyze(sweep_dir)` reads what the sweep runner wrote and returns an `Analysis`: plain numbers with their
intervals, JSON-serialisable, with every problem of the input (missing, failed or suspicious runs, no lossless
baseline, one seed) recorded in `warnings` instead of raised. Accuracies are fractions in [0, 1]; the margin δ
is kept in accuracy points in the config and as a fraction here.
"""

import collections
import dataclasses
import itertools
import math
import pathlib
from typing import Dict, List, Optional

import numpy as np

from helmjax.analysis import bootstrap, contrasts, curve, noninferiority, rate_intervals
from helmjax.analysis.contrasts import Group
from helmjax.analysis.convergence import FRACTION as CONVERGENCE_FRACTION, epochs_to_reach
from helmjax.analysis.levels import LevelScale, quantizer_record
from helmjax.analysis.sweep_files import as_float, read_config, read_level_bits, read_rows
from helmjax.sweeps import noise_record
from helmjax.sweeps.layout import RAW, read_metrics, read_test_correct
from helmjax.errors import UserError

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MARGIN_POINTS = 1.0
DEFAULT_TOLERANCE_POINTS = 1.0
OUTLIER_SDS = 3.0  # a reference run this many pooled seed sds from the others' median is flagged

METHOD = {
    "accuracy": "test accuracy of the best-validation parameters of each run (the epoch is chosen on a validation "
                "split of train, never on test); mean over the seeds of each (arch, level)",
    "intervals": "every accuracy difference has a {conf:.0%} interval covering two sources of noise: test examples "
                 "(bootstrap over examples, one draw shared by all runs, so levels are paired over examples) and "
                 "training seeds (sample variance of the runs, paired over shared seeds; a level with one seed "
                 "borrows its arch's pooled seed variance), combined in a Student t interval with Welch-Satterthwaite "
                 "degrees of freedom; with one seed everywhere only test-example noise is covered",
    "sweet_spot": "q* by non-inferiority with margin δ = {margin:g} accuracy points: a fixed-sequence test from the "
                  "least compressed level down; a level passes when the one-sided {conf:.0%} lower confidence bound of "
                  "acc(level) - acc(reference) is above -δ; the sequence stops at the first level that fails and q* "
                  "is the last that passed (familywise error at most {alpha:.0%}, no correction needed)",
    "tolerance": "secondary, simple rule (as in the sweep's printed table): the most compressed level from which every "
                 "less compressed level has mean accuracy within {tol:g} accuracy points of the reference; no interval",
    "knee": "an isotonic fit of the per-level mean accuracies, non-decreasing from the most to the least compressed "
            "level (the order the quantizer's spec gives; named levels by rank), interpolated linearly in ln(level); "
            "the knee is where it has dropped δ below its plateau (its mean over the levels within 2δ of its top). "
            "Called a knee when at least {conf:.0%} of bootstrap replicates (examples resampled, seed noise drawn from a t "
            "distribution) drop by more than δ; otherwise there is no drop larger than δ over the sampled range and "
            "the knee is censored at or below the most compressed level. Interval: percentiles of the replicates' "
            "knees",
    "log_fit": "the paper's curve acc = a + c ln(level), least squares on the per-level means, reported with its "
               "R² and c's t interval (residual-based, the level means as observations); 'does not fit' below R² = {min_r2:g}",
    "rates": "primary rate: the entropy-coded payload (JPEG scan data) per pixel; headers and tables are reported "
             "separately; the lossless reference is a real lossless codec on the same items; intervals by "
             "bootstrap over items",
    "noise_bits": "lossless rate minus payload rate at q*, paired item by item, bootstrap interval over items. "
                  "These are the bits the classifier did not need; whether they are noise in the data is a separate "
                  "claim (see VALIDATION.md)",
    "n_approx": "the quantization step at each level as the quantizer's spec gives it (recorded in sweep.json with "
                "the quantizer's version); an audio codec without one shows the bits per sample of its measured rate "
                "instead; at the knee, the values at the two sampled levels it lies between",
    "model_size": "difference in differences: (acc(arch, L) - acc(largest, L)) - (acc(arch, raw) - acc(largest, "
                  "raw)), what compression costs a smaller model beyond what it costs the largest; two-sided tests "
                  "with a Holm correction over the models compared at each level",
    "convergence": "epochs a run needs to reach {conv:.0%} of the lossless run's best validation accuracy (same "
                   "arch, same seed when there is one); a run that never reaches it is counted as not reached",
}


@dataclasses.dataclass
class ArchResult:
    arch: str
    params: Optional[int]
    reference: object  # "raw" or the least compressed level when the sweep has no lossless baseline
    reference_mean: float
    levels: list  # levels with done runs, most compression first (the spec's order)
    seeds_covered: bool = True  # training-seed noise is part of every comparison's interval
    q_star: object = None  # non-inferiority; None when the least compressed level already fails
    tests: list = dataclasses.field(default_factory=list)  # per level, ascending: diff, ci, lower bound, passed
    accuracy_at_q_star: Optional[float] = None
    q_star_tolerance: object = None  # the simple rule, secondary
    knee: Optional[dict] = None  # curve.KneeCall as a dict
    log_fit: Optional[dict] = None  # a + c ln(level), with r2 and "fits"
    rate_at_q_star: Optional[dict] = None  # {"mean", "ci"} of the primary rate
    noise_bits: Optional[dict] = None  # {"mean", "ci"}: lossless - payload at q*
    n_approx_at_q_star: Optional[dict] = None
    n_approx_at_knee: Optional[list] = None  # [{"level", "n_approx"}] at the sampled levels around the knee


@dataclasses.dataclass
class Analysis:
    sweep_dir: str
    experiment: str
    dataset: str
    quantizer: str
    quantizer_spec: dict  # the quantizer's record (`QuantizerSpec.describe`): what its levels mean
    level_name: str
    level_label: str
    rate_name: str  # "bpp" or "bits_per_second"
    rate_label: str
    storage_rate: Optional[float]  # raw storage size (8 bits x channels; 16 bits x sample rate)
    lossless: Optional[dict]  # {"mean", "ci", "codec"} of the lossless reference rate
    levels: list  # most compression first, then "raw" when present
    archs: list  # ascending parameter count
    params: dict
    accuracy: list  # one row per (arch, level)
    rates: list  # one row per level: file, payload, header rates with intervals, N_approx
    per_arch: Dict[str, ArchResult]
    model_size: dict
    convergence: list  # one row per run
    runs: dict
    missing: list
    failed: list
    warnings: list
    method: dict
    settings: dict  # margin, confidence, resamples, seed, tolerance, num_test
    noise: Optional[dict] = None  # the data's noise measured without a classifier (`sweeps.noise_record`)

    def to_dict(self) -> dict:
        return _json_safe(dataclasses.asdict(self))

    @property
    def exploratory(self) -> bool:
        """Some comparison covers test-example noise only (one seed and nothing to borrow)."""
        return any(not r.seeds_covered for r in self.per_arch.values())

    @property
    def scale(self) -> LevelScale:
        return LevelScale(self.quantizer_spec)

    def level_text(self, level) -> str:
        """How a level reads in sentences: "q=20", "32 kbps", "4 bits", "raw"."""
        return self.scale.text(level)

    def position(self, level) -> float:
        """A level's place on the analysis' axis (ascending = less compression)."""
        return self.scale.position(level)


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


def _finite_mean(values) -> Optional[float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _few(names, limit=5) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


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


def _parse_runs(rows, scale: LevelScale, warnings):
    runs, failed = [], []
    for row in rows:
        level = scale.parse(row.get("level", row.get(scale.level_name)))
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


def _missing_runs(config, rows, scale: LevelScale, warnings) -> list:
    grid = config.get("grid") or {}
    if not grid:
        return []
    seen = {"level": [], "arch": [], "seed": []}
    present = set()
    for row in rows:
        key = (scale.parse(row.get("level", row.get(scale.level_name))), str(row.get("arch", "?")), row.get("seed"))
        present.add(key)
        for name, value in zip(("level", "arch", "seed"), key):
            seen[name].append(value)
    axes = {"level": grid.get("level", grid.get(scale.level_name)), "arch": grid.get("arch"), "seed": grid.get("seed")}
    for name in axes:
        if axes[name] is None:
            axes[name] = sorted(set(seen[name]), key=str)
        elif not isinstance(axes[name], (list, tuple)):
            axes[name] = [axes[name]]
    other = sorted(set(grid) - {"level", scale.level_name, "arch", "seed", "reference_seed"})
    if other:
        warnings.append(f"the grid also varies {', '.join(other)}: missing runs are listed over level, arch and "
                        f"seed only")
    extra = [s for s in (grid.get("reference_seed") or []) if s not in axes["seed"]]
    expected = [(scale.parse(l), str(a), s) for l, a, s in itertools.product(axes["level"], axes["arch"], axes["seed"])]
    if RAW in [scale.parse(l) for l in axes["level"]]:
        expected += [(RAW, str(a), s) for a, s in itertools.product(axes["arch"], extra)]
    missing = [{"level": l, "arch": a, "seed": s, "run": scale.run_name(l, a, s)}
               for l, a, s in expected if l is not None and (l, a, s) not in present]
    return sorted(missing, key=lambda m: (scale.sort_key(m["level"]), m["arch"], str(m["seed"])))


def _attach_correctness(sweep_dir, runs, warnings) -> Optional[int]:
    """Loads test_correct.npy of each run; returns the shared test-set size (None if none could be used)."""
    for run in runs:
        run.correct = read_test_correct(sweep_dir / "runs" / run.name)
    lengths = collections.Counter(len(r.correct) for r in runs if r.correct is not None)
    if not lengths:
        if runs:
            warnings.append("no test_correct.npy files: test-example noise is approximated as binomial and level "
                            "comparisons are not paired over examples")
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


def _replicate_matrix(runs, num_test, rng, resamples) -> np.ndarray:
    """(B, R) example-bootstrap test accuracy of every done run (one example draw shared by all)."""
    out = np.empty((resamples, len(runs)), np.float32)
    for index, run in enumerate(runs):
        run.column = index
    with_correct = [r for r in runs if r.correct is not None]
    if with_correct:
        counts = bootstrap.example_counts(rng, num_test, resamples)
        out[:, [r.column for r in with_correct]] = bootstrap.run_replicates(
            np.stack([r.correct for r in with_correct]), counts)
    for run in runs:
        if run.correct is None:
            size = as_float(run.row.get("num_test")) if run.row.get("num_test") else num_test
            if size and math.isfinite(size):
                out[:, run.column] = bootstrap.binomial_replicates(rng, run.test_acc, int(size), resamples)
            else:
                out[:, run.column] = run.test_acc
    # Centre each run's replicates on its reported accuracy (the draws' own mean differs by bootstrap noise).
    for run in runs:
        out[:, run.column] += np.float32(run.test_acc - float(out[:, run.column].mean()))
    return out


def make_settings(config: dict, resamples, confidence, margin, seed) -> dict:
    block = config.get("analysis") if isinstance(config.get("analysis"), dict) else {}
    pick = lambda given, key, default: given if given is not None else block.get(key, default)
    confidence = float(pick(confidence, "confidence", DEFAULT_CONFIDENCE))
    margin_points = float(pick(margin, "margin", DEFAULT_MARGIN_POINTS))
    resamples = int(pick(resamples, "resamples", DEFAULT_RESAMPLES))
    if not 0.5 < confidence < 1.0:
        raise UserError(f"analysis.confidence={confidence}: use a value in (0.5, 1), e.g. 0.95")
    if not 0.0 <= margin_points < 100.0:
        raise UserError(f"analysis.margin={margin_points}: the margin is in accuracy points, e.g. 1.0")
    return {"margin_points": margin_points, "margin": margin_points / 100.0, "confidence": confidence,
            "resamples": resamples, "seed": seed,
            "tolerance_points": 100.0 * tolerance_fraction(config.get("tolerance"))}


def analyze(sweep_dir, *, resamples: Optional[int] = None, confidence: Optional[float] = None,
            margin: Optional[float] = None, seed: int = 0) -> Analysis:
    """Analyses one sweep directory. Settings not given come from sweep.json's `analysis` block (margin in
    accuracy points, confidence), then the defaults; problems of the input become warnings, not exceptions."""
    sweep_dir = pathlib.Path(sweep_dir)
    warnings: List[str] = []
    rows = read_rows(sweep_dir, warnings)
    config = read_config(sweep_dir, warnings)
    settings = make_settings(config, resamples, confidence, margin, seed)
    first = rows[0] if rows else {}
    scale = LevelScale(quantizer_record(config, rows, warnings))
    rng = np.random.default_rng(seed)

    runs, failed = _parse_runs(rows, scale, warnings)
    missing = _missing_runs(config, rows, scale, warnings)
    if not rows:
        warnings.append("the results hold no runs yet")
    elif not runs:
        warnings.append("no run finished successfully: nothing to analyse")
    if failed:
        warnings.append(f"{len(failed)} run(s) failed and are left out: {_few(f['run'] for f in failed)}")
    if missing:
        warnings.append(f"{len(missing)} run(s) of the grid have no result yet (a partial sweep): "
                        f"{_few(m['run'] for m in missing)}")

    num_test = _attach_correctness(sweep_dir, runs, warnings)
    settings["num_test"] = num_test
    replicates = _replicate_matrix(runs, num_test, rng, settings["resamples"]) if runs else None

    members: Dict[tuple, List[_Run]] = collections.defaultdict(list)
    for run in runs:
        members[(run.arch, run.level)].append(run)
    params = {}
    for run in runs:
        value = run.row.get("params")
        if value is not None and math.isfinite(as_float(value)):
            params[run.arch] = int(value)
    archs = sorted({r.arch for r in runs}, key=lambda a: (params.get(a, math.inf), a))
    all_levels = scale.ordered({r.level for r in runs})
    groups = _groups(members, replicates, archs)

    level_rates, storage_rate, lossless, item_rates = _rates(sweep_dir, runs, all_levels, scale, rng, settings,
                                                             warnings)
    accuracy = []
    order = lambda item: (archs.index(item[0][0]), scale.sort_key(item[0][1]))
    for (arch, level), group in sorted(groups.items(), key=order):
        accuracy.append({"arch": arch, "level": level, "mean": group.mean, "n": group.size,
                         "std": float(np.std(group.acc, ddof=1)) if group.size > 1 else None,
                         "ci": contrasts.contrast([(1.0, group)]).interval(settings["confidence"]),
                         "val_mean": _finite_mean(r.val_acc for r in members[(arch, level)]),
                         "train_seconds": _finite_mean(as_float(r.row.get("train_seconds"))
                                                       for r in members[(arch, level)])})

    per_arch, no_raw = {}, []
    for arch in archs:
        result = analyze_arch(arch, params.get(arch), groups, scale, level_rates, lossless, settings, rng,
                              warnings, item_rates)
        if result is not None:
            per_arch[arch] = result
            if result.reference != RAW:
                no_raw.append(arch)
    if no_raw:
        warnings.append(f"no lossless (raw) baseline for {', '.join(no_raw)}: the least compressed level is the "
                        f"reference, so q* means 'not worse than the least compressed level by more than δ'")
    single = sorted(arch for arch, result in per_arch.items() if not result.seeds_covered)
    if single:
        warnings.append(f"one seed per level for {', '.join(single)}: intervals cover test-example noise only, not "
                        f"training noise, so the result is exploratory; run 2+ seeds (grid.seed) for a measurement")

    convergence, convergence_by_group = _convergence(sweep_dir, runs, warnings)
    for row in accuracy:
        row.update(convergence_by_group.get((row["arch"], row["level"]), {"convergence_epochs": None,
                                                                          "converged": 0}))
    model_size = _model_size(archs, params, per_arch, groups, scale, settings["confidence"], warnings)

    confidence = settings["confidence"]
    return Analysis(
        sweep_dir=str(sweep_dir), experiment=str(config.get("experiment") or config.get("name")
                                                 or first.get("experiment") or sweep_dir.name),
        dataset=str(config.get("dataset") or first.get("dataset") or "?"),
        quantizer=str(scale.record.get("name") or "?"), quantizer_spec=scale.record,
        level_name=scale.level_name, level_label=scale.label,
        rate_name=scale.rate_name, rate_label=scale.rate_label, storage_rate=storage_rate, lossless=lossless,
        levels=all_levels, archs=archs, params=params, accuracy=accuracy, rates=level_rates, per_arch=per_arch,
        model_size=model_size, convergence=convergence,
        runs={"results": len(rows), "done": len(runs), "failed": len(failed), "missing": len(missing),
              "expected": len(rows) + len(missing) if config.get("grid") else None},
        missing=missing, failed=failed, warnings=warnings,
        method={k: v.format(conf=confidence, alpha=1 - confidence, margin=settings["margin_points"],
                            tol=settings["tolerance_points"], min_r2=curve.LOG_FIT_MIN_R2,
                            conv=CONVERGENCE_FRACTION) for k, v in METHOD.items()},
        settings=settings, noise=noise_record.read(sweep_dir))


def _groups(members, replicates, archs) -> Dict[tuple, Group]:
    """One `Group` per (arch, level); single-seed groups may borrow their arch's pooled seed variance."""
    groups = {}
    for key, runs in members.items():
        runs = sorted(runs, key=lambda r: str(r.seed))
        correct = np.stack([r.correct for r in runs]) if all(r.correct is not None for r in runs) else None
        groups[key] = Group(seeds=tuple(r.seed for r in runs), acc=np.array([r.test_acc for r in runs]),
                            replicates=replicates[:, [r.column for r in runs]].astype(np.float64), correct=correct)
    for arch in archs:
        contrasts.share_pooled_variance([g for (a, _), g in groups.items() if a == arch])
    return groups


def tolerance_fraction(value) -> float:
    """sweep.json's tolerance as a fraction of accuracy: values below 1 are fractions (0.01 = one point), values
    of 1 or more are accuracy points (a tolerance of 100% or more would mean nothing)."""
    number = as_float(value)
    if not math.isfinite(number) or number < 0:
        return DEFAULT_TOLERANCE_POINTS / 100.0
    return number if number < 1.0 else number / 100.0


@dataclasses.dataclass
class _ItemRates:
    """Per-item rates, already in the rate's unit, for the paired bootstrap of the noise bits."""
    primary: dict = dataclasses.field(default_factory=dict)  # level -> (N,) primary rate per item
    lossless: Optional[np.ndarray] = None  # (M,) lossless rate per item
    index: Optional[np.ndarray] = None  # positions of the M lossless items among the N (None: all, in order)


def _rates(sweep_dir, runs, levels, scale: LevelScale, rng, settings, warnings):
    """(per-level rate rows, storage rate, lossless rate, per-item rates), with intervals over items where the
    sweep saved per-item bits."""
    rate_name = scale.rate_name
    bits = read_level_bits(sweep_dir, scale.level_of_tag)
    resamples, confidence = settings["resamples"], settings["confidence"]
    interval = lambda values: rate_intervals.mean_with_interval(rng, values, resamples, confidence)
    no_interval = lambda mean: {"mean": mean, "ci": (None, None)}
    rows_of = lambda level: [r.row for r in runs if r.level == level]
    row_mean = lambda level, key: _finite_mean(as_float(row.get(key)) for row in rows_of(level))
    items = _ItemRates()
    units = None  # bits per unit of the rate: pixels (or seconds) per item, the same at every level
    out, no_items = [], []
    for level in [level for level in levels if level != RAW]:
        file_rate, payload_rate = row_mean(level, rate_name), row_mean(level, f"{rate_name}_payload")
        row = {"level": level, "file": no_interval(file_rate), "payload": no_interval(payload_rate),
               "header": no_interval(None if None in (file_rate, payload_rate) else file_rate - payload_rate),
               "sample_rate": row_mean(level, "sample_rate")}
        level_bits = bits.get(level)
        if level_bits is not None and file_rate:
            units = float(np.mean(level_bits["file"])) / file_rate
            row["file"] = interval(level_bits["file"] / units)
            if np.all(np.isfinite(level_bits["payload"])):
                row["payload"] = interval(level_bits["payload"] / units)
                row["header"] = interval((level_bits["file"] - level_bits["payload"]) / units)
        else:
            no_items.append(level)
        row["primary"] = "payload" if row["payload"]["mean"] is not None else "file"
        if level_bits is not None and units:
            items.primary[level] = level_bits[row["primary"]] / units
        row["n_approx"] = scale.step(level) or _bits_per_sample(row_mean(level, "bits_per_second"), row["sample_rate"])
        out.append(row)
    if no_items and out:
        warnings.append(f"per-item bits are not saved for {len(no_items)} level(s): their rates carry no interval")
    if any(row["primary"] == "file" for row in out):
        warnings.append("the coded payload is not separable for some levels: their rate is the whole file, headers "
                        "included")

    all_rows = [r.row for r in runs]
    storage_rate = _finite_mean(as_float(row.get(rate_name)) for row in rows_of(RAW)) if RAW in levels else None
    raw_bits = bits.get(RAW)
    codec = raw_bits["codec"] if raw_bits else next((r["lossless_codec"] for r in all_rows
                                                     if r.get("lossless_codec")), None)
    lossless = None
    if raw_bits is not None and units:
        items.lossless, items.index = raw_bits["lossless"] / units, raw_bits.get("index")
        lossless = dict(interval(items.lossless), codec=codec)
    else:
        mean = _finite_mean(as_float(row.get(f"{rate_name}_lossless")) for row in all_rows)
        if mean is not None:
            lossless = dict(no_interval(mean), codec=codec)
    if lossless is None:
        warnings.append("no lossless rate was measured for this sweep (an older sweep, or no lossless codec): noise "
                        "bits are not computed; the raw storage size is not a measure of information")
    return out, storage_rate, lossless, items


def _bits_per_sample(bits_per_second, sample_rate) -> Optional[dict]:
    """What stands in for N_approx where a codec has no quantization step: the bits per sample of its measured
    rate (audio only: images have no bits per second)."""
    if bits_per_second is None or not sample_rate or not math.isfinite(bits_per_second):
        return None
    return {"bits_per_sample": float(bits_per_second) / float(sample_rate), "sample_rate": int(sample_rate)}


def _noise_bits(rate_row, lossless, items: _ItemRates, rng, settings) -> Optional[dict]:
    """Lossless minus primary rate at one level, paired per item, with a bootstrap interval over items."""
    if lossless is None or rate_row is None:
        return None
    coded = items.primary.get(rate_row["level"])
    if items.lossless is not None and coded is not None:
        diff = rate_intervals.paired_difference(items.lossless, coded, items.index)
        return rate_intervals.mean_with_interval(rng, diff, settings["resamples"], settings["confidence"])
    primary = rate_row[rate_row["primary"]]["mean"]
    return None if primary is None else {"mean": lossless["mean"] - primary, "ci": (None, None)}


def analyze_arch(arch, params, groups, scale: LevelScale, level_rates, lossless, settings, rng, warnings,
                 item_rates: Optional[_ItemRates] = None) -> Optional[ArchResult]:
    """One arch's answer from its groups (what `analyze` calls per arch, and the calibration on simulations)."""
    margin, confidence = settings["margin"], settings["confidence"]
    levels = scale.ordered(level for (a, level) in groups if a == arch and level != RAW)
    if not levels:
        warnings.append(f"arch {arch}: only the lossless baseline finished, no compressed level to compare")
        return None
    has_raw = (arch, RAW) in groups
    reference = RAW if has_raw else levels[-1]
    candidates = levels if has_raw else levels[:-1]
    ref = groups[(arch, reference)]
    result = ArchResult(arch=arch, params=params, reference=reference, reference_mean=ref.mean, levels=levels)

    estimates = {level: contrasts.contrast([(1.0, groups[(arch, level)]), (-1.0, ref)]) for level in candidates}
    result.seeds_covered = all(e.seeds_covered for e in estimates.values()) if estimates else ref.size > 1
    if candidates:
        result.q_star, tests = noninferiority.fixed_sequence(candidates, estimates, margin, confidence)
        result.tests = [dataclasses.asdict(t) for t in tests]
        means = {level: groups[(arch, level)].mean for level in candidates}
        result.q_star_tolerance = bootstrap.lowest_of_top_run(
            candidates, [means[level] >= ref.mean - settings["tolerance_points"] / 100.0 for level in candidates])
        if result.q_star is None:
            warnings.append(f"arch {arch}: the least compressed level is already worse than the reference by more than "
                            f"δ={settings['margin_points']:g} points, or not shown otherwise: no sweet spot in the "
                            f"sweep")
    else:
        result.q_star = result.q_star_tolerance = reference
        warnings.append(f"arch {arch}: a single level and no lossless baseline: nothing to compare, so q* is that "
                        f"level by definition")
    warnings.extend(_reference_flags(arch, groups, reference, levels, margin, confidence))

    level_means = [groups[(arch, level)].mean for level in levels]
    log_fit = curve.fit_log([scale.log_value(level) for level in levels], level_means)
    if log_fit is not None:
        result.log_fit = dict(dataclasses.asdict(log_fit), fits=log_fit.fits,
                              c_ci=curve.slope_interval(log_fit, confidence))
    if len(levels) >= 2:
        curve_replicates = np.stack([contrasts.level_replicates(groups[(arch, level)], rng) for level in levels], axis=1)
        positions = [scale.position(level) for level in levels]
        call = curve.knee_call(positions, level_means, curve_replicates, margin, confidence,
                               weights=[groups[(arch, level)].size for level in levels])
        # Back from axis positions to levels: ci and bracket read (more compression side, less compression side).
        level_of = dict(zip(positions, levels))
        result.knee = dict(dataclasses.asdict(call), knee=scale.level_at(call.knee),
                           ci=tuple(scale.level_at(p) for p in call.ci),
                           bracket=tuple(None if p is None else level_of[p] for p in call.bracket))
        if call.shape == "flat":
            warnings.append(f"arch {arch}: no drop larger than δ={settings['margin_points']:g} points over the "
                            f"sampled levels (in {call.drop_share:.0%} of replicates, {confidence:.0%} needed): the "
                            f"knee is at or below {scale.text(levels[0])}; try levels with more compression")
    else:
        warnings.append(f"arch {arch}: one compressed level: too few for a knee (needs 2)")

    rate_of = {row["level"]: row for row in level_rates}
    if result.q_star is not None and result.q_star != RAW:
        result.accuracy_at_q_star = groups[(arch, result.q_star)].mean
        row = rate_of.get(result.q_star)
        if row is not None:
            result.rate_at_q_star = row[row["primary"]]
            result.n_approx_at_q_star = row.get("n_approx")
            result.noise_bits = _noise_bits(row, lossless, item_rates or _ItemRates(), rng, settings)
    if result.knee and result.knee["shape"] == "knee":
        result.n_approx_at_knee = [{"level": level, "n_approx": rate_of.get(level, {}).get("n_approx")}
                                   for level in result.knee["bracket"] if level is not None]
    return result


def _reference_flags(arch, groups, reference, levels, margin, confidence) -> List[str]:
    """Every comparison uses the reference, so a bad reference run poisons the sweep: say when one looks bad."""
    flags = []
    ref = groups[(arch, reference)]
    pooled = ref.pooled
    if pooled is not None and ref.size >= 3:
        sd = math.sqrt(pooled.seed_var)
        for seed, acc in zip(ref.seeds, ref.acc):
            others = np.delete(ref.acc, list(ref.seeds).index(seed))
            if sd > 0 and abs(acc - np.median(others)) > OUTLIER_SDS * sd:
                flags.append(f"arch {arch}: reference run seed {seed} ({100 * acc:.1f}%) is more than {OUTLIER_SDS:g} "
                             f"seed sds from the other reference seeds (median {100 * np.median(others):.1f}%): check "
                             f"it; every comparison uses it")
    neighbours = [level for level in levels if level != reference][-2:]
    if reference == RAW and neighbours:
        above = contrasts.contrast([(1.0 / len(neighbours), groups[(arch, level)]) for level in neighbours]
                                   + [(-1.0, ref)])
        if above.value > margin:
            flags.append(f"arch {arch}: the reference ({100 * ref.mean:.1f}%) is below its neighbouring levels by "
                         f"{100 * above.value:.1f} points: a failed or unlucky reference run makes every level look "
                         f"'not worse'; rerun it or give the reference more seeds (grid.reference_seed)")
    return flags


def _convergence(sweep_dir, runs, warnings):
    """Per run: epochs to reach FRACTION of the raw run's best validation accuracy; per group: mean and count."""
    metrics = {run.name: read_metrics(sweep_dir / "runs" / run.name) for run in runs}
    no_metrics = [name for name, rows in metrics.items() if not rows]
    if no_metrics:
        warnings.append(f"metrics.jsonl is missing for {len(no_metrics)} run(s) ({_few(no_metrics)}): no "
                        f"convergence epoch for them")
    best = lambda run: max((as_float(m.get("val_acc")) for m in metrics[run.name]), default=math.nan)
    raw_best = collections.defaultdict(dict)
    for run in runs:
        if run.level == RAW and metrics[run.name]:
            raw_best[run.arch][run.seed] = best(run)
    rows, by_group = [], collections.defaultdict(list)
    for run in runs:
        targets = raw_best.get(run.arch, {})
        base = targets.get(run.seed, _finite_mean(targets.values()) if targets else None)
        target = CONVERGENCE_FRACTION * base if base is not None else None
        epoch = epochs_to_reach([as_float(m.get("val_acc")) for m in metrics[run.name]], target) \
            if target is not None else None
        rows.append({"run": run.name, "arch": run.arch, "level": run.level, "seed": run.seed, "target": target,
                     "epochs_to_target": epoch, "epochs": len(metrics[run.name]) or run.row.get("epochs")})
        if target is not None:
            by_group[(run.arch, run.level)].append(epoch)
    summary = {}
    for key, epochs in by_group.items():
        reached = [e for e in epochs if e is not None]
        summary[key] = {"convergence_epochs": float(np.mean(reached)) if reached else None,
                        "converged": len(reached), "convergence_runs": len(epochs),
                        "convergence_range": (min(reached), max(reached)) if reached else None}
    return rows, summary


def _model_size(archs, params, per_arch, groups, scale: LevelScale, confidence, warnings) -> dict:
    """Does compression cost a smaller model more or less than the largest? A difference in differences per level,
    Holm-corrected over the smaller models compared at that level."""
    sized = [arch for arch in archs if arch in params]
    if len(sized) < 2:
        return {"largest": None, "level": None, "comparisons": [], "per_level": []}
    largest = max(sized, key=lambda a: (params[a], a))
    if (largest, RAW) not in groups:
        warnings.append("model sizes are not compared: the largest model has no lossless (raw) run to difference "
                        "against")
        return {"largest": largest, "level": None, "comparisons": [], "per_level": []}
    levels = scale.ordered({level for (arch, level) in groups if arch == largest and level != RAW})
    per_level = []
    for level in levels:
        rows = []
        for arch in sized:
            if arch == largest or (arch, level) not in groups or (arch, RAW) not in groups:
                continue
            estimate = contrasts.contrast([(1.0, groups[(arch, level)]), (-1.0, groups[(largest, level)]),
                                           (-1.0, groups[(arch, RAW)]), (1.0, groups[(largest, RAW)])])
            gap = contrasts.contrast([(1.0, groups[(arch, level)]), (-1.0, groups[(largest, level)])])
            rows.append({"arch": arch, "params": params[arch], "level": level, "did": estimate.value,
                         "ci": estimate.interval(confidence), "p": estimate.p_value(),
                         "gap": gap.value, "gap_ci": gap.interval(confidence),
                         "seeds_covered": estimate.seeds_covered})
        for row, adjusted in zip(rows, contrasts.holm([r["p"] for r in rows])):
            row["p_holm"] = adjusted
            differs = adjusted < 1.0 - confidence
            row["verdict"] = ("loses less" if row["did"] > 0 else "loses more") if differs else "no difference shown"
        per_level += rows
    result = per_arch.get(largest)
    level = result.q_star if result is not None and result.q_star not in (None, RAW) else (levels[0] if levels else None)
    return {"largest": largest, "level": level, "comparisons": [r for r in per_level if r["level"] == level],
            "per_level": per_level}
