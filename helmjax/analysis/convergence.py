"""Convergence epoch: the original code's rule, so the paper's "converges faster" claim can be checked.

First epoch i (1-based) with mean(val_acc[i : i + 10]) > 0.99 * max(val_acc); windows at the end are
shorter, as the original's slicing made them.
"""

from typing import Optional, Sequence

import numpy as np

WINDOW = 10
FRACTION = 0.99


def convergence_epoch(val_acc: Sequence[float], window: int = WINDOW, fraction: float = FRACTION) -> Optional[int]:
    values = np.asarray([v for v in val_acc], float)
    if values.size == 0 or not np.all(np.isfinite(values)):
        return None
    threshold = fraction * values.max()
    for start in range(values.size):
        if values[start:start + window].mean() > threshold:
            return start + 1
    return None
