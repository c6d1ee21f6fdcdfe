"""Runs that did not learn: test accuracy not above chance. A run stuck at chance is a failed optimisation, not a
measurement of what a level keeps, unless every seed of that level is there too (then the level may have erased the
classes; the sweep alone cannot tell the two apart)."""

import math
from typing import List

from scipy import stats

from helmjax.layout import RAW


def above_chance(test_acc: float, num_test: int, num_classes: int, confidence: float) -> bool:
    """One-sided exact binomial test of accuracy > 1/num_classes at the given confidence."""
    correct = int(round(test_acc * num_test))
    return stats.binomtest(correct, num_test, 1.0 / num_classes, alternative="greater").pvalue < 1.0 - confidence


def runs_at_chance(runs, confidence: float) -> List[dict]:
    """One record per finished run whose accuracy is not above chance; runs without `num_classes` or `num_test` in
    their result (older sweeps) are not judged. `verdict`: "failed optimisation" when the run is at the lossless
    level or another seed of its (arch, level) did learn; otherwise "every seed at chance"."""
    judged = {}
    for run in runs:
        classes, num_test = run.row.get("num_classes"), run.row.get("num_test")
        if not classes or not num_test or not math.isfinite(run.test_acc):
            continue
        judged[run.name] = above_chance(run.test_acc, int(num_test), int(classes), confidence)
    out = []
    for run in runs:
        if judged.get(run.name, True):
            continue
        peers = [judged.get(r.name) for r in runs if r.arch == run.arch and r.level == run.level and r is not run]
        failed = run.level == RAW or any(peers)
        out.append({"run": run.name, "level": run.level, "arch": run.arch, "seed": run.seed,
                    "test_acc": run.test_acc, "chance": 1.0 / int(run.row["num_classes"]),
                    "verdict": "failed optimisation" if failed else "every seed at chance"})
    return out
