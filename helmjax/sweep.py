"""A sweep: every (level, arch, seed) of an experiment's grid, trained in its own run directory.

Layout of `<workdir>/<experiment>/`: `sweep.json` (the config), `runs/<run>/` (see `runner`), `cache/` (quantized
copies), `examples.npz` (a few test images per level), `rates/` (each level's bits per item and the lossless
reference, see `helmjax.rates`), `results.jsonl` / `results.csv` (one row per finished run,
rebuilt from the runs' `result.json` files, so they are never half-written), and the report. Finished runs are
skipped on a re-run; interrupted ones resume from their latest checkpoint.
"""

import csv
import dataclasses
import fcntl
import io
import json
import os
import pathlib
import time
from typing import Iterable, List, Optional, Tuple, Union

import ml_collections
import numpy as np

from helmjax import atomic_io, models, rates, stacked
from helmjax.data import catalog
from helmjax.data.dataset import ArrayDataset
from helmjax.distributed import RunClaim, is_primary
from helmjax.errors import UserError
from helmjax.quantized_data import RAW, fingerprint, quantize
from helmjax.quantizers import registry
from helmjax.run_names import level_tag, run_name
from helmjax.runner import (RESULT_FILE, SplitData, StopFlag, StopRequested, failed_result, read_metrics,
                            read_result, train_run)
from helmjax.train import OPTIMIZERS, Trainer, TrainingDiverged, TrainSettings, check_micro_batches


RESULT_COLUMNS = ["run", "experiment", "dataset", "quantizer", "level_name", "level", "bpp", "bpp_payload",
                  "bpp_header", "bpp_lossless", "bits_per_second", "bits_per_second_payload",
                  "bits_per_second_lossless", "lossless_codec", "sample_rate", "sample_rate_actual", "kbps_actual",
                  "bytes_per_item", "arch",
                  "params", "seed", "val_acc", "test_acc", "best_epoch", "epochs", "train_seconds", "num_test",
                  "status", "error"]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    level: Union[int, str]
    arch: str
    seed: int
    name: str


def grid_runs(config: ml_collections.ConfigDict, only: Optional[dict] = None) -> List[RunSpec]:
    """The grid in run order (level, then arch, then seed), filtered by `only` ({axis: allowed values})."""
    level_name = registry.get(config.quantizer.name).level_name
    runs = []
    for level in config.grid.level:
        # Every comparison uses the reference, so it may have more seeds than the levels.
        seeds = list(config.grid.seed) + (reference_seeds(config) if level == RAW else [])
        for arch in config.grid.arch:
            for seed in seeds:
                values = {"level": level, "arch": arch, "seed": seed}
                if only and any(values[a] not in allowed for a, allowed in only.items()):
                    continue
                runs.append(RunSpec(level, arch, seed, run_name(level_name, level, arch, seed)))
    return runs


def reference_seeds(config: ml_collections.ConfigDict) -> list:
    """`grid.reference_seed` minus the seeds every level has: the extra seeds of the lossless level."""
    return [s for s in (config.grid.get("reference_seed") or []) if s not in config.grid.seed]


def train_settings(config: ml_collections.ConfigDict) -> TrainSettings:
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    return TrainSettings(**{k: v for k, v in config.train.to_dict().items() if k in fields})


