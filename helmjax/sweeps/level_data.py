"""The data of a sweep's levels: the validation split, each level's quantized (and featurized) arrays and cost info,
and a few example images per level for the report. Everything comes from a setting's plan (`sweeps.plan`).
"""

import pathlib
import time
from typing import Dict, Optional, Tuple, Union

import numpy as np

from helmjax import atomic_io, layout
from helmjax.data.dataset import ArrayDataset
from helmjax.distributed import is_primary
from helmjax.sweeps import rates
from helmjax.sweeps.plan import DataPlan, QuantizerPlan
from helmjax.sweeps.quantized_data import RAW, fitted_state, quantize
from helmjax.training.pipeline import SplitData


def split_validation(ds: ArrayDataset, fraction: float, seed: int):
    """Indices (train, val) of the training set; the same examples at every level, stratified by class."""
    rng = np.random.RandomState(seed)
    val = []
    for c in np.unique(ds.y_train):
        members = np.flatnonzero(ds.y_train == c)
        rng.shuffle(members)
        val.append(members[: max(1, int(round(fraction * len(members))))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(ds.y_train)), val)
    return train, val


def nested_subset(labels: np.ndarray, indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The first `fraction` of `indices` in one fixed class-interleaved order: each class keeps its share, and
    the subset at a fraction is contained in the subset at any larger one, so differences between training-set
    sizes come from the size, not from which images were drawn. Sorted; all of `indices` at fraction 1."""
    if fraction >= 1.0:
        return indices
    rng = np.random.RandomState(seed + 1)  # another stream than the validation split's
    keys = np.empty(len(indices))
    for c in np.unique(labels[indices]):
        members = np.flatnonzero(labels[indices] == c)
        rank = np.empty(len(members))
        rank[rng.permutation(len(members))] = np.arange(len(members))
        keys[members] = (rank + 0.5) / len(members)  # a class's k-th image comes at its share k/n of the order
    order = np.lexsort((labels[indices], keys))
    keep = max(len(np.unique(labels[indices])), int(round(fraction * len(indices))))
    return np.sort(indices[order[:keep]])


def featurize(features: Optional[dict], ds: ArrayDataset, x: np.ndarray) -> np.ndarray:
    """Model input from stored data: images as they are (uint8), audio as a log-mel spectrogram."""
    if not features:
        return x
    from helmjax import features as feature_lib  # audio only: keeps image sweeps free of it
    options = {k: v for k, v in features.items() if k != "name"}
    return np.asarray(feature_lib.log_mel_spectrogram(x, ds.sample_rate, **options))


class Levels:
    """Each level's model-ready data (train minus validation, validation, test: host arrays shared by the runs of
    the level) and cost info, quantized through the cache when first asked for and dropped when no longer needed.
    `lossless`: the dataset's lossless-rate fields, recorded with every level."""

    def __init__(self, quantizer: QuantizerPlan, data: DataPlan, features: Optional[dict], ds: ArrayDataset,
                 sweep_dir: pathlib.Path, key: str, log, lossless: dict):
        self.quantizer, self.features, self.ds, self.key, self.log = quantizer, features, ds, key, log
        self.sweep_dir, self.cache_dir, self.lossless = sweep_dir, layout.cache_dir(sweep_dir), lossless
        self.train_idx, self.val_idx = split_validation(ds, data.val_fraction, data.split_seed)
        self.train_idx = nested_subset(ds.y_train, self.train_idx, data.train_fraction, data.split_seed)
        self.loaded: Dict[Union[int, str], Tuple[SplitData, dict]] = {}

    def get(self, level) -> Tuple[SplitData, dict]:
        """(data, cost info) of `level`; writes its per-item bits to `rates/` when first loaded."""
        if level not in self.loaded:
            self.loaded[level] = self._load(level)
        return self.loaded[level]

    def keep_only(self, levels):
        self.loaded = {level: loaded for level, loaded in self.loaded.items() if level in set(levels)}

    def _load(self, level) -> Tuple[SplitData, dict]:
        ds, quantizer = self.ds, self.quantizer
        t0 = time.perf_counter()
        level_data = quantize(ds, level, quantizer.spec, quantizer.options, quantizer.apply_to, self.cache_dir,
                              self.key)
        info = dict(level_data.info, **self.lossless, n_train=len(self.train_idx))
        tag = quantizer.spec.tag(level)
        if is_primary():
            rates.write_level(self.sweep_dir, tag, level_data.bits)
        self.log(f"level {tag}: "
                 + (f"{info['bpp']:.3f} bits/pixel" if info.get("bpp") is not None else
                    f"{info['bits_per_second'] / 1000:.1f} kbit/s")
                 + f" ({time.perf_counter() - t0:.1f} s)")
        x_train, x_test = featurize(self.features, ds, level_data.x_train), featurize(self.features, ds,
                                                                                      level_data.x_test)
        y_train, y_test = ds.y_train.astype(np.int32), ds.y_test.astype(np.int32)
        return SplitData(x_train[self.train_idx], y_train[self.train_idx], x_train[self.val_idx],
                         y_train[self.val_idx], x_test, y_test), info


def write_examples(quantizer: QuantizerPlan, levels, ds: ArrayDataset, sweep_dir: pathlib.Path, count: int = 8):
    """A few test images at every level, for the report's example grid (images only; cheap)."""
    path = pathlib.Path(sweep_dir) / layout.EXAMPLES_FILE
    if ds.x_test.ndim != 4 or path.exists():
        return
    picks = ds.x_test[:count]
    arrays = {RAW: picks}
    for level in levels:
        if level != RAW:
            # a quantizer fitted on the training split (learned JPEG tables) gets its state, as in `quantize`
            fitted = fitted_state(ds, quantizer.spec, level, quantizer.options, layout.cache_dir(sweep_dir))
            extra = {} if fitted is None else {"fitted": fitted}
            arrays[f"level_{level}"] = quantizer.spec.apply(picks, level, **quantizer.options, **extra).data
    atomic_io.write_npz(path, **arrays)
