"""Per-item bits of every level, saved beside a sweep so the analysis can bootstrap rates over items.

`<sweep_dir>/rates/<level tag>.npz` holds, for a lossy level, `file` and `payload` (bits per item, float64 (N,);
payload NaN where the codec's payload is not separable) over the items the level compressed (train then test
when apply_to="both"); `rates/raw.npz` holds `lossless` (bits per item of a real lossless codec, float64 (M,)),
`codec` (0-d string: the codec's description) and, when only a deterministic subset of the items was coded,
`index` (int64 (M,): positions in those same N items, so the analysis can pair them with the levels' bits).
The lossless rate is a property of the data: computed once per sweep (and cached), whatever the grid.
"""

import dataclasses
import logging
import pathlib
import re
import zipfile
from typing import Optional

import numpy as np

from helmjax import atomic_io
from helmjax.data.dataset import ArrayDataset
from helmjax.digests import key_digest
from helmjax.errors import UserError
from helmjax.quantizers import lossless

from helmjax.layout import RATES_DIR
from helmjax.layout import RAW as RAW_TAG
LEVEL_ARRAYS = ("file", "payload")
RAW_ARRAYS = ("lossless", "codec", "index")
# Values (pixel channels or samples) coded losslessly per sweep at most: all of CIFAR-10 (60k x 32x32x3) takes
# under a minute with JPEG XL effort 5 on 2 cores; beyond this a fixed subset of the items is coded (and its
# `index` stored). FLAC codes ~40M samples/s, so audio sets up to this size take seconds.
LOSSLESS_BUDGET = 60_000 * 32 * 32 * 3
_CHUNK = 1024  # items coded per call of the lossless codec


def write_level_bits(sweep_dir, level_tag_str: str, **arrays) -> pathlib.Path:
    """Atomically writes `<sweep_dir>/rates/<tag>.npz`: file= and payload= for a level, or lossless=, codec= and
    optionally index= for "raw" (see the module docstring); returns the path."""
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", level_tag_str or ""):
        raise UserError(f"level tag {level_tag_str!r} is not a plain file name; use helmjax.sweeps.run_names.level_tag")
    names = RAW_ARRAYS if level_tag_str == RAW_TAG else LEVEL_ARRAYS
    required = names[:2]
    if set(arrays) - set(names) or set(required) - set(arrays):
        raise UserError(f"rates/{level_tag_str}.npz takes {', '.join(required)}"
                        + (" and optionally index" if level_tag_str == RAW_TAG else "") + f"; got {', '.join(arrays)}")
    out = {}
    for name, value in arrays.items():
        if name == "codec":
            out[name] = np.array(str(value))
        elif name == "index":
            out[name] = np.asarray(value, np.int64).reshape(-1)
        else:
            out[name] = np.asarray(value, np.float64).reshape(-1)
    lengths = {name: len(a) for name, a in out.items() if a.ndim == 1}
    if len(set(lengths.values())) > 1:
        raise UserError(f"rates/{level_tag_str}.npz arrays differ in length: {lengths}; they must cover the same "
                        "items in the same order")
    path = pathlib.Path(sweep_dir) / RATES_DIR / f"{level_tag_str}.npz"
    atomic_io.write_with(path, lambda f: _savez(f, out))
    return path


def _savez(f, arrays: dict):
    """np.savez's format, written by hand: np.savez cannot take an array named `file` (its own argument)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


@dataclasses.dataclass(frozen=True)
class LosslessRate:
    bits: np.ndarray  # float64 (M,) lossless bits per coded item
    codec: str  # the codec's description
    index: Optional[np.ndarray]  # int64 (M,) positions among the level items; None = all of them, in order

    def fields(self, ds: ArrayDataset) -> dict:
        """Row fields (the same on every row of a sweep): the mean lossless rate and its codec."""
        mean = float(np.mean(self.bits)) if len(self.bits) else float("nan")
        if ds.sample_rate:
            return {"bits_per_second_lossless": mean * ds.sample_rate / ds.x_train.shape[1],
                    "lossless_codec": self.codec}
        return {"bpp_lossless": mean / (ds.x_train.shape[1] * ds.x_train.shape[2]), "lossless_codec": self.codec}

    def write(self, sweep_dir) -> pathlib.Path:
        extra = {} if self.index is None else {"index": self.index}
        return write_level_bits(sweep_dir, RAW_TAG, lossless=self.bits, codec=self.codec, **extra)


def _splits(ds: ArrayDataset, apply_to: str):
    return [x for split, x in (("train", ds.x_train), ("test", ds.x_test)) if apply_to in ("both", split)]


def subset_index(count: int, values_per_item: int, budget: int = LOSSLESS_BUDGET) -> Optional[np.ndarray]:
    """None when all `count` items fit the budget, else a fixed, sorted, evenly spread subset of positions."""
    if count * values_per_item <= budget:
        return None
    keep = max(1, budget // max(1, values_per_item))
    return np.unique(np.linspace(0, count - 1, keep).round().astype(np.int64))


def lossless_rate(ds: ArrayDataset, apply_to: str = "both", cache_dir=None, dataset_key: Optional[str] = None,
                  budget: int = LOSSLESS_BUDGET) -> LosslessRate:
    """Lossless bits of the items a level's bits are measured over, cached in `cache_dir` by dataset and codec."""
    codec = lossless.dataset_codec(ds.sample_rate)
    splits = _splits(ds, apply_to)
    count = sum(len(x) for x in splits)
    index = subset_index(count, int(np.prod(ds.x_train.shape[1:])), budget)
    path = None
    if cache_dir is not None:
        from helmjax.sweeps.quantized_data import fingerprint
        key = {"dataset": dataset_key or fingerprint(ds), "codec": codec.description, "apply_to": apply_to,
               "budget": budget}
        digest = key_digest(key)
        path = pathlib.Path(cache_dir) / f"lossless-{codec.name}-{digest}.npz"
        cached = _load_cached(path, count if index is None else len(index))
        if cached is not None:
            return LosslessRate(cached, codec.description, index)
    offsets = np.cumsum([0] + [len(x) for x in splits])
    rows = [np.arange(len(x)) if index is None else index[(index >= lo) & (index < hi)] - lo
            for x, lo, hi in zip(splits, offsets, offsets[1:])]
    # chunk by chunk: the items may be read on demand (`data.items`), and a chunk is all that is held decoded
    bits = np.concatenate([np.zeros(0)] + [lossless.item_bits(x[r[a:a + _CHUNK]], codec)
                                           for x, r in zip(splits, rows) for a in range(0, len(r), _CHUNK)])
    if path is not None:
        atomic_io.write_npz(path, bits=bits)
    return LosslessRate(bits, codec.description, index)


def _load_cached(path: pathlib.Path, count: int) -> Optional[np.ndarray]:
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            bits = f["bits"]
        if bits.shape != (count,):
            raise ValueError(f"shape {bits.shape} != ({count},)")
        return bits
    except Exception as e:  # truncated or corrupt: recompute
        logging.warning("lossless-rate cache %s is unreadable (%s); recomputing it", path, e)
        return None


def write_level(sweep_dir, tag: str, bits: Optional[np.ndarray]) -> Optional[pathlib.Path]:
    """`rates/<tag>.npz` of one quantized level from its (2, N) bits (see `quantized_data.LevelData.bits`)."""
    if bits is None:
        return None
    return write_level_bits(sweep_dir, tag, file=bits[0], payload=bits[1])
