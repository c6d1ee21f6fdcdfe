"""The data of a sweep's levels: the dataset, its validation split, each level's quantized (and featurized) arrays
and cost info, and a few example images per level for the report.
"""

import pathlib
import time
from typing import Dict, Tuple, Union

import ml_collections
import numpy as np

from helmjax import atomic_io
from helmjax.sweeps import layout, rates
from helmjax.data import catalog
from helmjax.data.dataset import ArrayDataset
from helmjax.distributed import is_primary
from helmjax.sweeps.quantized_data import RAW, fitted_state, quantize
from helmjax.quantizers import registry
from helmjax.training.trainer import SplitData


def load_data(config, sweep_dir: pathlib.Path) -> ArrayDataset:
    options = {k: v for k, v in config.data.to_dict().items() if k not in ("name", "split_seed")}
    if config.data.name in ("cifar10", "image_folder"):
        options.setdefault("cache_dir", str(layout.shared_cache(sweep_dir) / "datasets"))
    return catalog.load(config.data.name, **options)


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


def featurize(config: ml_collections.ConfigDict, ds: ArrayDataset, x: np.ndarray) -> np.ndarray:
    """Model input from stored data: images as they are (uint8), audio as a log-mel spectrogram."""
    features = config.get("features")
    if not features or features.get("name") in (None, "none"):
        return x
    from helmjax import features as feature_lib  # audio only: keeps image sweeps free of it
    options = {k: v for k, v in features.to_dict().items() if k != "name"}
    return np.asarray(feature_lib.log_mel_spectrogram(x, ds.sample_rate, **options))


def quantizer_settings(config) -> dict:
    """The quantizer's own options from `config.quantizer` (everything but which one and which splits)."""
    return {k: v for k, v in config.quantizer.to_dict().items() if k not in ("name", "apply_to")}


class Levels:
    """Each level's model-ready data (train minus validation, validation, test: host arrays shared by the runs of
    the level) and cost info, quantized through the cache when first asked for and dropped when no longer needed.
    `lossless`: the dataset's lossless-rate fields, recorded with every level."""

    def __init__(self, config, ds: ArrayDataset, sweep_dir: pathlib.Path, key: str, log, lossless: dict):
        self.config, self.ds, self.cache_dir, self.key, self.log = config, ds, sweep_dir / "cache", key, log
        self.lossless = lossless
        self.train_idx, self.val_idx = split_validation(ds, config.train.val_fraction, config.data.get("split_seed", 0))
        self.loaded: Dict[Union[int, str], Tuple[SplitData, dict]] = {}

    def get(self, level) -> Tuple[SplitData, dict]:
        """(data, cost info) of `level`; writes its per-item bits to `rates/` when first loaded."""
        if level not in self.loaded:
            self.loaded[level] = self._load(level)
        return self.loaded[level]

    def keep_only(self, levels):
        self.loaded = {level: loaded for level, loaded in self.loaded.items() if level in set(levels)}

    def _load(self, level) -> Tuple[SplitData, dict]:
        config, ds = self.config, self.ds
        t0 = time.perf_counter()
        level_data = quantize(ds, level, config.quantizer.name, quantizer_settings(config), config.quantizer.apply_to,
                              self.cache_dir, self.key)
        info = dict(level_data.info, **self.lossless)
        tag = registry.get(config.quantizer.name).tag(level)
        if is_primary():
            rates.write_level(self.cache_dir.parent, tag, level_data.bits)
        self.log(f"level {tag}: "
                 + (f"{info['bpp']:.3f} bits/pixel" if info.get("bpp") is not None else
                    f"{info['bits_per_second'] / 1000:.1f} kbit/s")
                 + f" ({time.perf_counter() - t0:.1f} s)")
        x_train, x_test = featurize(config, ds, level_data.x_train), featurize(config, ds, level_data.x_test)
        y_train, y_test = ds.y_train.astype(np.int32), ds.y_test.astype(np.int32)
        return SplitData(x_train[self.train_idx], y_train[self.train_idx], x_train[self.val_idx],
                         y_train[self.val_idx], x_test, y_test), info


def write_examples(config, ds: ArrayDataset, sweep_dir: pathlib.Path, quantizer_options: dict, count: int = 8):
    """A few test images at every level, for the report's example grid (images only; cheap)."""
    if ds.x_test.ndim != 4 or (sweep_dir / "examples.npz").exists():
        return
    picks = ds.x_test[:count]
    arrays = {"raw": picks}
    spec = registry.get(config.quantizer.name)
    for level in config.grid.level:
        if level != RAW:
            # a quantizer fitted on the training split (learned JPEG tables) gets its state, as in `quantize`
            fitted = fitted_state(ds, spec, level, quantizer_options, sweep_dir / "cache")
            extra = {} if fitted is None else {"fitted": fitted}
            arrays[f"level_{level}"] = registry.apply(config.quantizer.name, picks, level, **quantizer_options,
                                                      **extra).data
    atomic_io.write_npz(sweep_dir / "examples.npz", **arrays)
