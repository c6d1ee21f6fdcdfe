"""A pilot sweep's noise, for the power planner: the accuracy and the seed spread its results show, measured the way
the analysis measures them (`contrasts.share_pooled_variance`: the spread of runs around their (arch, level) mean as
a quasi-binomial dispersion, and the part of it that is each run's own luck on the test examples, from the runs'
per-example correctness)."""

import collections
import dataclasses
import math
import pathlib
from typing import List, Optional

import numpy as np

from helmjax import layout
from helmjax.analysis import contrasts
from helmjax.analysis.sweep_files import as_float, parse_level, read_rows
from helmjax.layout import RAW


@dataclasses.dataclass(frozen=True)
class Pilot:
    """What a finished (or partial) sweep says about the noise, as fractions of accuracy."""
    sweep_dir: str
    runs: int  # done runs read
    accuracy: float  # mean accuracy of the reference (raw; the best level's when there is no raw run), over archs
    num_test: Optional[int]  # test examples per run
    df: int  # degrees of freedom of the pooled seed spread (0: no group has 2 seeds)
    run_var: Optional[float]  # variance of a run's test accuracy over seeds, at `accuracy`; None when df is 0
    example_share: Optional[float]  # κ of `power.Noise`, when the runs saved their per-example correctness


def read_pilot(sweep_dir: pathlib.Path) -> Optional[Pilot]:
    """The pilot of the sweep in `sweep_dir`; None when it holds no finished run."""
    sweep_dir = pathlib.Path(sweep_dir)
    if not ((sweep_dir / layout.RESULTS_JSONL).exists() or (sweep_dir / layout.RESULTS_CSV).exists()):
        return None
    members = collections.defaultdict(list)
    for row in read_rows(sweep_dir, []):
        acc, level = as_float(row.get("test_acc")), parse_level(row.get("level"))
        if row.get("status", "done") == "done" and math.isfinite(acc) and level is not None:
            members[(str(row.get("arch", "?")), level)].append(row)
    if not members:
        return None
    correct = {row["run"]: layout.read_test_correct(layout.run_dir(sweep_dir, row["run"]))
               for rows in members.values() for row in rows}
    lengths = collections.Counter(len(c) for c in correct.values() if c is not None)
    sizes = [as_float(row.get("num_test")) for rows in members.values() for row in rows]
    num_test = (lengths.most_common(1)[0][0] if lengths else
                next((int(s) for s in sizes if math.isfinite(s) and s > 0), None))
    groups = {}
    for key, rows in members.items():
        runs = [correct[row["run"]] for row in rows]
        paired = all(c is not None and len(c) == num_test for c in runs)
        groups[key] = contrasts.Group(seeds=tuple(row.get("seed") for row in rows),
                                      acc=np.array([as_float(row["test_acc"]) for row in rows]),
                                      replicates=np.zeros((1, len(rows))),  # the pooling does not read them
                                      correct=np.stack(runs).astype(float) if paired else None, test_size=num_test)
    pooled: List[contrasts.Pooled] = []
    for arch in sorted({arch for arch, _ in groups}):
        found = contrasts.share_pooled_variance([g for (a, _), g in groups.items() if a == arch])
        if found is not None:
            pooled.append(found)
    accuracy = _reference_accuracy(groups)
    df = int(sum(p.df for p in pooled))
    run_var = example_share = None
    if df:
        scale = accuracy * (1.0 - accuracy)
        run_var = sum(p.df * p.seed_dispersion for p in pooled) / df * scale
        spread = [g for g in groups.values() if g.size >= 2]
        if num_test and all(g.correct is not None for g in spread):
            # share_pooled_variance's example dispersion is (own luck of a run) / p(1 - p) = κ / n.
            example_share = min(1.0, sum(p.df * p.example_dispersion for p in pooled) / df * num_test)
    return Pilot(sweep_dir=str(sweep_dir), runs=sum(len(rows) for rows in members.values()), accuracy=accuracy,
                 num_test=num_test, df=df, run_var=run_var, example_share=example_share)


def _reference_accuracy(groups) -> float:
    """Mean over archs of the raw level's mean accuracy (of the best level's where an arch has no raw run)."""
    means = []
    for arch in sorted({arch for arch, _ in groups}):
        own = {level: g.mean for (a, level), g in groups.items() if a == arch}
        means.append(own[RAW] if RAW in own else max(own.values()))
    return float(np.mean(means))
