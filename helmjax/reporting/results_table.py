"""The table printed at the end of a sweep: accuracy per level per arch, the cost of each level, the sweet spot.

The sweet spot here is the simple rule (the most compressed level whose mean accuracy is within `tolerance` of the
lossless baseline); `helmjax.analysis` adds the bootstrap test and the fitted curve. Levels are ordered and the
cost unit chosen by the quantizer's spec (`helmjax.analysis.levels`), never by the level's name.
"""

import math
from typing import Callable, List, Optional

import numpy as np

from helmjax.analysis.levels import LevelScale, quantizer_record

from helmjax.layout import RAW
# How each rate column prints: unit and divisor.
COST_UNITS = {"bpp": ("bits/px", 1.0), "bits_per_second": ("kbit/s", 1000.0)}


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def accuracy_table(rows: List[dict]) -> dict:
    """{arch: {level: mean test accuracy over seeds}} over finished runs."""
    table = {}
    for r in rows:
        if r.get("status") != "done":
            continue
        table.setdefault(r["arch"], {}).setdefault(r["level"], []).append(r["test_acc"])
    return {a: {lvl: _mean(v) for lvl, v in levels.items()} for a, levels in table.items()}


def sweet_spot(accuracies: dict, tolerance: float, position: Callable = float) -> Optional[object]:
    """The most compressed level whose accuracy is within `tolerance` of raw, such that every less compressed level
    is too; `position` orders levels (ascending = less compression; the plain value by default)."""
    if RAW not in accuracies:
        return None
    reference = accuracies[RAW]
    best = None
    for level in sorted((lvl for lvl in accuracies if lvl != RAW), key=position, reverse=True):
        if accuracies[level] >= reference - tolerance:
            best = level
        else:
            break
    return best


def format_table(rows: List[dict], tolerance: float, quantizer_spec: Optional[dict] = None) -> str:
    """The table of `rows`; `quantizer_spec` is the quantizer's record (`QuantizerSpec.describe`), else it is
    described from the rows' quantizer."""
    if not rows:
        return "no finished runs yet"
    scale = LevelScale(quantizer_spec or quantizer_record({}, rows, []))
    level_name = rows[0]["level_name"]
    table = accuracy_table(rows)
    levels = [RAW] * any(r["level"] == RAW for r in rows) + scale.ordered(
        {r["level"] for r in rows if r["level"] != RAW})[::-1]
    archs = sorted(table)
    cost_key = scale.rate_name
    cost_unit, divisor = COST_UNITS[cost_key]
    cost = {}
    for r in rows:
        value = r.get(cost_key)
        if value is not None:
            cost[r["level"]] = value / divisor
    header = f"{level_name:>8} | {cost_unit:>8} | " + " | ".join(f"{a:>7}" for a in archs)
    lines = ["test accuracy (mean over seeds)", header, "-" * len(header)]
    for level in levels:
        cells = []
        for a in archs:
            v = table.get(a, {}).get(level)
            cells.append(f"{v:7.4f}" if v is not None and not math.isnan(v) else f"{'-':>7}")
        c = cost.get(level)
        text = scale.tick(level)
        lines.append(f"{text:>8} | {c:8.3f} | " if c is not None else f"{text:>8} | {'-':>8} | ")
        lines[-1] += " | ".join(cells)
    lines.append("")
    for a in archs:
        spot = sweet_spot(table[a], tolerance, scale.position)
        if spot is None:
            reason = "no lossless baseline in the sweep" if RAW not in table[a] else \
                "every level is more than the tolerance below raw"
            lines.append(f"arch {a}: no sweet spot ({reason})")
        else:
            at = f" ({cost[spot]:.3f} {cost_unit})" if spot in cost else ""
            lines.append(f"arch {a}: sweet spot {level_name} {scale.tick(spot)}{at}: the most compressed level whose "
                         f"accuracy is within {tolerance * 100:.1f} points of raw ({table[a][spot]:.4f} vs "
                         f"{table[a][RAW]:.4f})")
    failed = [r["run"] for r in rows if r.get("status") == "failed"]
    if failed:
        lines.append(f"failed runs: {', '.join(failed)}")
    return "\n".join(lines)
