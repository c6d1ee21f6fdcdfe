"""Synthetic sweep directories in the sweep runner's exact format, with a known curve and known noise.

Used by the tests (the sweet spot and knee must recover what went in) and to try the report without
training: `write_sweep(path)` produces results.jsonl/.csv, sweep.json, per-run metrics, per-example test
correctness, per-item bits (`rates/`) and example images. `SyntheticSweep.true_accuracy` is the truth:
a hinge in ln(level) with a floor (slope 0 = flat), or a logistic in ln(level) with a chance floor. The
quantizer is a registered one (its spec describes the levels, as in a real sweep.json); the rates of the synthetic
data at a level come from `SyntheticSweep.rates` (JPEG-like, bit-depth-like or MP3-like).
"""

import csv
import dataclasses
import json
import math
import pathlib
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from helmjax import layout
from helmjax.layout import RAW
from helmjax.quantizers import registry
from helmjax.sweeps.rates import write_level_bits
from helmjax.sweeps.run_names import level_tag, run_name
from helmjax.training.run_files import best_epoch_row

COLUMNS = ["run", "experiment", "dataset", "quantizer", "level_name", "level", "bpp", "bpp_payload", "bpp_lossless",
           "lossless_codec", "bits_per_second", "sample_rate", "arch", "params", "seed", "val_acc", "test_acc",
           "best_epoch", "epochs", "train_seconds", "status", "error", "num_test"]
ITEMS = 400  # items whose bits the synthetic sweep stores per level
PIXELS = 32 * 32
HEADER_BITS = 8.0 * 600  # a baseline JPEG's markers and tables at 32x32
LOSSLESS_BPP = 14.0  # the synthetic data's lossless rate (bits per pixel)
CODEC = "synthetic lossless (known rate)"


def jpeg_like_rates(level) -> tuple:
    """(payload, header) bits per pixel of synthetic images at a JPEG quality, with a baseline JPEG's header."""
    return 0.05 + 4.0 * (level / 100.0) ** 2 + 0.6 * level / 100.0, HEADER_BITS / PIXELS


def bit_depth_rates(level) -> tuple:
    """(payload, header) bits per pixel of synthetic images at a bit depth: the bits themselves, no header."""
    return 3.0 * level, 0.0


def mp3_like_rates(level) -> tuple:
    """(bits per second, sample rate) of synthetic audio at a bitrate in kbps: the nominal rate, at LAME's output
    sample rates for a 22.05 kHz input."""
    return 1000.0 * level, 8000 if level <= 8 else 16000 if level <= 16 else 22050


@dataclasses.dataclass
class SyntheticSweep:
    """What goes into the synthetic sweep: the true curve (`shape` "hinge" or "logistic") and the noise."""
    levels: Sequence = (1, 5, 10, 15, 20, 25, 50, 75, 100)
    include_raw: bool = True
    archs: Dict[str, int] = dataclasses.field(default_factory=lambda: {"A": 701_386, "F": 1_686_090})
    plateau: Dict[str, float] = dataclasses.field(default_factory=lambda: {"A": 0.80, "F": 0.78})
    knee: float = 20.0
    slope: float = 0.15  # accuracy per unit of ln(level) below the knee
    floor: float = 0.1  # chance accuracy: the curve never goes below it
    shape: str = "hinge"  # or "logistic": floor + (plateau - floor) * sigmoid((ln level - ln knee) / width)
    width: float = 0.5  # of the logistic, in ln(level)
    seeds: Sequence[int] = (0, 1, 2)
    reference_seeds: Sequence[int] = ()  # extra seeds of the raw level
    seed_noise: float = 0.002  # standard deviation of training noise over seeds (benchmarks/calibrate_analysis.py
    # simulates realistic noise)
    num_test: int = 2000
    epochs: int = 30
    quantizer: str = "pillow_jpeg"  # a registered quantizer: its spec describes the levels
    # level -> the synthetic data's rates there: (payload, header) bits per pixel for an image quantizer, (bits
    # per second, sample rate) for an audio one
    rates: Callable[..., tuple] = jpeg_like_rates
    experiment: str = "synthetic_q_sweep"
    dataset: str = "synthetic"
    tolerance: float = 0.01  # a fraction of accuracy, as the runner writes it
    failed: Sequence = ()  # (level, arch, seed) written as failed runs
    missing: Sequence = ()  # (level, arch, seed) left out of the results
    rng_seed: int = 0

    def true_accuracy(self, arch: str, level) -> float:
        plateau = self.plateau[arch]
        if level == RAW:
            return plateau
        if self.shape == "logistic":
            z = (math.log(level) - math.log(self.knee)) / self.width
            return self.floor + (plateau - self.floor) / (1.0 + math.exp(-z))
        rise = self.slope * min(0.0, math.log(level) - math.log(self.knee))
        return max(self.floor, plateau + rise)


def _rate(spec: "SyntheticSweep", audio: bool, level):
    """The coded rate of a level's rows: (bpp, bits_per_second, sample_rate)."""
    if audio:
        if level == RAW:
            return None, 16.0 * 8000, 8000
        return (None, *spec.rates(level))
    if level == RAW:
        return 24.0, None, None
    payload, header = spec.rates(level)
    return payload + header, None, None


