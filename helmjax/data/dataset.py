"""The in-memory dataset every loader returns: arrays at the edges, uint8 NHWC for images."""

import dataclasses
from typing import Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
    """Train and test arrays with integer labels.

    Images: x uint8 (N, H, W, C). Audio: x float32 (N, T) waveforms in [-1, 1] at `sample_rate`.
    `skipped` counts files a loader could not read (reported, not fatal).
    """
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: Tuple[str, ...]
    sample_rate: Optional[int] = None
    skipped: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __post_init__(self):
        assert len(self.x_train) == len(self.y_train), (self.x_train.shape, self.y_train.shape)
        assert len(self.x_test) == len(self.y_test), (self.x_test.shape, self.y_test.shape)
