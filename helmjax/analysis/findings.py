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

from helmjax.analysis import bootstrap, bounded, chance, contrasts, curve, families
from helmjax.analysis.contrasts import Group
from helmjax.analysis.convergence import FRACTION as CONVERGENCE_FRACTION
from helmjax.analysis.levels import LevelScale, quantizer_record
from helmjax.analysis.sweep_files import as_float, read_config, read_rows
from helmjax.sweeps import noise_record
from helmjax.layout import RAW, read_test_correct, run_dir
from helmjax.errors import UserError
from helmjax.analysis import per_arch as arch_findings
from helmjax.analysis.level_rates import level_rates as rates_per_level
from helmjax.analysis.per_arch import ArchResult, analyze_arch, sequence_levels
from helmjax.analysis.summaries import few, finite_mean

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MARGIN_POINTS = 1.0
DEFAULT_TOLERANCE_POINTS = 1.0

METHOD = {
    "accuracy": "test accuracy of the best-validation parameters of each run (the epoch is chosen on a validation "
                "split of train, never on test); mean over the seeds of each (arch, level)",
    "intervals": "every accuracy difference has a {conf:.0%} interval covering two sources of noise: test examples "
                 "(bootstrap over examples, one draw shared by all runs, so levels are paired over examples) and "
                 "training seeds (the spread of runs, pooled over the arch's levels as a quasi-binomial dispersion, "
                 "variance / p(1 - p), and scaled back to each level's accuracy; a level whose own spread is larger "
                 "keeps its own; a level with one seed borrows the pooled one), combined in a Student t interval with Welch-Satterthwaite "
                 "degrees of freedom; with one seed everywhere only test-example noise is covered. Intervals stay "
                 "inside their range: an accuracy's is the Wilson score interval, of k right of n with test-example "
                 "noise only, and with seed noise at the effective number of test examples its standard error is "
                 "worth (p(1 - p) / se², the score interval of the quasi-binomial model) with the t quantile; a "
                 "difference of accuracies combines the two accuracies' intervals by Newcombe's square-and-add "
                 "(hybrid score, method 10), with the correlation that gives back the paired t interval away from 0% "
                 "and 100%, so it stays inside [-1, 1]",
    "sweet_spot": "q* by non-inferiority with margin δ = {margin:g} accuracy points: a fixed-sequence test from the "
                  "least compressed level down; a level passes when the one-sided {sequence_conf} lower confidence "
                  "bound of acc(level) - acc(reference) (the bounded one the report prints) is above -δ; the sequence "
                  "stops at the first level that fails and q* is the last that passed (familywise error within the "
                  "sequence at most its α, no correction needed; which α: 'family')",
    "family": "{family}",
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
    "bits_not_needed": "lossless rate minus payload rate at q*, paired item by item, bootstrap interval over items: "
                       "the bits this classifier did not need (the paper's 'noise bits'). On data whose noise is known "
                       "(the camera's noise ladder, VALIDATION.md) they ranked with the noise but exceeded its "
                       "entropy by 1.5-4.6 bits per pixel on 5 settings, and were 4.6 with no noise at all: not a "
                       "measure of the noise, nor shown to bound it",
    "n_approx": "the quantization step at each level as the quantizer's spec gives it (recorded in sweep.json with "
                "the quantizer's version); an audio codec without one shows the bits per sample of its measured rate "
                "instead; at the knee, the values at the two sampled levels it lies between. The paper reads it as "
                "the data's noise; on the camera's factorial ladder (VALIDATION.md) the knee moved far more with the "
                "content than with the sensor noise, so here it is the step this task tolerates",
    "model_size": "difference in differences: (acc(arch, L) - acc(largest, L)) - (acc(arch, raw) - acc(largest, "
                  "raw)), what compression costs a smaller model beyond what it costs the largest; two-sided tests "
                  "with a Holm correction over the models compared at each level",
    "convergence": "epochs a run needs to reach {conv:.0%} of the lossless run's best validation accuracy (same "
                   "arch, same seed when there is one); a run that never reaches it is counted as not reached",
}


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
    settings: dict  # margin, confidence, sequence_confidence, family, resamples, seed, tolerance, num_test
    noise: Optional[dict] = None  # the data's noise measured without a classifier (`sweeps.noise_record`)
    at_chance: list = dataclasses.field(default_factory=list)  # runs not above chance (`analysis.chance`)
    family: Optional[dict] = None  # which sequences the report's α covers (`families.Family.to_dict`)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(dataclasses.replace(
            self, per_arch={arch: dataclasses.replace(r, curve=None) for arch, r in self.per_arch.items()}))
        for result in record["per_arch"].values():
            del result["curve"]  # the knee's replicates: arrays for analyses across sweeps, not the record
        return json_safe(record)

    @property
    def exploratory(self) -> bool:
        """Some comparison covers test-example noise only (one seed and nothing to borrow), or some reference is
        above the accuracy where the calibration showed the 5% (`per_arch.CALIBRATED_CEILING`)."""
        return bool(self.one_seed or self.uncalibrated)

    @property
    def one_seed(self) -> List[str]:
        """Archs whose comparisons cover test-example noise only."""
        return sorted(arch for arch, r in self.per_arch.items() if not r.seeds_covered)

    @property
    def uncalibrated(self) -> List[str]:
        """Archs whose reference lies above `per_arch.CALIBRATED_CEILING`."""
        return sorted(arch for arch, r in self.per_arch.items() if not r.calibrated)

    @property
    def exploratory_reason(self) -> str:
        """Why the report is exploratory, in a few words ("" when it is not)."""
        reasons = []
        if self.one_seed:
            reasons.append("one seed, training noise not covered")
        if self.uncalibrated:
            reasons.append(f"reference above {100 * arch_findings.CALIBRATED_CEILING:g}%, where the 5% is not shown")
        return "; ".join(reasons)

    @property
    def scale(self) -> LevelScale:
        return LevelScale(self.quantizer_spec)

    def level_text(self, level) -> str:
        """How a level reads in sentences: "q=20", "32 kbps", "4 bits", "raw"."""
        return self.scale.text(level)

    def position(self, level) -> float:
        """A level's place on the analysis' axis (ascending = less compression)."""
        return self.scale.position(level)


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


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


