"""The data of a sweep's levels: the validation split, each level's stores, sources (and features) and cost info,
and a few example images per level for the report. Everything comes from a setting's plan (`sweeps.plan`).
"""

import functools
import pathlib
import time
from typing import Dict, Optional, Tuple, Union

import jax
import numpy as np

from helmjax import atomic_io, layout
from helmjax.data import level_store
from helmjax.data.dataset import ArrayDataset
from helmjax.data.items import StoreItems, is_lazy
from helmjax.digests import key_digest
from helmjax.distributed import is_primary
from helmjax.quantizers import registry
from helmjax.sweeps import rates
from helmjax.sweeps.plan import DataPlan, QuantizerPlan
from helmjax.sweeps.quantized_data import RAW, fitted_state, level_info, raw_info
from helmjax.training.pipeline import Split, SplitData, StoreSource, in_memory
from helmjax.training.recipe import TrainSettings


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
    """Each level's data as a run reads it, and its cost info. A level is built once into level stores (one per
    split, `data.level_store`: the codec's files, in the workdir's shared cache, so settings with the same data
    share them) and read back through the input pipeline: decoded once and held when it decodes to at most
    `train.in_memory_bytes`, else decoded batch by batch. `lossless`: the dataset's lossless-rate fields, recorded
    with every level."""

    def __init__(self, quantizer: QuantizerPlan, data: DataPlan, features: Optional[dict], ds: ArrayDataset,
                 sweep_dir: pathlib.Path, key: str, log, lossless: dict, train: TrainSettings):
        self.quantizer, self.features, self.ds, self.key, self.log = quantizer, features, ds, key, log
        self.sweep_dir, self.cache_dir = sweep_dir, layout.cache_dir(sweep_dir)
        self.lossless, self.train = lossless, train
        self.store_root = layout.shared_cache(sweep_dir) / layout.STORES_DIR
        self.train_idx, self.val_idx = split_validation(ds, data.val_fraction, data.split_seed)
        self.train_idx = nested_subset(ds.y_train, self.train_idx, data.train_fraction, data.split_seed)
        self.loaded: Dict[Union[int, str], Tuple[Union[Split, SplitData], dict]] = {}

    def get(self, level) -> Tuple[Union[Split, SplitData], dict]:
        """(data, cost info) of `level`; writes its per-item bits to `rates/` when first loaded."""
        if level not in self.loaded:
            self.loaded[level] = self._load(level)
        return self.loaded[level]

    def keep_only(self, levels):
        self.loaded = {level: loaded for level, loaded in self.loaded.items() if level in set(levels)}

    def store(self, level, split: str) -> level_store.LevelStore:
        """The level store of `split` ("train" or "test") at `level` ("raw": kept losslessly), built if needed:
        each process builds its share of the shards, then every process opens the whole store."""
        ds, spec, options = self.ds, self.quantizer.spec, dict(self.quantizer.options)
        x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
        if is_lazy(x) and level != RAW:  # read back from the raw level's store: cheaper than the source's files
            x = StoreItems(self.store(RAW, split))
        fitted = None if level == RAW else fitted_state(ds, spec, level, options, self.cache_dir)
        name = RAW if level == RAW else f"{spec.name}-{registry.level_text(spec.check(level))}"
        where = key_digest({"dataset": self.key, "split": split, "level": name, "version": spec.version,
                            "options": {} if level == RAW else options,
                            "fitted": None if fitted is None else registry.weights_digest(fitted)})
        directory = self.store_root / f"{name}-{split}-{where[:16]}"
        build = functools.partial(level_store.build, directory, x, y, spec.name, level, options,
                                  sample_rate=ds.sample_rate, fingerprint=f"{self.key}/{split}", fitted=fitted)
        if jax.process_count() == 1:
            build()
        else:  # every process builds its shards and waits for the others', then checks the whole store
            from jax.experimental import multihost_utils
            build(process_index=jax.process_index(), process_count=jax.process_count())
            multihost_utils.sync_global_devices(f"level store {directory.name}")
            build()
        return level_store.LevelStore(directory)

    def _load(self, level) -> Tuple[Union[Split, SplitData], dict]:
        ds, quantizer = self.ds, self.quantizer
        t0 = time.perf_counter()
        compressed = {"both": ("train", "test"), "train": ("train",), "test": ("test",)}[quantizer.apply_to]
        stores = {split: self.store(level if level == RAW or split in compressed else RAW, split)
                  for split in ("train", "test")}
        if level == RAW:
            info, bits = raw_info(ds), None
        else:
            bits = np.concatenate([stores[split].level_bits for split in compressed], axis=1)
            info = level_info(ds, bits, quantizer.spec, level, quantizer.options)
        info = dict(info, **self.lossless, n_train=len(self.train_idx))
        tag = quantizer.spec.tag(level)
        if bits is not None and is_primary():
            rates.write_level(self.sweep_dir, tag, bits)
        split = Split(StoreSource(stores["train"], self.train_idx), StoreSource(stores["train"], self.val_idx),
                      StoreSource(stores["test"]))
        workers, limit = self.train.data_workers, self.train.in_memory_bytes
        if self.features:  # features are computed on whole arrays: the level is decoded into memory
            split = Split(*(in_memory(part, float("inf"), workers) for part in (split.train, split.val, split.test)))
            split = SplitData(featurize(self.features, ds, split.train.x), split.train.y,
                              featurize(self.features, ds, split.val.x), split.val.y,
                              featurize(self.features, ds, split.test.x), split.test.y)
        else:
            split = Split(*(in_memory(part, limit, workers) for part in (split.train, split.val, split.test)))
        stored = sum(store.index["stored_bytes"] for store in stores.values())
        self.log(f"level {tag}: "
                 + (f"{info['bpp']:.3f} bits/pixel" if info.get("bpp") is not None else
                    f"{info['bits_per_second'] / 1000:.1f} kbit/s")
                 + f", stored in {stored / 1e6:.1f} MB ({time.perf_counter() - t0:.1f} s)")
        return split, info


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
