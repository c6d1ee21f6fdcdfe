"""Shared fixtures: a tiny, easy image dataset registered by name so sweep tests run in seconds."""

import numpy as np
import pytest

from helmjax.data import catalog
from helmjax.data.dataset import ArrayDataset
from helmjax.paths import data_dir


def make_stripes(seed: int = 0, n_train: int = 256, n_test: int = 128, size: int = 16) -> ArrayDataset:
    """4 classes: a bright vertical band in one of four positions, on uniform noise."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 4, n_train + n_test).astype(np.int32)
    x = (rng.rand(n_train + n_test, size, size, 3) * 60).astype(np.uint8)
    band = size // 4
    for c in range(4):
        x[y == c, :, c * band:(c + 1) * band] += 150
    return ArrayDataset("stripes", x[:n_train], y[:n_train], x[n_train:], y[n_train:], tuple("abcd"))


catalog.register("stripes", make_stripes, modality="image", needs="nothing (test fixture)")


@pytest.fixture
def shared_data():
    """The real data directory; tests that need it skip with the reason when it is absent."""
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"shared data not found at {d}; set HELMJAX_DATA_DIR to the folder holding cifar10/, kodak/, fsdd/")
    return d
