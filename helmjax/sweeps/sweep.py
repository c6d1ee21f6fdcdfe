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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from helmjax import atomic_io, layout, memory
from helmjax.distributed import RunClaim, is_primary
from helmjax.errors import UserError
from helmjax.layout import read_metrics, read_result, read_run_config
from helmjax.sweeps import noise_record, rates, shared_reference
from helmjax.sweeps.level_data import Levels, write_examples
from helmjax.sweeps.plan import RunSpec, SettingPlan, SweepPlan, make_plan
from helmjax.sweeps.quantized_data import fingerprint
from helmjax.training import run_files
from helmjax.training.checkpoints import latest_epoch_on_disk
from helmjax.training.loop import StopFlag, StopRequested, train_runs
from helmjax.training.pipeline import Split, train_steps_per_epoch
from helmjax.training.trainer import Trainer

__all__ = ["StopFlag", "StopRequested", "RunSpec", "run_sweep", "run_plan", "collect_results", "write_results"]


RESULT_COLUMNS = ["run", "experiment", "setting", "dataset", "quantizer", "level_name", "level", "bpp", "bpp_payload",
                  "bpp_header", "bpp_lossless", "bits_per_second", "bits_per_second_payload",
                  "bits_per_second_lossless", "lossless_codec", "sample_rate", "sample_rate_actual", "kbps_actual",
                  "bytes_per_item", "n_train", "arch",
                  "params", "num_classes", "seed", "val_acc", "test_acc", "val_top5_acc", "test_top5_acc",
                  "best_epoch", "epochs", "train_seconds", "num_test", "status", "error"]


class SweepLock:
    """A short exclusive lock on the sweep directory while its shared files (sweep.json, results) are written."""

    def __init__(self, sweep_dir: pathlib.Path):
        self.path = sweep_dir / layout.LOCK_FILE

    def __enter__(self):
        self.file = open(self.path, "a")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def result_row(setting: SettingPlan, run: RunSpec, level_data_info: dict, params: int, num_classes: int,
               fields: dict) -> dict:
    spec = setting.quantizer.spec
    row = {"run": run.name, "experiment": setting.experiment, "setting": setting.tag or None,
           "dataset": setting.data.name, "num_classes": num_classes,
           "quantizer": spec.name, "level_name": spec.level_name, "level": run.level,
           spec.level_name: run.level, "arch": run.arch, "params": params, "seed": run.seed, "status": "done",
           "error": None}
    row.update({k: level_data_info.get(k) for k in ("bpp", "bpp_payload", "bpp_header", "bpp_lossless",
                                                       "bits_per_second", "bits_per_second_payload",
                                                       "bits_per_second_lossless", "lossless_codec",
                                                       "sample_rate", "bytes_per_item", "n_train")})
    row.update(level_data_info)  # and what the quantizer records per level (e.g. LAME's actual sample rate)
    row.update(fields)
    return row


def setting_rows(setting: SettingPlan) -> List[dict]:
    """Rows of every finished (or failed) run of the setting, in grid order; a run trained under another config
    (its config.json holds another digest: copied in by hand, or from before a directory guard) is left out with
    a warning, so one table never mixes two experiments."""
    rows, foreign = [], []
    for run in setting.runs:
        result = read_result(setting.run_dir(run))
        if result is None:
            continue
        recorded = read_run_config(setting.run_dir(run)).get("config_digest")
        if recorded not in (None, setting.digest):
            foreign.append(run.name)
            continue
        rows.append(result)
    if foreign:
        print(f"warning: {len(foreign)} run(s) in {setting.sweep_dir} were trained under another config and are left "
              f"out: {', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}")
    return rows


def collect_results(plan: SweepPlan) -> List[dict]:
    """Rows of every setting, each with its axis values as columns."""
    return [dict(row, **setting.columns) for setting in plan.settings for row in setting_rows(setting)]