def write_sweep(directory, spec: Optional[SyntheticSweep] = None) -> pathlib.Path:
    """Writes the sweep into `directory` (created) and returns it."""
    spec = spec or SyntheticSweep()
    quantizer = registry.get(spec.quantizer)
    audio = quantizer.modality == "audio"
    level_name = quantizer.level_name
    directory = pathlib.Path(directory)
    layout.runs_dir(directory).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.rng_seed)
    difficulty = rng.random(spec.num_test)  # shared across runs, so per-example correctness is correlated
    levels = ([RAW] if spec.include_raw else []) + list(spec.levels)
    lossless_items = None if audio else _write_item_bits(directory, spec, quantizer, rng)
    failed = {(l, a, s) for l, a, s in spec.failed}
    missing = {(l, a, s) for l, a, s in spec.missing}
    rows = []
    for level in levels:
        bpp, bits_per_second, sample_rate = _rate(spec, audio, level)
        for arch, params in spec.archs.items():
            seeds = list(spec.seeds) + ([s for s in spec.reference_seeds if s not in spec.seeds] if level == RAW else [])
            for seed in seeds:
                if (level, arch, seed) in missing:
                    continue
                name = run_name(quantizer, level, arch, seed)
                run_dir = layout.run_dir(directory, name)
                run_dir.mkdir(exist_ok=True)
                row = {"run": name, "experiment": spec.experiment, "dataset": spec.dataset,
                       "quantizer": spec.quantizer, "level_name": level_name, "level": level,
                       level_name: level, "bpp": bpp, "bits_per_second": bits_per_second,
                       **_row_rates(spec, level, lossless_items),
                       "sample_rate": sample_rate, "arch": arch, "params": params, "seed": seed,
                       "epochs": spec.epochs, "train_seconds": 1.5, "num_test": spec.num_test}
                if (level, arch, seed) in failed:
                    row.update(val_acc=math.nan, test_acc=math.nan, best_epoch=None, status="failed",
                               error="NaN loss at step 120: lower the learning rate")
                    rows.append(row)
                    continue
                target = float(np.clip(spec.true_accuracy(arch, level) + rng.normal(0, spec.seed_noise), 0, 1))
                jitter = difficulty + 0.15 * rng.random(spec.num_test)
                k = int(round(target * spec.num_test))
                correct = np.zeros(spec.num_test, bool)
                correct[np.argsort(jitter)[:k]] = True
                np.save(run_dir / layout.TEST_CORRECT_FILE, correct)
                tau = 2.0 + 6.0 * (1.0 if level == RAW else min(1.0, level / 100.0))
                val = target * (1 - np.exp(-np.arange(1, spec.epochs + 1) / tau)) + rng.normal(0, 0.002, spec.epochs)
                history = [{"epoch": epoch, "step": 100 * epoch, "train_loss": 1.0 / epoch,
                            "train_acc": float(acc) + 0.05, "val_loss": 1.2 / epoch, "val_acc": float(acc),
                            "epoch_seconds": 0.05, "lr": 0.01} for epoch, acc in enumerate(val, 1)]
                (run_dir / layout.METRICS_FILE).write_text("".join(json.dumps(h) + "\n" for h in history))
                best = best_epoch_row(history)
                row.update(val_acc=best["val_acc"], test_acc=k / spec.num_test, best_epoch=best["epoch"],
                           status="done", error=None)
                rows.append(row)
    with (directory / layout.RESULTS_JSONL).open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    with (directory / layout.RESULTS_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + [level_name], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key) for key in COLUMNS + [level_name]})
    grid = {"level": levels, "arch": list(spec.archs), "seed": list(spec.seeds),
            "reference_seed": list(spec.reference_seeds)}
    (directory / layout.SWEEP_FILE).write_text(json.dumps({
        "experiment": spec.experiment, "dataset": spec.dataset, "quantizer": spec.quantizer,
        "level_name": level_name, "quantizer_spec": quantizer.describe(spec.levels), "num_classes": 10,
        "tolerance": spec.tolerance, "grid": grid, "analysis": {"margin": 1.0, "confidence": 0.95}}, indent=2))
    if not audio:
        base = rng.integers(0, 256, size=(3, 32, 32, 3)).astype(np.float32)
        smooth = (base + np.roll(base, 1, 1) + np.roll(base, 1, 2) + np.roll(base, (1, 1), (1, 2))) / 4
        smooth = smooth.astype(np.uint8)
        images = {"raw": smooth}
        for level in spec.levels:  # through the quantizer itself, as the runner does
            images[f"level_{registry.level_text(level)}"] = registry.apply(spec.quantizer, smooth, level).data
        np.savez(directory / layout.EXAMPLES_FILE, **images)
    return directory


def _write_item_bits(directory: pathlib.Path, spec: SyntheticSweep, quantizer, rng) -> np.ndarray:
    """Per-item file/payload bits per level and lossless bits (images): item i's complexity scales all."""
    complexity = rng.lognormal(0.0, 0.3, ITEMS)
    complexity /= complexity.mean()
    lossless = LOSSLESS_BPP * PIXELS * complexity
    write_level_bits(directory, RAW, lossless=lossless, codec=CODEC)
    for level in spec.levels:
        payload_bpp, header_bpp = spec.rates(level)
        payload = payload_bpp * PIXELS * complexity
        write_level_bits(directory, level_tag(quantizer, level), file=payload + header_bpp * PIXELS,
                         payload=payload)
    return lossless


def _row_rates(spec: SyntheticSweep, level, lossless_items) -> dict:
    if lossless_items is None:
        return {}
    rates = {"bpp_lossless": float(np.mean(lossless_items)) / PIXELS, "lossless_codec": CODEC}
    if level != RAW:
        rates["bpp_payload"] = spec.rates(level)[0]
    return rates
