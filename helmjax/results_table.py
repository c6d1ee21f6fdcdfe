"""The table printed at the end of a sweep: accuracy per level per arch, the cost of each level, the sweet spot.

The sweet spot here is the simple rule (lowest level whose mean accuracy is within `tolerance` of the lossless
baseline); `helmjax.analysis` adds the bootstrap test and the fitted curve.
"""

import math
from typing import List, Optional

import numpy as np

RAW = "raw"


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def _sort_key(level):
    return (0, 0) if level == RAW else (1, -level)


def accuracy_table(rows: List[dict]) -> dict:
    """{arch: {level: mean test accuracy over seeds}} over finished runs."""
    table = {}
    for r in rows:
        if r.get("status") != "done":
            continue
        table.setdefault(r["arch"], {}).setdefault(r["level"], []).append(r["test_acc"])
    return {a: {lvl: _mean(v) for lvl, v in levels.items()} for a, levels in table.items()}


def sweet_spot(accuracies: dict, tolerance: float) -> Optional[object]:
    """Lowest numeric level whose accuracy is within `tolerance` of raw, such that every higher level is too."""
    if RAW not in accuracies:
        return None
    reference = accuracies[RAW]
    best = None
    for level in sorted((lvl for lvl in accuracies if lvl != RAW), reverse=True):
        if accuracies[level] >= reference - tolerance:
            best = level
        else:
            break
    return best


def format_table(rows: List[dict], tolerance: float) -> str:
    if not rows:
        return "no finished runs yet"
    level_name = rows[0]["level_name"]
    table = accuracy_table(rows)
    levels = sorted({r["level"] for r in rows}, key=_sort_key)
    archs = sorted(table)
    cost_key, cost_unit = ("bpp", "bits/px") if rows[0].get("bpp") is not None else ("bits_per_second", "kbit/s")
    cost = {}
    for r in rows:
        value = r.get(cost_key)
        if value is not None:
            cost[r["level"]] = value / (1000.0 if cost_key == "bits_per_second" else 1.0)
    header = f"{level_name:>8} | {cost_unit:>8} | " + " | ".join(f"{a:>7}" for a in archs)
    lines = ["test accuracy (mean over seeds)", header, "-" * len(header)]
    for level in levels:
        cells = []
        for a in archs:
            v = table.get(a, {}).get(level)
            cells.append(f"{v:7.4f}" if v is not None and not math.isnan(v) else f"{'-':>7}")
        c = cost.get(level)
        lines.append(f"{str(level):>8} | {c:8.3f} | " if c is not None else f"{str(level):>8} | {'-':>8} | ")
        lines[-1] += " | ".join(cells)
    lines.append("")
    for a in archs:
        spot = sweet_spot(table[a], tolerance)
        if spot is None:
            reason = "no lossless baseline in the sweep" if RAW not in table[a] else \
                "every level is more than the tolerance below raw"
            lines.append(f"arch {a}: no sweet spot ({reason})")
        else:
            at = f" ({cost[spot]:.3f} {cost_unit})" if spot in cost else ""
            lines.append(f"arch {a}: sweet spot {level_name} {spot}{at}: the lowest {level_name} whose accuracy "
                         f"is within {tolerance * 100:.1f} points of raw ({table[a][spot]:.4f} vs "
                         f"{table[a][RAW]:.4f})")
    failed = [r["run"] for r in rows if r.get("status") == "failed"]
    if failed:
        lines.append(f"failed runs: {', '.join(failed)}")
    return "\n".join(lines)