def write_results(sweep_dir: pathlib.Path, rows: List[dict], axis_names: Sequence[str] = ()):
    """results.jsonl and results.csv; `axis_names`: the grid axes over config keys, one column each."""
    level_names = sorted({r["level_name"] for r in rows})
    columns = RESULT_COLUMNS[:3] + list(axis_names) + RESULT_COLUMNS[3:7] + level_names + RESULT_COLUMNS[7:]
    atomic_io.write_text(sweep_dir / layout.RESULTS_JSONL,
                         "".join(json.dumps(r, default=str) + "\n" for r in rows))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if r.get(k) is None else r.get(k) for k in columns})
    atomic_io.write_text(sweep_dir / layout.RESULTS_CSV, buf.getvalue())


@dataclasses.dataclass
class SweepOutcome:
    sweep_dir: pathlib.Path
    rows: List[dict]
    trained: List[str]
    skipped: List[str]
    failed: List[str]
    busy: List[str] = dataclasses.field(default_factory=list)  # claimed by another worker


def run_sweep(config, workdir: pathlib.Path, *, sweep_dir: Optional[pathlib.Path] = None, **kwargs) -> SweepOutcome:
    """Runs (or resumes) the sweep of `config` in `sweep_dir` (default `<workdir>/<config.name>`;
    `sweeps.identity.resolve_sweep_dir` names another for a config that differs from the one there): `run_plan` of
    its plan."""
    return run_plan(make_plan(config, sweep_dir, workdir), **kwargs)


def run_plan(plan: SweepPlan, *, only: Optional[dict] = None, worker: Tuple[int, int] = (0, 1),
             stop: Optional[StopFlag] = None, progress: bool = True, log=print) -> SweepOutcome:
    """Runs (or resumes) the plan's sweep; returns its rows. Raises `StopRequested` after a clean stop.

    Each setting (the sweep itself when there are no grid axes) is trained as a sweep of its own in its
    directory; the sweep's directory keeps sweep.json and the results of all settings. `worker=(i, n)` takes every
    n-th run of a setting's grid starting at i; runs another process is training (a claim is held) are left to it.
    """
    memory.limit_heap_growth()  # a long run's peak memory no longer creeps up with its data (helmjax.memory)
    chosen = plan.choose(only)  # everything validated before anything is written
    _make_sweep_dir(plan.sweep_dir)
    if is_primary():
        with SweepLock(plan.sweep_dir):
            atomic_io.write_json(plan.sweep_dir / layout.SWEEP_FILE, plan.record)
    outcome = SweepOutcome(plan.sweep_dir, [], [], [], [], [])
    for k, (setting, runs) in enumerate(chosen):
        if setting.sweep_dir != plan.sweep_dir:
            log(f"setting {k + 1}/{len(chosen)}: {setting.label}")
            _make_sweep_dir(setting.sweep_dir)
            if is_primary() and worker == (0, 1):  # one process copies; workers sharing the grid train their own
                others = [s for s in plan.settings if s.sweep_dir != setting.sweep_dir]
                shared = shared_reference.share_raw_runs(setting, others, runs)
                if shared:
                    log(f"  {len(shared)} raw run(s) copied from a setting with the same data, model and recipe")
            if is_primary():
                with SweepLock(setting.sweep_dir):
                    atomic_io.write_json(setting.sweep_dir / layout.SWEEP_FILE, setting.record)
        _run_setting(setting, runs, worker, stop, progress, log, outcome)
    outcome.rows = collect_results(plan)
    if is_primary() and plan.axis_names:
        with SweepLock(plan.sweep_dir):
            write_results(plan.sweep_dir, outcome.rows, plan.axis_names)
    return outcome


def _run_setting(setting: SettingPlan, runs: List[RunSpec], worker, stop, progress, log, outcome: SweepOutcome):
    """Trains this worker's share of the setting's runs that are not finished, then writes its results."""
    index, count = worker
    mine = [r for k, r in enumerate(runs) if k % count == index]
    todo = [r for r in mine if read_result(setting.run_dir(r)) is None]
    skipped = [r.name for r in mine if r not in todo]
    if skipped:
        log(f"{len(skipped)} of {len(mine)} runs already finished; skipping them")
    outcome.skipped.extend(skipped)
    if todo:
        trained, failed, busy = _train_runs(setting, todo, stop, progress, log)
        outcome.trained.extend(trained)
        outcome.failed.extend(failed)
        outcome.busy.extend(busy)
    if is_primary():
        with SweepLock(setting.sweep_dir):
            write_results(setting.sweep_dir, setting_rows(setting))


