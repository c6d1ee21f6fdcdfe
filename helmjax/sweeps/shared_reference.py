"""The lossless level is the data as is: settings of a sweep that differ only in the quantizer (a grid axis over
codecs) have the same raw runs. Each is trained once, in the first setting that needs it; later settings get a copy
(checkpoints, metrics, test_correct.npy) renamed to their own run name and config, with `shared_from` naming the
original. The copy lands under a temporary name and is renamed into place, so a kill leaves no half run."""

import json
import pathlib
import shutil
from typing import Sequence, Tuple

from helmjax import atomic_io
from helmjax.quantizers import registry
from helmjax.sweeps import identity
from helmjax.sweeps.layout import RAW, RESULT_FILE, RUN_CONFIG_FILE, read_result, run_dir


def raw_identity(config) -> str:
    """The digest of what shapes a raw run: everything that shapes a run but the quantizer."""
    keys = {k: v for k, v in identity.shaping(config).items() if not k.startswith("quantizer.")}
    return identity.digest(keys)


def share_raw_runs(config, sweep_dir: pathlib.Path, earlier: Sequence[Tuple[object, pathlib.Path]], runs) -> list:
    """Copies into `sweep_dir` every raw run of `runs` (RunSpecs of `config`) that is unfinished here and finished,
    successfully, in an earlier setting of the same raw identity; returns the names copied."""
    key = raw_identity(config)
    sources = [(c, d) for c, d in earlier if raw_identity(c) == key]
    spec = registry.get(config.quantizer.name)
    copied = []
    for run in runs:
        target = run_dir(sweep_dir, run.name)
        if run.level != RAW or read_result(target) is not None:
            continue
        for source_config, source_dir in sources:
            source_name = run.name.replace(config.grid.setting, source_config.grid.setting, 1)
            source = run_dir(source_dir, source_name)
            result = read_result(source)
            if not result or result.get("status") != "done":
                continue
            staging = target.with_name(f".{target.name}.copy")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".claim"))
            record = json.loads((staging / RUN_CONFIG_FILE).read_text())
            record.update(run=run.name, config_digest=identity.config_digest(config), config=config.to_dict(),
                          shared_from=str(source))
            atomic_io.write_json(staging / RUN_CONFIG_FILE, record)
            old_level_name = result.get("level_name")
            row = {k: v for k, v in result.items() if k != old_level_name or k == "level"}
            row.update(run=run.name, setting=config.grid.setting or None, quantizer=spec.name,
                       level_name=spec.level_name, shared_from=str(source))
            row[spec.level_name] = RAW
            atomic_io.write_json(staging / RESULT_FILE, row)
            shutil.rmtree(target, ignore_errors=True)  # an unfinished attempt of this run, if any
            staging.rename(target)
            copied.append(run.name)
            break
    return copied