def _missing_runs(sweep_record, rows, scale: LevelScale, warnings) -> list:
    grid = sweep_record.get("grid") or {}
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
    other = sorted(set(grid) - {"level", scale.level_name, "arch", "seed", "reference_seed", "axes", "setting"})
    if other:
        warnings.append(f"the grid also varies {', '.join(other)}: missing runs are listed over level, arch and "
                        f"seed only")
    extra = [s for s in (grid.get("reference_seed") or []) if s not in axes["seed"]]
    expected = [(scale.parse(l), str(a), s) for l, a, s in itertools.product(axes["level"], axes["arch"], axes["seed"])]
    if RAW in [scale.parse(l) for l in axes["level"]]:
        expected += [(RAW, str(a), s) for a, s in itertools.product(axes["arch"], extra)]
    prefix = f"{grid['setting']}-" if grid.get("setting") else ""  # a setting of grid axes (`sweeps.axes`)
    missing = [{"level": l, "arch": a, "seed": s, "run": prefix + scale.run_name(l, a, s)}
               for l, a, s in expected if l is not None and (l, a, s) not in present]
    return sorted(missing, key=lambda m: (scale.sort_key(m["level"]), m["arch"], str(m["seed"])))


def _attach_correctness(sweep_dir, runs, warnings) -> Optional[int]:
    """Loads test_correct.npy of each run; returns the shared test-set size (None if none could be used)."""
    for run in runs:
        run.correct = read_test_correct(run_dir(sweep_dir, run.name))
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
        warnings.append(f"test_correct.npy of {len(odd)} run(s) has a length other than {num_test} ({few(odd)}): "
                        f"treated as missing")
    if lacking:
        warnings.append(f"test_correct.npy is missing for {len(lacking)} run(s) ({few(lacking)}): binomial "
                        f"approximation for their test noise")
    mismatched = [r.name for r in runs if r.correct is not None
                  and abs(float(r.correct.mean()) - r.test_acc) > 0.5 / num_test]
    if mismatched:
        warnings.append(f"test_acc disagrees with test_correct.npy for {len(mismatched)} run(s) ({few(mismatched)}); "
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


def make_settings(sweep_record: dict, resamples, confidence, margin, seed, family: Optional[str] = None) -> dict:
    """The analysis settings: given values, else sweep.json's `analysis` block, else the defaults. The fixed
    sequence's `sequence_confidence` is the confidence until `analyze` knows the family's size."""
    block = sweep_record.get("analysis") if isinstance(sweep_record.get("analysis"), dict) else {}
    pick = lambda given, key, default: given if given is not None else block.get(key, default)
    confidence = float(pick(confidence, "confidence", DEFAULT_CONFIDENCE))
    margin_points = float(pick(margin, "margin", DEFAULT_MARGIN_POINTS))
    resamples = int(pick(resamples, "resamples", DEFAULT_RESAMPLES))
    family = str(pick(family, "family", families.PER_SEQUENCE))
    if not 0.5 < confidence < 1.0:
        raise UserError(f"analysis.confidence={confidence}: use a value in (0.5, 1), e.g. 0.95")
    if not 0.0 <= margin_points < 100.0:
        raise UserError(f"analysis.margin={margin_points}: the margin is in accuracy points, e.g. 1.0")
    if family not in families.RULES:
        raise UserError(f"analysis.family={family!r}: use {' or '.join(repr(r) for r in families.RULES)}")
    return {"margin_points": margin_points, "margin": margin_points / 100.0, "confidence": confidence,
            "sequence_confidence": confidence, "family": family, "resamples": resamples, "seed": seed,
            "tolerance_points": 100.0 * tolerance_fraction(sweep_record.get("tolerance"))}


def sequences(sweep_dir) -> List[str]:
    """The archs of a sweep whose done runs make a fixed sequence (`per_arch.sequence_levels`), read from its
    results alone (no bootstrap): what a side-by-side report counts before it analyses its settings."""
    warnings: List[str] = []
    rows = read_rows(pathlib.Path(sweep_dir), warnings)
    scale = LevelScale(quantizer_record(read_config(pathlib.Path(sweep_dir), warnings), rows, warnings))
    keys = {(run.arch, run.level) for run in _parse_runs(rows, scale, warnings)[0]}
    return [arch for arch in sorted({a for a, _ in keys}) if sequence_levels(arch, keys, scale)[2]]


def analyze(sweep_dir, *, resamples: Optional[int] = None, confidence: Optional[float] = None,
            margin: Optional[float] = None, seed: int = 0, family: Optional[str] = None,
            report_sequences: Optional[int] = None) -> Analysis:
    """Analyses one sweep directory. Settings not given come from sweep.json's `analysis` block (margin in
    accuracy points, confidence, family), then the defaults; problems of the input become warnings, not exceptions.
    `report_sequences`: the number of fixed sequences of the side-by-side report this sweep is a setting of (its
    family, `analysis.families`); None for a sweep reported on its own, whose family is its own archs."""
    sweep_dir = pathlib.Path(sweep_dir)
    warnings: List[str] = []
    rows = read_rows(sweep_dir, warnings)
    sweep_record = read_config(sweep_dir, warnings)
    settings = make_settings(sweep_record, resamples, confidence, margin, seed, family)
    first = rows[0] if rows else {}
    scale = LevelScale(quantizer_record(sweep_record, rows, warnings))
    rng = np.random.default_rng(seed)

    runs, failed = _parse_runs(rows, scale, warnings)
    missing = _missing_runs(sweep_record, rows, scale, warnings)
    if not rows:
        warnings.append("the results hold no runs yet")
    elif not runs:
        warnings.append("no run finished successfully: nothing to analyse")
    if failed:
        warnings.append(f"{len(failed)} run(s) failed and are left out: {few(f['run'] for f in failed)}")
    if missing:
        warnings.append(f"{len(missing)} run(s) of the grid have no result yet (a partial sweep): "
                        f"{few(m['run'] for m in missing)}")

    at_chance = chance.runs_at_chance(runs, settings["confidence"])
    stuck = [r["run"] for r in at_chance if r["verdict"] == "failed optimisation"]
    if stuck:
        warnings.append(f"{len(stuck)} run(s) did not learn (test accuracy not above chance while the lossless level "
                        f"or another seed did): failed optimisations, not measurements; rerun them with other seeds "
                        f"or a lower learning rate: {few(stuck)}")
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
    groups = _groups(members, replicates, archs, num_test)

    own = sum(bool(sequence_levels(arch, groups, scale)[2]) for arch in archs)
    report_family = families.Family(settings["family"], settings["confidence"], own) if report_sequences is None else \
        families.Family(settings["family"], settings["confidence"], report_sequences,
                        noun="(setting, architecture) sequence", where="of the side-by-side report this setting is in")
    settings["sequence_confidence"] = report_family.sequence_confidence

    level_rates, storage_rate, lossless, item_rates = rates_per_level(sweep_dir, runs, all_levels, scale, rng, settings,
                                                             warnings)
    accuracy = []
    order = lambda item: (archs.index(item[0][0]), scale.sort_key(item[0][1]))
    for (arch, level), group in sorted(groups.items(), key=order):
        accuracy.append({"arch": arch, "level": level, "mean": group.mean, "n": group.size,
                         "std": float(np.std(group.acc, ddof=1)) if group.size > 1 else None,
                         "ci": bounded.accuracy(group).interval(settings["confidence"]),
                         "val_mean": finite_mean(r.val_acc for r in members[(arch, level)]),
                         "train_seconds": finite_mean(as_float(r.row.get("train_seconds"))
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
    ceiling = sorted(arch for arch, result in per_arch.items() if not result.calibrated)
    if ceiling:
        warnings.append(
            f"reference accuracy above {100 * arch_findings.CALIBRATED_CEILING:g}% for {', '.join(ceiling)}: "
            f"there the calibration of the analysis (VALIDATION.md, section 1) found "
            f"{arch_findings.CEILING_FALSE_PASSES} instead of 5% (too few test errors per run to measure the seed "
            f"spread), so q* is exploratory; a larger test set "
            f"or a harder task keeps the errors countable")

    convergence, convergence_by_group = arch_findings.run_convergence(sweep_dir, runs, warnings)
    for row in accuracy:
        row.update(convergence_by_group.get((row["arch"], row["level"]), {"convergence_epochs": None,
                                                                          "converged": 0}))
    model_size = arch_findings.model_size(archs, params, per_arch, groups, scale, settings["confidence"], warnings)

    confidence = settings["confidence"]
    figures = dict(conf=confidence, margin=settings["margin_points"],
                   tol=settings["tolerance_points"], min_r2=curve.LOG_FIT_MIN_R2, conv=CONVERGENCE_FRACTION,
                   family=family_method(report_family),
                   sequence_conf=families.confidence_text(report_family.sequence_confidence))
    return Analysis(
        sweep_dir=str(sweep_dir), experiment=str(sweep_record.get("experiment") or sweep_record.get("name")
                                                 or first.get("experiment") or sweep_dir.name),
        dataset=str(sweep_record.get("dataset") or first.get("dataset") or "?"),
        quantizer=str(scale.record.get("name") or "?"), quantizer_spec=scale.record,
        level_name=scale.level_name, level_label=scale.label,
        rate_name=scale.rate_name, rate_label=scale.rate_label, storage_rate=storage_rate, lossless=lossless,
        levels=all_levels, archs=archs, params=params, accuracy=accuracy, rates=level_rates, per_arch=per_arch,
        model_size=model_size, convergence=convergence,
        runs={"results": len(rows), "done": len(runs), "failed": len(failed), "missing": len(missing),
              "expected": len(rows) + len(missing) if sweep_record.get("grid") else None},
        missing=missing, failed=failed, warnings=warnings,
        method=dict({k: v.format(**figures) for k, v in METHOD.items()},
                    **({"What a level is": level_meaning(sweep_record)} if level_meaning(sweep_record) else {})),
        settings=settings, noise=noise_record.read(sweep_dir), at_chance=at_chance, family=report_family.to_dict())


def level_meaning(sweep_record: dict) -> str:
    """For data stored at a resolution of its own (ImageNet-style sets): what raw and a level are, and what the model
    sees; "" for data compressed as it is."""
    data, train = sweep_record.get("data") or {}, sweep_record.get("train") or {}
    size, crop = data.get("image_size"), train.get("crop_size") or 0
    parts = []
    if size and (data.get("name") in ("ilsvrc", "tfds_images") or data.get("resize") == "shorter_side"):
        parts.append(f"the images are stored at {size}x{size} (each original decoded, its shorter side resized to "
                     f"{size} and the centre square kept); raw is that stored image kept losslessly, and each level "
                     "compresses it, so rates are per pixel of the stored image and raw already carries any loss of "
                     "the originals' own coding")
    elif data.get("name") == "tfds_images":
        parts.append("raw is the set's images as tfds stores them, kept losslessly; each level compresses them")
    if crop:
        parts.append(f"training takes random-resized {crop}x{crop} crops of the stored image and evaluation its "
                     f"centre {crop}x{crop}" if train.get("augment_mode") == "random_resized_crop" else
                     f"the model sees the centre {crop}x{crop} of the stored image")
    return "; ".join(parts) + ("." if parts else "")


def family_method(family: "families.Family") -> str:
    """The method line of the family: the rule, then the report's sentence."""
    rule = ("each fixed sequence (one per architecture and setting) is tested at α = 1 - confidence, and the report "
            "says how far the chance that any of its q* is wrong can go" if family.rule == families.PER_SEQUENCE else
            "each of the report's k fixed sequences is tested at α/k: Bonferroni across the sequences, the fixed "
            "sequence within each (why not Holm: helmjax/analysis/families.py)")
    return f"{rule}. {family.sentence()}"


def _groups(members, replicates, archs, num_test: Optional[int]) -> Dict[tuple, Group]:
    """One `Group` per (arch, level); single-seed groups may borrow their arch's pooled seed variance."""
    groups = {}
    for key, runs in members.items():
        runs = sorted(runs, key=lambda r: str(r.seed))
        correct = np.stack([r.correct for r in runs]) if all(r.correct is not None for r in runs) else None
        sizes = [as_float(r.row.get("num_test")) for r in runs]
        size = next((int(s) for s in sizes if math.isfinite(s) and s > 0), num_test)
        groups[key] = Group(seeds=tuple(r.seed for r in runs), acc=np.array([r.test_acc for r in runs]),
                            replicates=replicates[:, [r.column for r in runs]].astype(np.float64), correct=correct,
                            test_size=size)
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