def _make_sweep_dir(sweep_dir: pathlib.Path):
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the sweep directory {sweep_dir} ({e.strerror}); pick a writable --workdir")
    if not os.access(sweep_dir, os.W_OK):
        raise UserError(f"the sweep directory {sweep_dir} is not writable; pick another --workdir")


def plan_stacks(runs: Sequence[RunSpec], run_dirs: Sequence[pathlib.Path], stack_size: int) -> List[List[int]]:
    """Indices of `runs` in stacks of at most `stack_size` runs of one architecture that resume from one epoch
    (read from `run_dirs`), in grid order (level by level); with `stack_size` 1, the grid order itself."""
    assert stack_size >= 1
    groups: Dict[tuple, List[int]] = {}
    for i, (spec, run_dir) in enumerate(zip(runs, run_dirs)):
        groups.setdefault((spec.arch, latest_epoch_on_disk(run_dir)), []).append(i)
    stacks = [members[k:k + stack_size] for members in groups.values() for k in range(0, len(members), stack_size)]
    return sorted(stacks, key=lambda stack: stack[0])


def _train_runs(setting: SettingPlan, todo: List[RunSpec], stop, progress, log):
    """Trains the runs of `todo` that no other worker holds, stack by stack; returns (trained, failed, busy)."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    sweep_dir, quantizer = setting.sweep_dir, setting.quantizer
    ds = setting.data.load(sweep_dir)
    log(f"dataset {setting.data.name}: {len(ds.x_train)} train / {len(ds.x_test)} test, {ds.num_classes} classes"
        + (f", {ds.skipped} unreadable files skipped" if ds.skipped else "") + f" ({time.perf_counter() - t0:.1f} s)")
    key = fingerprint(ds)
    # A property of the data, so cached beside the datasets (shared by every sweep of the workdir).
    reference = rates.lossless_rate(ds, quantizer.apply_to, layout.shared_cache(sweep_dir) / layout.LOSSLESS_DIR, key)
    if is_primary():
        write_examples(quantizer, setting.levels, ds, sweep_dir)
        reference.write(sweep_dir)
        if noise_record.read(sweep_dir) is None:  # the raw data's noise, measured once per sweep without a classifier
            camera = setting.data.options if setting.data.name == "camera" else None
            noise_record.write(sweep_dir, noise_record.measure(ds, quantizer.subsampling, camera, setting.confidence))
    levels = Levels(quantizer, setting.data, setting.features, ds, sweep_dir, key, log, reference.fields(ds),
                    setting.train)
    is_image = setting.data.modality == "image"
    steps_per_epoch = train_steps_per_epoch(len(levels.train_idx), setting.train)  # every level's, for the schedule
    trainers = {}
    for arch in dict.fromkeys(run.arch for run in todo):  # compiled once per architecture, reused by its stacks
        trainers[arch] = Trainer(setting.model.build(arch, ds.num_classes), setting.train, is_image,
                                 steps_per_epoch=steps_per_epoch)
    stacks = plan_stacks(todo, [setting.run_dir(run) for run in todo], trainers[todo[0].arch].profile.stack_size)
    outcome = ([], [], [])  # trained, failed, busy
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not progress, position=0)
    say = bar.write if progress else log
    for k, stack in enumerate(stacks):
        _claim_and_train(setting, [todo[i] for i in stack], levels, trainers[todo[stack[0]].arch], stop, progress,
                         say, bar, outcome)
        levels.keep_only({todo[i].level for later in stacks[k + 1:] for i in later})
    bar.close()
    return outcome


def _claim_and_train(setting: SettingPlan, runs: List[RunSpec], levels: Levels, trainer: Trainer, stop, progress,
                     say, bar, outcome):
    """Claims the runs of one stack, trains those still unfinished together and writes their results; a run
    another worker holds is left to it, and so is one whose claim this worker loses while training it (its lease
    lapsed and another worker took it over): the stack stops at the next epoch and writes no result, so no run is
    finished by two workers. The stack's other runs resume from their checkpoints on a later pass."""
    from tqdm.auto import tqdm

    trained, failed, busy = outcome
    claims, members, owned = [], [], {}
    for run in runs:
        claim = RunClaim(setting.run_dir(run))
        if not claim.acquire():
            busy.append(run.name)
            say(f"  {run.name}: being trained by another worker; leaving it to that one")
            bar.update(1)
        elif read_result(setting.run_dir(run)) is not None:  # finished by another worker meanwhile
            claims.append(claim)
            bar.update(1)
        else:
            claims.append(claim)
            members.append(run)
            owned[run.name] = claim
    try:
        if not members:
            return
        run_dirs = [setting.run_dir(run) for run in members]
        datas = [levels.get(run.level)[0] for run in members]
        sample = Split.of(datas[0]).train.read(np.arange(1))[0]
        stack = {"size": len(members), "mode": trainer.profile.stack_mode, "members": [m.name for m in members]}
        record = trainer.performance_record(sample)
        for run, run_dir in zip(members, run_dirs):
            run_files.write_config(run_dir, {"run": run.name, "level": run.level, "arch": run.arch,
                                             "seed": run.seed, "stack": stack, "performance": record,
                                             "config_digest": setting.digest, "config": setting.config})
        if len(members) > 1:
            say(f"training {len(members)} runs together: {', '.join(stack['members'])}")
        epochs = setting.train.epochs
        epoch_bar = tqdm(total=epochs, desc=f"  {members[0].name} epochs" if len(members) == 1 else
                         f"  {len(members)} runs, epochs", unit="ep", leave=False, disable=not progress, position=1)
        epoch_bar.update(min(len(read_metrics(run_dirs[0])), epochs))

        def on_epoch(m, row):
            if not owned[members[m].name].confirm():  # each epoch renews the lease and stops a lost stack
                raise _ClaimLost()
            epoch_bar.update(max(0, row["epoch"] - epoch_bar.n))
            epoch_bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.3f}",
                                  val=f"{row['val_acc']:.3f}")

        params = trainer.param_count(sample)
        try:
            results = train_runs(run_dirs, trainer, datas, [m.seed for m in members], epochs, stop=stop,
                                 on_epoch=on_epoch)
        except _ClaimLost:
            results = [None] * len(members)
        finally:
            epoch_bar.close()
        for run, run_dir, fields in zip(members, run_dirs, results):
            if fields is None or not owned[run.name].confirm():  # checked again just before the result is written
                if owned[run.name].lost:
                    busy.append(run.name)
                    say(f"  {run.name}: this worker's claim lapsed (another worker may own the run now); leaving "
                        f"the run to it, no result written")
                else:
                    say(f"  {run.name}: stopped with a run of its stack whose claim was lost; resumes later")
                bar.update(1)
                continue
            row = result_row(setting, run, levels.get(run.level)[1], params, levels.ds.num_classes, fields)
            run_files.write_result(run_dir, row)
            (trained if row["status"] == "done" else failed).append(run.name)
            say(_result_line(run.name, row))
            bar.update(1)
    finally:
        for claim in claims:
            claim.release()


class _ClaimLost(Exception):
    """A run of the stack being trained is no longer this worker's (`RunClaim.lost`)."""


def _result_line(name: str, row: dict) -> str:
    if row["status"] != "done":
        return f"  {name}: failed: {row['error']}"
    top5 = f", top-5 {row['test_top5_acc']:.4f}" if row.get("test_top5_acc") is not None else ""
    return (f"  {name}: test acc {row['test_acc']:.4f}{top5} (best epoch {row['best_epoch']}, val "
            f"{row['val_acc']:.4f}, {row['train_seconds']:.1f} s)")