def validate(config: ml_collections.ConfigDict, only: Optional[dict] = None) -> List[RunSpec]:
    """Checks everything a user can get wrong before anything is written; returns the runs to do."""
    spec = registry.get(config.quantizer.name)
    data = catalog.entry(config.data.name)
    if spec.modality != data.modality:
        raise UserError(f"quantizer {spec.name!r} is for {spec.modality} but dataset {config.data.name!r} is "
                        f"{data.modality}; pick a matching quantizer")
    if not config.grid.level:
        raise UserError("grid.level is empty; give at least one level, e.g. --set grid.level=raw,20,50")
    for level in config.grid.level:
        if level != RAW:
            registry.check_level(spec, level)
    family = config.model.family
    for arch in config.grid.arch:
        if arch not in models.archs(family):
            raise UserError(f"unknown {family} architecture {arch!r}; use one of {', '.join(models.archs(family))}")
    for seed in list(config.grid.seed) + list(config.grid.get("reference_seed") or []):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"grid.seed / grid.reference_seed has {seed!r}; seeds are integers >= 0")
    if config.grid.get("reference_seed") and RAW not in config.grid.level:
        raise UserError("grid.reference_seed adds seeds to the lossless level, but grid.level has no 'raw'; add it "
                        "or drop grid.reference_seed")
    if config.train.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {config.train.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise UserError("train.epochs and train.batch_size must be >= 1")
    check_micro_batches(train_settings(config))  # per device again when the trainer is built
    if not 0.0 < config.train.val_fraction < 1.0:
        raise UserError(f"train.val_fraction={config.train.val_fraction} must be in (0, 1)")
    if config.data.name == "image_folder" and not config.data.get("root"):
        raise UserError("data.root is empty: point it at a folder or .tar of class subfolders, "
                        "e.g. --set data.root=/path/to/images")
    runs = grid_runs(config, only)
    if not runs:
        raise UserError("the --only filter leaves no run of the grid; check its values against --list")
    return runs


class SweepLock:
    """A short exclusive lock on the sweep directory while its shared files (sweep.json, results) are written."""

    def __init__(self, sweep_dir: pathlib.Path):
        self.path = sweep_dir / ".lock"

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def split_validation(ds: ArrayDataset, fraction: float, seed: int):
    """Indices (train, val) of the training set; the same examples at every level, stratified by class."""
    rng = np.random.RandomState(seed)
    val = []
    for c in np.unique(ds.y_train):
        members = np.flatnonzero(ds.y_train == c)
        rng.shuffle(members)
        val.append(members[: max(1, int(round(fraction * len(members))))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(ds.y_train)), val)
    return train, val


def featurize(config: ml_collections.ConfigDict, ds: ArrayDataset, x: np.ndarray) -> np.ndarray:
    """Model input from stored data: images as they are (uint8), audio as a log-mel spectrogram."""
    features = config.get("features")
    if not features or features.get("name") in (None, "none"):
        return x
    from helmjax import features as feature_lib  # audio only: keeps image sweeps free of it
    options = {k: v for k, v in features.to_dict().items() if k != "name"}
    return np.asarray(feature_lib.log_mel_spectrogram(x, ds.sample_rate, **options))


def result_row(config, spec: RunSpec, level_data_info: dict, params: int, fields: dict) -> dict:
    level_name = registry.get(config.quantizer.name).level_name
    row = {"run": spec.name, "experiment": config.name, "dataset": config.data.name,
           "quantizer": config.quantizer.name, "level_name": level_name, "level": spec.level,
           level_name: spec.level, "arch": spec.arch, "params": params, "seed": spec.seed, "status": "done",
           "error": None}
    row.update({k: level_data_info.get(k) for k in ("bpp", "bpp_payload", "bpp_header", "bpp_lossless",
                                                       "bits_per_second", "bits_per_second_payload",
                                                       "bits_per_second_lossless", "lossless_codec",
                                                       "sample_rate", "bytes_per_item")})
    row.update(level_data_info)  # and what the quantizer records per level (e.g. LAME's actual sample rate)
    row.update(fields)
    return row


def collect_results(sweep_dir: pathlib.Path, config) -> List[dict]:
    """Rows of every finished (or failed) run, in grid order."""
    rows = []
    for spec in grid_runs(config):
        result = read_result(sweep_dir / "runs" / spec.name)
        if result is not None:
            rows.append(result)
    return rows


def write_results(sweep_dir: pathlib.Path, rows: List[dict]):
    level_names = sorted({r["level_name"] for r in rows})
    columns = RESULT_COLUMNS[:6] + level_names + RESULT_COLUMNS[6:]
    atomic_io.write_text(sweep_dir / "results.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    atomic_io.write_text(sweep_dir / "results.csv", buf.getvalue())


def quantizer_settings(config) -> dict:
    """The quantizer's own options from `config.quantizer` (everything but which one and which splits)."""
    return {k: v for k, v in config.quantizer.to_dict().items() if k not in ("name", "apply_to")}


def _model_knobs(config) -> dict:
    return {k: v for k, v in config.model.to_dict().items() if k != "family"}


@dataclasses.dataclass
class SweepOutcome:
    sweep_dir: pathlib.Path
    rows: List[dict]
    trained: List[str]
    skipped: List[str]
    failed: List[str]
    busy: List[str] = dataclasses.field(default_factory=list)  # claimed by another worker


def run_sweep(config: ml_collections.ConfigDict, workdir: pathlib.Path, *, only: Optional[dict] = None,
              worker: Tuple[int, int] = (0, 1), stop: Optional[StopFlag] = None, progress: bool = True,
              log=print) -> SweepOutcome:
    """Runs (or resumes) the sweep; returns its rows. Raises `StopRequested` after a clean stop.

    `worker=(i, n)` takes every n-th run of the grid starting at i; runs another process is training (a claim
    is held) are left to it.
    """
    runs = validate(config, only)
    index, count = worker
    mine = [r for k, r in enumerate(runs) if k % count == index]
    sweep_dir = pathlib.Path(workdir) / config.name
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the sweep directory {sweep_dir} ({e.strerror}); pick a writable --workdir")
    if not os.access(sweep_dir, os.W_OK):
        raise UserError(f"the sweep directory {sweep_dir} is not writable; pick another --workdir")
    primary = is_primary()
    if primary:
        with SweepLock(sweep_dir):
            atomic_io.write_json(sweep_dir / "sweep.json", _sweep_record(config))
    todo = [r for r in mine if read_result(sweep_dir / "runs" / r.name) is None]
    skipped = [r.name for r in mine if r not in todo]
    if skipped:
        log(f"{len(skipped)} of {len(mine)} runs already finished; skipping them")
    trained, failed, busy = [], [], []
    if todo:
        trained, failed, busy = _train_runs(config, sweep_dir, todo, stop, progress, log)
    rows = collect_results(sweep_dir, config)
    if primary:
        with SweepLock(sweep_dir):
            write_results(sweep_dir, collect_results(sweep_dir, config))
    return SweepOutcome(sweep_dir, rows, trained, skipped, failed, busy)


def _sweep_record(config) -> dict:
    record = config.to_dict()
    spec = registry.get(config.quantizer.name)
    record.update(level_name=spec.level_name, dataset=config.data.name, quantizer_name=spec.name)
    return record


def load_data(config, sweep_dir: pathlib.Path) -> ArrayDataset:
    options = {k: v for k, v in config.data.to_dict().items() if k not in ("name", "split_seed")}
    if config.data.name in ("cifar10", "image_folder"):
        options.setdefault("cache_dir", str(sweep_dir.parent / "cache" / "datasets"))
    return catalog.load(config.data.name, **options)


def _train_runs(config, sweep_dir, todo, stop, progress, log):
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ds = load_data(config, sweep_dir)
    log(f"dataset {config.data.name}: {len(ds.x_train)} train / {len(ds.x_test)} test, {ds.num_classes} classes"
        + (f", {ds.skipped} unreadable files skipped" if ds.skipped else "") + f" ({time.perf_counter() - t0:.1f} s)")
    key = fingerprint(ds)
    train_idx, val_idx = split_validation(ds, config.train.val_fraction, config.data.get("split_seed", 0))
    settings = train_settings(config)
    is_image = catalog.entry(config.data.name).modality == "image"
    trainers = {}
    quantizer_options = quantizer_settings(config)
    cache_dir = sweep_dir / "cache"
    # A property of the data, so cached beside the datasets (shared by every sweep of the workdir).
    reference = rates.lossless_rate(ds, config.quantizer.apply_to, sweep_dir.parent / "cache" / "lossless", key)
    if is_primary():
        _write_examples(config, ds, sweep_dir, quantizer_options)
        reference.write(sweep_dir)
    lossless = reference.fields(ds)  # the dataset's lossless rate, recorded on every row

    stack_size = config.train.get("stack", 0) or stacked.default_stack_size()
    if stack_size > 1:
        return _train_runs_stacked(config, sweep_dir, todo, ds, key, train_idx, val_idx, settings, is_image,
                                   quantizer_options, stack_size, stop, log, lossless)
    trained, failed, busy = [], [], []
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress, position=0)
    for level in config.grid.level:
        level_runs = [r for r in todo if r.level == level]
        if not level_runs:
            continue
        x_train, x_test, info = _level_arrays(config, ds, level, quantizer_options, cache_dir, key, log, lossless)
        for spec in level_runs:
            run_dir = sweep_dir / "runs" / spec.name
            claim = RunClaim(run_dir)
            if not claim.acquire():
                busy.append(spec.name)
                bar.write(f"  {spec.name}: being trained by another worker; leaving it to that one")
                bar.update(1)
                continue
            try:
                if read_result(run_dir) is None:  # another worker may have finished it meanwhile
                    row = _train_one(config, spec, run_dir, ds, x_train, x_test, train_idx, val_idx, info,
                                     trainers, settings, is_image, stop, progress)
                    (trained if row["status"] == "done" else failed).append(spec.name)
                    bar.write(_result_line(spec.name, row))
            finally:
                claim.release()
            bar.update(1)
    bar.close()
    return trained, failed, busy


def _level_arrays(config, ds, level, quantizer_options, cache_dir, key, log, lossless: dict):
    """(model-ready train x, test x, cost info) of one level, through the quantized-data cache; writes the level's
    per-item bits to `rates/` (`lossless`: the dataset's lossless-rate fields, added to the info)."""
    tq = time.perf_counter()
    level_data = quantize(ds, level, config.quantizer.name, quantizer_options, config.quantizer.apply_to,
                          cache_dir, key)
    info = dict(level_data.info, **lossless)
    tag = level_tag(registry.get(config.quantizer.name).level_name, level)
    if is_primary():
        rates.write_level(cache_dir.parent, tag, level_data.bits)
    log(f"level {tag}: "
        + (f"{info['bpp']:.3f} bits/pixel" if info.get("bpp") is not None else
           f"{info['bits_per_second'] / 1000:.1f} kbit/s")
        + f" ({time.perf_counter() - tq:.1f} s)")
    return featurize(config, ds, level_data.x_train), featurize(config, ds, level_data.x_test), info


def _train_runs_stacked(config, sweep_dir, todo, ds, key, train_idx, val_idx, settings, is_image,
                        quantizer_options, stack_size, stop, log, lossless):
    """Runs of one architecture (any level and seed) trained `stack_size` at a time as one program."""
    levels = {}
    for level in config.grid.level:
        if any(r.level == level for r in todo):
            levels[level] = _level_arrays(config, ds, level, quantizer_options, sweep_dir / "cache", key, log,
                                          lossless)
    trained, failed, busy = [], [], []
    for arch in config.grid.arch:
        claimed, claims = [], []
        for spec in (r for r in todo if r.arch == arch):
            run_dir = sweep_dir / "runs" / spec.name
            claim = RunClaim(run_dir)
            if not claim.acquire():
                busy.append(spec.name)
                continue
            claims.append(claim)
            if read_result(run_dir) is None:
                claimed.append(spec)
        try:
            if not claimed:
                continue
            trainer = stacked.StackedTrainer(Trainer(_build_model(config, arch, ds), settings, is_image))
            params = trainer.trainer.param_count(levels[claimed[0].level][0][:1])
            run_dirs = [sweep_dir / "runs" / spec.name for spec in claimed]
            for group in stacked.group_for_stacking(run_dirs, stack_size):
                members = [claimed[i] for i in group]
                log(f"training {len(members)} runs together: {', '.join(m.name for m in members)}")
                datas = [_split_data(trainer.trainer, ds, *levels[m.level][:2], train_idx, val_idx)
                         for m in members]
                for m in members:
                    _write_run_config(sweep_dir / "runs" / m.name, m, config,
                                      stacked_with=[o.name for o in members])
                results = stacked.train_stacked([run_dirs[i] for i in group], trainer, datas,
                                                [m.seed for m in members], config.train.epochs, stop=stop)
                for m, fields in zip(members, results):
                    row = result_row(config, m, levels[m.level][2], params, fields)
                    (trained if row["status"] == "done" else failed).append(m.name)
                    _write_result(sweep_dir / "runs" / m.name, row)
                    log(_result_line(m.name, row))
        finally:
            for claim in claims:
                claim.release()
    return trained, failed, busy


def _train_one(config, spec: RunSpec, run_dir: pathlib.Path, ds: ArrayDataset, x_train, x_test, train_idx,
               val_idx, info: dict, trainers: dict, settings: TrainSettings, is_image: bool, stop, progress) -> dict:
    """Trains one claimed run and writes its `result.json` (done or failed); returns that row."""
    from tqdm.auto import tqdm

    if spec.arch not in trainers:
        trainers[spec.arch] = Trainer(_build_model(config, spec.arch, ds), settings, is_image)
    trainer = trainers[spec.arch]
    data = _split_data(trainer, ds, x_train, x_test, train_idx, val_idx)
    epoch_bar = tqdm(total=config.train.epochs, desc=f"  {spec.name} epochs", unit="ep", leave=False,
                     disable=not progress, position=1)
    epoch_bar.update(min(sum(1 for _ in _existing_epochs(run_dir)), config.train.epochs))

    def on_epoch(row):
        epoch_bar.update(1)
        epoch_bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                              val=f"{row['val_acc']:.3f}")

    _write_run_config(run_dir, spec, config)
    params = trainer.param_count(x_train[:1])
    try:
        fields = train_run(run_dir, trainer, data, seed=spec.seed, epochs=config.train.epochs, stop=stop,
                           on_epoch=on_epoch)
        row = result_row(config, spec, info, params, fields)
    except TrainingDiverged as e:
        row = result_row(config, spec, info, params, failed_result(str(e)))
    finally:
        epoch_bar.close()
    _write_result(run_dir, row)
    return row


