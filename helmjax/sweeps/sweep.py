"""A sweep: every (level, arch, seed) of an experiment's grid, trained in its own run directory.

Layout of `<workdir>/<experiment>/`: `sweep.json` (the config), `runs/<run>/` (see `training`), `cache/` (quantized
copies), `examples.npz` (a few test images per level), `rates/` (each level's bits per item and the lossless
reference, see `helmjax.sweeps.rates`), `results.jsonl` / `results.csv` (one row per finished run,
rebuilt from the runs' `result.json` files, so they are never half-written), and the report. Finished runs are
skipped on a re-run; interrupted ones resume from their latest checkpoint. Runs are trained in stacks of one
architecture (`plan_stacks`, up to the performance profile's stack size; on CPU one run at a time), through the one
epoch loop of `helmjax.training.loop`.
"""

import csv
import dataclasses
import fcntl
import io
import json
import os
import pathlib
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import ml_collections

from helmjax import atomic_io, models
from helmjax.sweeps import rates
from helmjax.data import catalog
from helmjax.distributed import RunClaim, is_primary
from helmjax.errors import UserError
from helmjax.sweeps.quantized_data import RAW, fingerprint
from helmjax.quantizers import registry
from helmjax.sweeps.run_names import run_name
from helmjax.sweeps import axes, identity, noise_record, shared_reference
from helmjax.sweeps.layout import read_metrics, read_result, read_run_config, setting_dir, shared_cache
from helmjax.sweeps.level_data import Levels, load_data, quantizer_settings, write_examples
from helmjax.training import performance, run_files
from helmjax.training.checkpoints import latest_epoch_on_disk
from helmjax.training.loop import StopFlag, StopRequested, train_runs
from helmjax.training.recipe import OPTIMIZERS, TrainSettings
from helmjax.training.trainer import Trainer

__all__ = ["StopFlag", "StopRequested", "run_sweep", "collect_results", "write_results", "grid_runs", "validate"]


RESULT_COLUMNS = ["run", "experiment", "setting", "dataset", "quantizer", "level_name", "level", "bpp", "bpp_payload",
                  "bpp_header", "bpp_lossless", "bits_per_second", "bits_per_second_payload",
                  "bits_per_second_lossless", "lossless_codec", "sample_rate", "sample_rate_actual", "kbps_actual",
                  "bytes_per_item", "arch",
                  "params", "num_classes", "seed", "val_acc", "test_acc", "best_epoch", "epochs", "train_seconds", "num_test",
                  "status", "error"]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    level: Union[int, str]
    arch: str
    seed: int
    name: str


def grid_runs(config: ml_collections.ConfigDict, only: Optional[dict] = None) -> List[RunSpec]:
    """The grid in run order (level, then arch, then seed), filtered by `only` ({axis: allowed values}); a
    setting's runs (`sweeps.axes`) carry its tag in front: `photons25-q20-A-s0`."""
    spec = registry.get(config.quantizer.name)
    setting = config.grid.get("setting") or ""
    runs = []
    for level in config.grid.level:
        # Every comparison uses the reference, so it may have more seeds than the levels.
        seeds = list(config.grid.seed) + (reference_seeds(config) if level == RAW else [])
        for arch in config.grid.arch:
            for seed in seeds:
                values = {"level": level, "arch": arch, "seed": seed}
                if only and any(values[a] not in allowed for a, allowed in only.items()):
                    continue
                name = run_name(spec, level, arch, seed)
                runs.append(RunSpec(level, arch, seed, f"{setting}-{name}" if setting else name))
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
    performance.check_settings(train_settings(config))  # per device again when the trainer is built
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


