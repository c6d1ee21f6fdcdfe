"""Reading a sweep directory (what the sweep runner writes) into plain Python values.

The runner's contract: `results.jsonl` (or `results.csv`), `sweep.json`, `runs/<run>/metrics.jsonl`,
`runs/<run>/test_correct.npy` and an optional `examples.npz`. Reading is forgiving: a sweep may be partial,
interrupted mid-write or hand-edited, so bad lines become warnings, never crashes.
"""

import csv
import json
import math
import pathlib
from typing import Any, Callable, List, Optional, Union

import numpy as np

from helmjax.errors import UserError

from helmjax import layout
from helmjax.layout import RAW

Level = Union[int, float, str]


def parse_level(value: Any) -> Optional[Level]:
    """A level as the runner writes it ("raw", 20, "20", 20.0) -> "raw" or a number; None if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == RAW:
            return RAW
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return None
        return int(value) if float(value).is_integer() else float(value)
    return None


def _coerce_csv_value(text: str) -> Any:
    """CSV cells are strings; turn them back into what the JSONL row would hold."""
    if text in ("", "None", "null"):
        return None
    if text.lower() == "nan":
        return math.nan
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def as_float(value: Any) -> float:
    """A number, or NaN for None/unreadable (failed runs carry None or NaN accuracies)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def read_rows(sweep_dir: pathlib.Path, warnings: List[str]) -> List[dict]:
    """The result rows, one per run (the last row wins when a run was written twice)."""
    jsonl = sweep_dir / layout.RESULTS_JSONL
    csv_path = sweep_dir / layout.RESULTS_CSV
    rows: List[dict] = []
    if jsonl.exists():
        rows = layout.read_jsonl(jsonl, lambda number, why: warnings.append(
            f"{layout.RESULTS_JSONL} line {number} {why}; skipped"))
    elif csv_path.exists():
        with csv_path.open(newline="") as f:
            rows = [{k: _coerce_csv_value(v) for k, v in row.items()} for row in csv.DictReader(f)]
    else:
        raise UserError(f"no results.jsonl or results.csv in {sweep_dir}: run the sweep first "
                        f"(python run.py --experiment=<name>) or pass the experiment's sweep directory")
    by_run = {}
    for index, row in enumerate(rows):
        name = str(row.get("run") or f"row{index + 1}")
        if name in by_run:
            warnings.append(f"run {name} appears more than once in the results; the last row is used")
        by_run[name] = dict(row, run=name)
    return list(by_run.values())


def read_config(sweep_dir: pathlib.Path, warnings: List[str]) -> dict:
    path = sweep_dir / layout.SWEEP_FILE
    if not path.exists():
        warnings.append("sweep.json is missing: the grid is unknown, so missing runs cannot be listed")
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        warnings.append(f"sweep.json is not valid JSON ({e}); ignored")
        return {}
    return config if isinstance(config, dict) else {}


def read_examples(sweep_dir: pathlib.Path, parse: Callable[[str], Any] = parse_level) -> dict:
    """Example images per level: {"raw": (k,H,W,C) uint8, 20: ...}; empty when the sweep saved none. `parse`
    reads a level from its text (`LevelScale.parse` for named levels)."""
    path = sweep_dir / layout.EXAMPLES_FILE
    if not path.exists():
        return {}
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError):
        return {}
    examples = {}
    for name, images in arrays.items():
        level = RAW if name == RAW else parse(name[len("level_"):]) if name.startswith("level_") else None
        if level is not None:
            examples[level] = images
    return examples


def read_level_bits(sweep_dir: pathlib.Path, level_of_tag: Callable[[str], Any]) -> dict:
    """Per-item bits the sweep saved in `rates/` (see `helmjax.sweeps.rates`): {level: {"file": (N,), "payload": (N,)}},
    and {"raw": {"lossless": (M,), "codec": str, "index": (M,) when a subset was coded}}. A level is read from its
    file's tag by `level_of_tag` ("q20" -> 20: `LevelScale.level_of_tag`); an unreadable file is skipped."""
    out: dict = {}
    for path in sorted((pathlib.Path(sweep_dir) / layout.RATES_DIR).glob("*.npz")):
        tag = path.stem
        level = level_of_tag(tag)
        if level is None:
            continue
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except Exception:  # truncated or not a zip (zipfile.BadZipFile), hand-edited: skip it
            continue
        if level == RAW:
            if "lossless" not in arrays or "codec" not in arrays:
                continue
            entry = {"lossless": np.asarray(arrays["lossless"], np.float64), "codec": str(arrays["codec"])}
            if "index" in arrays:
                entry["index"] = np.asarray(arrays["index"], np.int64)
        else:
            if "file" not in arrays or "payload" not in arrays:
                continue
            entry = {name: np.asarray(arrays[name], np.float64) for name in ("file", "payload")}
        out[level] = entry
    return out
