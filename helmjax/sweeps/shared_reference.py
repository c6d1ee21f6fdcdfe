"""The lossless level is the data as is: settings of a sweep that differ only in the quantizer (a grid axis over
codecs) have the same raw runs. Each is trained once, in the first setting that needs it; later settings get a copy
(checkpoints, metrics, test_correct.npy) renamed to their own run name and config, with `shared_from` naming the
original. The copy lands under a temporary name and is renamed into place, so a kill leaves no half run."""

import json
import shutil
from typing import Sequence

from helmjax import atomic_io
from helmjax.layout import CLAIM_FILE, RAW, RESULT_FILE, RUN_CONFIG_FILE, read_result, run_dir
from helmjax.sweeps.plan import RunSpec, SettingPlan


def share_raw_runs(setting: SettingPlan, others: Sequence[SettingPlan], runs: Sequence[RunSpec]) -> list:
    """Copies into `setting`'s directory every raw run of `runs` that is unfinished there and finished,
    successfully, in another setting of the same raw identity (`SettingPlan.raw_digest`: everything that shapes a
    run but the quantizer); returns the names copied."""
    sources = [other for other in others if other.raw_digest == setting.raw_digest]
    spec = setting.quantizer.spec
    copied = []
    for run in runs:
        target = setting.run_dir(run)
        if run.level != RAW or read_result(target) is not None:
            continue
        for other in sources:
            source = run_dir(other.sweep_dir, run.name.replace(setting.tag, other.tag, 1))
            result = read_result(source)
            if not result or result.get("status") != "done":
                continue
            staging = target.with_name(f".{target.name}.copy")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging, ignore=shutil.ignore_patterns(f"{CLAIM_FILE}*"))
            record = json.loads((staging / RUN_CONFIG_FILE).read_text())
            record.update(run=run.name, config_digest=setting.digest, config=setting.config, shared_from=str(source))
            atomic_io.write_json(staging / RUN_CONFIG_FILE, record)
            old_level_name = result.get("level_name")
            row = {k: v for k, v in result.items() if k != old_level_name or k == "level"}
            row.update(run=run.name, setting=setting.tag or None, quantizer=spec.name,
                       level_name=spec.level_name, shared_from=str(source))
            row[spec.level_name] = RAW
            atomic_io.write_json(staging / RESULT_FILE, row)
            shutil.rmtree(target, ignore_errors=True)  # an unfinished attempt of this run, if any
            staging.rename(target)
            copied.append(run.name)
            break
    return copied
