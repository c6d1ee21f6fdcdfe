"""Convergence as the epochs a run needs to reach a fixed accuracy: a share of the lossless run's best.

The target is the same for every level of an arch (FRACTION of the raw run's best validation accuracy, same seed
where it exists), so a run that collapses early does not "converge" early: it never reaches the target.
"""

from typing import Optional, Sequence

import numpy as np

FRACTION = 0.95


def epochs_to_reach(val_acc: Sequence[float], target: float) -> Optional[int]:
    """First epoch (1-based) whose validation accuracy reaches `target`; None if none does."""
    values = np.asarray([v for v in val_acc], float)
    if values.size == 0 or not np.isfinite(target):
        return None
    reached = np.flatnonzero(np.nan_to_num(values, nan=-np.inf) >= target)
    return int(reached[0]) + 1 if reached.size else None