def _build_model(config, arch: str, ds: ArrayDataset):
    return models.build(config.model.family, arch, ds.num_classes, **_model_knobs(config))


def _split_data(trainer: Trainer, ds: ArrayDataset, x_train, x_test, train_idx, val_idx) -> SplitData:
    """One level's model-ready arrays on the devices: train minus validation, validation, test."""
    put = trainer.put
    return SplitData(put(x_train[train_idx]), put(ds.y_train[train_idx].astype(np.int32)),
                     put(x_train[val_idx]), put(ds.y_train[val_idx].astype(np.int32)),
                     put(x_test), put(ds.y_test.astype(np.int32)))


def _result_line(name: str, row: dict) -> str:
    if row["status"] != "done":
        return f"  {name}: failed: {row['error']}"
    return (f"  {name}: test acc {row['test_acc']:.4f} (best epoch {row['best_epoch']}, val {row['val_acc']:.4f}, "
            f"{row['train_seconds']:.1f} s)")


def _write_result(run_dir: pathlib.Path, row: dict):
    """The run's `result.json`: its done (or failed) marker, written last."""
    if is_primary():
        atomic_io.write_json(run_dir / RESULT_FILE, row)


def _write_run_config(run_dir: pathlib.Path, spec: RunSpec, config, **extra):
    if is_primary():
        atomic_io.write_json(run_dir / "config.json", {"run": spec.name, "level": spec.level, "arch": spec.arch,
                                                       "seed": spec.seed, **extra, "config": config.to_dict()})


def _existing_epochs(run_dir: pathlib.Path) -> Iterable[int]:
    return (r["epoch"] for r in read_metrics(run_dir))


def _write_examples(config, ds: ArrayDataset, sweep_dir: pathlib.Path, quantizer_options: dict, count: int = 8):
    """A few test images at every level, for the report's example grid (images only; cheap)."""
    if ds.x_test.ndim != 4 or (sweep_dir / "examples.npz").exists():
        return
    picks = ds.x_test[:count]
    arrays = {"raw": picks}
    for level in config.grid.level:
        if level != RAW:
            arrays[f"level_{level}"] = registry.apply(config.quantizer.name, picks, level, **quantizer_options).data
    atomic_io.write_npz(sweep_dir / "examples.npz", **arrays)
