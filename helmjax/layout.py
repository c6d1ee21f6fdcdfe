"""The sweep directory's layout: every file name a sweep writes, and the one reader of each.

    <workdir>/<sweep>/sweep.json             the config, its identity (`sweeps.identity`) and the quantizer's record
    <workdir>/<sweep>/results.jsonl|csv      one row per finished run
    <workdir>/<sweep>/runs/<run>/            config.json, metrics.jsonl, ckpt/, test_correct.npy, result.json
    <workdir>/<sweep>/rates/<tag>.npz        bits per item of each level (`helmjax.sweeps.rates`)
    <workdir>/<sweep>/noise.json             the data's noise, estimated without a classifier (and the truth)
    <workdir>/<sweep>/cache/, report/        quantized copies of the data; report.md, analysis.json, plots
    <workdir>/<sweep>/settings/<tag>/        a sweep with grid axes over config keys (`sweeps.axes`): one whole
                                             sweep per setting (e.g. `photons25/`); the parent holds sweep.json,
                                             the results of all settings (one column per axis) and the report
    <workdir>/cache/                         what several sweeps share: decoded datasets, lossless rates

`RAW` is the level name of the lossless baseline everywhere (config grids, run names, rows, the analysis). This
module imports nothing of helmjax (it is the bottom of the import graph), so quantizers, training, sweeps, analysis
and reporting all name their files through it.
"""

import json
import pathlib
from typing import Callable, List, Optional

import numpy as np

RAW = "raw"
SWEEP_FILE = "sweep.json"
RESULTS_JSONL = "results.jsonl"
RESULTS_CSV = "results.csv"
RUNS_DIR = "runs"
RUN_CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
TEST_CORRECT_FILE = "test_correct.npy"
CHECKPOINT_DIR = "ckpt"
RATES_DIR = "rates"
CACHE_DIR = "cache"
REPORT_DIR = "report"
EXAMPLES_FILE = "examples.npz"
SETTINGS_DIR = "settings"
NOISE_FILE = "noise.json"  # the data's noise measured without a classifier (`sweeps.noise_record`)
FITTED_DIR = "fitted"  # in a sweep's cache: states of quantizers fitted on the training split
DATASETS_DIR = "datasets"  # in the workdir's cache: decoded data sets
LOSSLESS_DIR = "lossless"  # in the workdir's cache: lossless rates of data sets
STORES_DIR = "stores"  # in the workdir's cache: every level's files (`data.level_store`), one folder per level+split
LOCK_FILE = ".lock"
CLAIM_FILE = ".claim"  # in a run directory: `.claim.<generation>`, a worker's claim on the run (`distributed`)
REPORT_FILE = "report.md"
ANALYSIS_FILE = "analysis.json"
FACETS_FILE = "facets.json"


def run_dir(sweep_dir: pathlib.Path, run_name: str) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / RUNS_DIR / run_name


def setting_dir(sweep_dir: pathlib.Path, tag: str) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / SETTINGS_DIR / tag


def workdir_of(sweep_dir: pathlib.Path) -> pathlib.Path:
    """The workdir that holds a sweep (a setting's sweep lies two levels deeper, inside its parent sweep)."""
    sweep_dir = pathlib.Path(sweep_dir)
    if sweep_dir.parent.name == SETTINGS_DIR and (sweep_dir.parent.parent / SWEEP_FILE).exists():
        return sweep_dir.parent.parent.parent
    return sweep_dir.parent


def shared_cache(sweep_dir: pathlib.Path) -> pathlib.Path:
    """The workdir's cache, shared by its sweeps (data sets and lossless rates are properties of the data)."""
    return workdir_of(sweep_dir) / CACHE_DIR


def runs_dir(sweep_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / RUNS_DIR


def cache_dir(sweep_dir: pathlib.Path) -> pathlib.Path:
    """The sweep's own cache: its quantized copies and fitted quantizer states."""
    return pathlib.Path(sweep_dir) / CACHE_DIR


def report_dir(sweep_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(sweep_dir) / REPORT_DIR


def checkpoint_dir(run_dir: pathlib.Path, which: str) -> pathlib.Path:
    """A run's orbax checkpoints: "latest" (to resume) or "best" (by validation: `run_files.best_epoch_key`)."""
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / which


def read_jsonl(path: pathlib.Path, on_bad: Optional[Callable[[int, str], None]] = None) -> List[dict]:
    """The JSON objects of a JSON-lines file, [] when it is absent. A line that is not a JSON object (a kill
    mid-append leaves at most the last one torn) is skipped, and `on_bad(line number, why)` is told."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if on_bad:
                on_bad(number, "is not valid JSON (an interrupted write?)")
            continue
        if not isinstance(row, dict):
            if on_bad:
                on_bad(number, "is not a JSON object")
            continue
        rows.append(row)
    return rows


def read_metrics(run_dir: pathlib.Path) -> List[dict]:
    """Per-epoch rows of a run (a torn last line is skipped)."""
    return read_jsonl(pathlib.Path(run_dir) / METRICS_FILE)


def read_json(path: pathlib.Path) -> Optional[dict]:
    """A JSON file of the sweep directory; None when absent or unreadable (atomic writes never leave one torn)."""
    path = pathlib.Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def read_result(run_dir: pathlib.Path) -> Optional[dict]:
    """A run's result (its done marker), None while it is not finished."""
    return read_json(pathlib.Path(run_dir) / RESULT_FILE)


def read_run_config(run_dir: pathlib.Path) -> dict:
    """A run's config.json (its config, digest, stack and performance record); {} when absent or unreadable."""
    return read_json(pathlib.Path(run_dir) / RUN_CONFIG_FILE) or {}


def read_test_correct(run_dir: pathlib.Path) -> Optional[np.ndarray]:
    """Which test examples the run's best checkpoint classified correctly (bool, one per example)."""
    path = pathlib.Path(run_dir) / TEST_CORRECT_FILE
    if not path.exists():
        return None
    try:
        correct = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return np.asarray(correct, bool).reshape(-1)
