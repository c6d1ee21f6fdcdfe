"""Rates per level with intervals over items (payload, header, file; lossless), and the bits not needed at q*
(lossless minus payload, a paired bootstrap over items)."""

import dataclasses
import math
from typing import Optional

import numpy as np

from helmjax.analysis import rate_intervals
from helmjax.analysis.levels import LevelScale
from helmjax.analysis.sweep_files import as_float, read_level_bits
from helmjax.layout import RAW
from helmjax.analysis.summaries import finite_mean


@dataclasses.dataclass
class ItemRates:
    """Per-item rates, already in the rate's unit, for the paired bootstrap of the noise bits."""
    primary: dict = dataclasses.field(default_factory=dict)  # level -> (N,) primary rate per item
    lossless: Optional[np.ndarray] = None  # (M,) lossless rate per item
    index: Optional[np.ndarray] = None  # positions of the M lossless items among the N (None: all, in order)


def level_rates(sweep_dir, runs, levels, scale: LevelScale, rng, settings, warnings):
    """(per-level rate rows, storage rate, lossless rate, per-item rates), with intervals over items where the
    sweep saved per-item bits."""
    rate_name = scale.rate_name
    bits = read_level_bits(sweep_dir, scale.level_of_tag)
    resamples, confidence = settings["resamples"], settings["confidence"]
    interval = lambda values: rate_intervals.mean_with_interval(rng, values, resamples, confidence)
    no_interval = lambda mean: {"mean": mean, "ci": (None, None)}
    rows_of = lambda level: [r.row for r in runs if r.level == level]
    row_mean = lambda level, key: finite_mean(as_float(row.get(key)) for row in rows_of(level))
    items = ItemRates()
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
        row["n_approx"] = scale.step(level) or bits_per_sample(row_mean(level, "bits_per_second"), row["sample_rate"])
        out.append(row)
    if no_items and out:
        warnings.append(f"per-item bits are not saved for {len(no_items)} level(s): their rates carry no interval")
    if any(row["primary"] == "file" for row in out):
        warnings.append("the coded payload is not separable for some levels: their rate is the whole file, headers "
                        "included")

    all_rows = [r.row for r in runs]
    storage_rate = finite_mean(as_float(row.get(rate_name)) for row in rows_of(RAW)) if RAW in levels else None
    raw_bits = bits.get(RAW)
    codec = raw_bits["codec"] if raw_bits else next((r["lossless_codec"] for r in all_rows
                                                     if r.get("lossless_codec")), None)
    lossless = None
    if raw_bits is not None and units:
        items.lossless, items.index = raw_bits["lossless"] / units, raw_bits.get("index")
        lossless = dict(interval(items.lossless), codec=codec)
    else:
        mean = finite_mean(as_float(row.get(f"{rate_name}_lossless")) for row in all_rows)
        if mean is not None:
            lossless = dict(no_interval(mean), codec=codec)
    if lossless is None:
        warnings.append("no lossless rate was measured for this sweep (an older sweep, or no lossless codec): noise "
                        "bits are not computed; the raw storage size is not a measure of information")
    return out, storage_rate, lossless, items


def bits_per_sample(bits_per_second, sample_rate) -> Optional[dict]:
    """What stands in for N_approx where a codec has no quantization step: the bits per sample of its measured
    rate (audio only: images have no bits per second)."""
    if bits_per_second is None or not sample_rate or not math.isfinite(bits_per_second):
        return None
    return {"bits_per_sample": float(bits_per_second) / float(sample_rate), "sample_rate": int(sample_rate)}


def bits_not_needed(rate_row, lossless, items: ItemRates, rng, settings) -> Optional[dict]:
    """Lossless minus primary rate at one level, paired per item, with a bootstrap interval over items."""
    if lossless is None or rate_row is None:
        return None
    coded = items.primary.get(rate_row["level"])
    if items.lossless is not None and coded is not None:
        diff = rate_intervals.paired_difference(items.lossless, coded, items.index)
        return rate_intervals.mean_with_interval(rng, diff, settings["resamples"], settings["confidence"])
    primary = rate_row[rate_row["primary"]]["mean"]
    return None if primary is None else {"mean": lossless["mean"] - primary, "ci": (None, None)}