def result_row(config, spec: RunSpec, level_data_info: dict, params: int, num_classes: int, fields: dict) -> dict:
    level_name = registry.get(config.quantizer.name).level_name
    row = {"run": spec.name, "experiment": config.name, "setting": config.grid.get("setting") or None,
           "dataset": config.data.name, "num_classes": num_classes,
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
    """Rows of every finished (or failed) run of this config, in grid order; a run trained under another config
    (its config.json holds another digest: copied in by hand, or from before a directory guard) is left out with
    a warning, so one table never mixes two experiments."""
    if axes.has_axes(config):
        return [dict(row, **setting.columns) for setting in axes.settings(config)
                for row in collect_results(setting_dir(sweep_dir, setting.tag), axes.setting_config(config, setting))]
    rows, foreign = [], []
    digest = identity.config_digest(config)
    for spec in grid_runs(config):
        result = read_result(sweep_dir / "runs" / spec.name)
        if result is None:
            continue
        recorded = read_run_config(sweep_dir / "runs" / spec.name).get("config_digest")
        if recorded not in (None, digest):
            foreign.append(spec.name)
            continue
        rows.append(result)
    if foreign:
        print(f"warning: {len(foreign)} run(s) in {sweep_dir} were trained under another config and are left out: "
              f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}")
    return rows


def write_results(sweep_dir: pathlib.Path, rows: List[dict], axis_names: Sequence[str] = ()):
    """results.jsonl and results.csv; `axis_names`: the grid axes over config keys, one column each."""
    level_names = sorted({r["level_name"] for r in rows})
    columns = RESULT_COLUMNS[:3] + list(axis_names) + RESULT_COLUMNS[3:7] + level_names + RESULT_COLUMNS[7:]
    atomic_io.write_text(sweep_dir / "results.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    atomic_io.write_text(sweep_dir / "results.csv", buf.getvalue())


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
              log=print, sweep_dir: Optional[pathlib.Path] = None) -> SweepOutcome:
    """Runs (or resumes) the sweep; returns its rows. Raises `StopRequested` after a clean stop.

    `worker=(i, n)` takes every n-th run of the grid starting at i; runs another process is training (a claim
    is held) are left to it. `sweep_dir` defaults to `<workdir>/<config.name>` (`sweeps.identity.resolve_sweep_dir`
    names another for a config that differs from the one there).
    """
    sweep_dir = pathlib.Path(sweep_dir) if sweep_dir else pathlib.Path(workdir) / config.name
    if axes.has_axes(config):
        return _run_settings(config, sweep_dir, only, worker, stop, progress, log)
    runs = validate(config, only)
    index, count = worker
    mine = [r for k, r in enumerate(runs) if k % count == index]
    _make_sweep_dir(sweep_dir)
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


def _run_settings(config, sweep_dir: pathlib.Path, only, worker, stop, progress, log) -> SweepOutcome:
    """A sweep with grid axes: every setting (`sweeps.axes`) validated first, then each trained as a sweep of its
    own in `settings/<tag>/`; the parent keeps sweep.json and the results of all settings."""
    axis_filters, grid_filters = axes.split_filters(config, only)
    every = axes.settings(config)
    chosen = axes.chosen(every, axis_filters)
    if not chosen:
        raise UserError("the --only filter leaves no setting of the grid axes; check its values against --list")
    configs = [axes.setting_config(config, setting) for setting in chosen]
    runs = [validate(setting_config, grid_filters) for setting_config in configs]
    _make_sweep_dir(sweep_dir)
    if is_primary():
        record = dict(_sweep_record(config), settings=[
            {"tag": s.tag, "values": s.columns, "assignments": dict(s.assignments)} for s in every])
        with SweepLock(sweep_dir):
            atomic_io.write_json(sweep_dir / "sweep.json", record)
    outcome = SweepOutcome(sweep_dir, [], [], [], [], [])
    siblings = [(axes.setting_config(config, s), setting_dir(sweep_dir, s.tag)) for s in every]
    for k, (setting, setting_config, setting_runs) in enumerate(zip(chosen, configs, runs)):
        log(f"setting {k + 1}/{len(chosen)}: {setting.label}")
        here = setting_dir(sweep_dir, setting.tag)
        if is_primary() and worker == (0, 1):  # one process copies; workers sharing the grid train their own
            shared = shared_reference.share_raw_runs(setting_config, here, [e for e in siblings if e[1] != here],
                                                     setting_runs)
            if shared:
                log(f"  {len(shared)} raw run(s) copied from a setting with the same data, model and recipe")
        part = run_sweep(setting_config, sweep_dir.parent, only=grid_filters, worker=worker, stop=stop,
                         progress=progress, log=log, sweep_dir=setting_dir(sweep_dir, setting.tag))
        for name in ("trained", "skipped", "failed", "busy"):
            getattr(outcome, name).extend(getattr(part, name))
    outcome.rows = collect_results(sweep_dir, config)
    if is_primary():
        with SweepLock(sweep_dir):
            write_results(sweep_dir, outcome.rows, [name for name, _ in axes.raw_axes(config)])
    return outcome


def _make_sweep_dir(sweep_dir: pathlib.Path):
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the sweep directory {sweep_dir} ({e.strerror}); pick a writable --workdir")
    if not os.access(sweep_dir, os.W_OK):
        raise UserError(f"the sweep directory {sweep_dir} is not writable; pick another --workdir")


def _sweep_record(config) -> dict:
    """sweep.json: the config, its identity (`sweeps.identity`) and what the quantizer's levels mean."""
    record = config.to_dict()
    spec = registry.get(config.quantizer.name)
    record.update(level_name=spec.level_name, dataset=config.data.name, quantizer_name=spec.name,
                  quantizer_spec=spec.describe(config.grid.level), **identity.record(config))
    return record


def plan_stacks(runs: Sequence[RunSpec], run_dirs: Sequence[pathlib.Path], stack_size: int) -> List[List[int]]:
    """Indices of `runs` in stacks of at most `stack_size` runs of one architecture that resume from one epoch
    (read from `run_dirs`), in grid order (level by level); with `stack_size` 1, the grid order itself."""
    assert stack_size >= 1
    groups: Dict[tuple, List[int]] = {}
    for i, (spec, run_dir) in enumerate(zip(runs, run_dirs)):
        groups.setdefault((spec.arch, latest_epoch_on_disk(run_dir)), []).append(i)
    stacks = [members[k:k + stack_size] for members in groups.values() for k in range(0, len(members), stack_size)]
    return sorted(stacks, key=lambda stack: stack[0])


def _train_runs(config, sweep_dir, todo, stop, progress, log):
    """Trains the runs of `todo` that no other worker holds, stack by stack; returns (trained, failed, busy)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ds = load_data(config, sweep_dir)
    log(f"dataset {config.data.name}: {len(ds.x_train)} train / {len(ds.x_test)} test, {ds.num_classes} classes"
        + (f", {ds.skipped} unreadable files skipped" if ds.skipped else "") + f" ({time.perf_counter() - t0:.1f} s)")
    key = fingerprint(ds)
    # A property of the data, so cached beside the datasets (shared by every sweep of the workdir).
    reference = rates.lossless_rate(ds, config.quantizer.apply_to, shared_cache(sweep_dir) / "lossless", key)
    if is_primary():
        write_examples(config, ds, sweep_dir, quantizer_settings(config))
        reference.write(sweep_dir)
        if noise_record.read(sweep_dir) is None:  # the raw data's noise, measured once per sweep without a classifier
            noise_record.write(sweep_dir, noise_record.measure(config, ds, config.analysis.confidence))
    levels = Levels(config, ds, sweep_dir, key, log, reference.fields(ds))  # the lossless rate is on every row
    settings, is_image = train_settings(config), catalog.entry(config.data.name).modality == "image"
    trainers = {}
    for arch in dict.fromkeys(spec.arch for spec in todo):  # compiled once per architecture, reused by its stacks
        trainers[arch] = Trainer(models.build(config.model.family, arch, ds.num_classes, **_model_knobs(config)),
                                 settings, is_image)
    run_dirs = [sweep_dir / "runs" / spec.name for spec in todo]
    stacks = plan_stacks(todo, run_dirs, trainers[todo[0].arch].profile.stack_size)
    outcome = ([], [], [])  # trained, failed, busy
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress, position=0)
    say = bar.write if progress else log
    for k, stack in enumerate(stacks):
        _claim_and_train([todo[i] for i in stack], config, sweep_dir, levels, trainers[todo[stack[0]].arch], stop,
                         progress, say, bar, outcome)
        levels.keep_only({todo[i].level for later in stacks[k + 1:] for i in later})
    bar.close()
    return outcome


def _claim_and_train(specs: List[RunSpec], config, sweep_dir, levels: Levels, trainer: Trainer, stop, progress,
                     say, bar, outcome):
    """Claims the runs of one stack, trains those still unfinished together and writes their results; a run
    another worker holds is left to it."""
    from tqdm.auto import tqdm

    trained, failed, busy = outcome
    claims, members = [], []
    for spec in specs:
        claim = RunClaim(sweep_dir / "runs" / spec.name)
        if not claim.acquire():
            busy.append(spec.name)
            say(f"  {spec.name}: being trained by another worker; leaving it to that one")
            bar.update(1)
        elif read_result(sweep_dir / "runs" / spec.name) is not None:  # finished by another worker meanwhile
            claims.append(claim)
            bar.update(1)
        else:
            claims.append(claim)
            members.append(spec)
    try:
        if not members:
            return
        run_dirs = [sweep_dir / "runs" / spec.name for spec in members]
        datas = [levels.get(spec.level)[0] for spec in members]
        sample = datas[0].x_train[:1]
        stack = {"size": len(members), "mode": trainer.profile.stack_mode, "members": [m.name for m in members]}
        record = trainer.performance_record(sample)
        for spec, run_dir in zip(members, run_dirs):
            run_files.write_config(run_dir, {"run": spec.name, "level": spec.level, "arch": spec.arch,
                                             "seed": spec.seed, "stack": stack, "performance": record,
                                             "config_digest": identity.config_digest(config),
                                             "config": config.to_dict()})
        if len(members) > 1:
            say(f"training {len(members)} runs together: {', '.join(stack['members'])}")
        epochs = config.train.epochs
        epoch_bar = tqdm(total=epochs, desc=f"  {members[0].name} epochs" if len(members) == 1 else
                         f"  {len(members)} runs, epochs", unit="ep", leave=False, disable=not progress, position=1)
        epoch_bar.update(min(len(read_metrics(run_dirs[0])), epochs))

        def on_epoch(m, row):
            epoch_bar.update(max(0, row["epoch"] - epoch_bar.n))
            epoch_bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                                  val=f"{row['val_acc']:.3f}")

        params = trainer.param_count(sample)
        try:
            results = train_runs(run_dirs, trainer, datas, [m.seed for m in members], epochs, stop=stop,
                                 on_epoch=on_epoch)
        finally:
            epoch_bar.close()
        for spec, run_dir, fields in zip(members, run_dirs, results):
            row = result_row(config, spec, levels.get(spec.level)[1], params, levels.ds.num_classes, fields)
            run_files.write_result(run_dir, row)
            (trained if row["status"] == "done" else failed).append(spec.name)
            say(_result_line(spec.name, row))
            bar.update(1)
    finally:
        for claim in claims:
            claim.release()


def _result_line(name: str, row: dict) -> str:
    if row["status"] != "done":
        return f"  {name}: failed: {row['error']}"
    return (f"  {name}: test acc {row['test_acc']:.4f} (best epoch {row['best_epoch']}, val {row['val_acc']:.4f}, "
            f"{row['train_seconds']:.1f} s)")
