"""A dataset quantized at one level: what the level costs (bits per pixel / second), the state of a quantizer fitted
on the training split, and the level in memory for library use.

A sweep keeps each level as files (`data.level_store`), keyed by the data, the quantizer and its version, the
level, its options and a fitted state's digest, so a re-run never recompresses and a quantizer whose output changed
(a new version, new weights) is never served its old output. Fitted states are kept in the sweep's cache as JSON
(and .npz), written atomically; an unreadable one is fitted again.
"""

import dataclasses
import json
import logging
import pathlib
from typing import Optional, Union

import numpy as np

from helmjax import atomic_io, layout
from helmjax.data.dataset import ArrayDataset
from helmjax.digests import content_digest, key_digest
from helmjax.errors import UserError
from helmjax.quantizers import registry
from helmjax.quantizers.registry import QuantizerSpec

from helmjax.layout import RAW
APPLY_TO = ("both", "train", "test")


@dataclasses.dataclass(frozen=True)
class LevelData:
    level: Union[int, float, str]
    x_train: np.ndarray
    x_test: np.ndarray
    info: dict  # bpp (images) or bits_per_second (audio), bytes_per_item, sample_rate, ...
    # (2, N) coded bits per item (file, payload; NaN where not separable) over the items the level compressed
    # (train then test when apply_to="both"); None for the raw level.
    bits: Optional[np.ndarray] = None


def fingerprint(ds: ArrayDataset) -> str:
    """Content hash of a dataset (its arrays), so the cache key changes whenever the data does."""
    return content_digest((ds.x_train, ds.y_train, ds.x_test, ds.y_test))


def fitted_state(ds: ArrayDataset, spec: registry.QuantizerSpec, level, options: dict,
                 cache_dir: Optional[pathlib.Path]) -> Optional[dict]:
    """The state of a quantizer with a fit hook (`QuantizerSpec.fit`, e.g. learned JPEG tables) at `level` (at every
    level for a variable-rate one), or None for one without: fitted on the training split alone (never on test),
    once, and kept in `<cache_dir>/fitted/` as JSON (and its arrays as .npz beside it), keyed by the training data,
    the quantizer and its version, the level and the options."""
    if spec.fit is None:
        return None
    level = None if spec.variable_rate else spec.check(level)
    key = dict(train=fingerprint(dataclasses.replace(ds, x_test=ds.x_train[:0], y_test=ds.y_train[:0])),
               quantizer=spec.name, version=spec.version, level=level, options=options)
    path = None
    if cache_dir is not None:
        digest = key_digest(key)
        name = "all" if level is None else registry.level_text(level)
        path = pathlib.Path(cache_dir) / layout.FITTED_DIR / f"{spec.name}-{name}-{digest}.json"
        try:
            return _read_state(path)
        except FileNotFoundError:
            pass
        except (ValueError, OSError, KeyError) as e:  # truncated (a kill during a write by an older version)
            logging.warning("fitted state %s is unreadable (%s); fitting again", path, e)
    state = spec.fit(ds.x_train, ds.y_train, level, **registry.accepted_options(spec, options, "fit"))
    if not isinstance(state, dict):
        raise UserError(f"quantizer {spec.name!r}: fit returned {type(state).__name__}; it must return a dict of "
                        f"JSON values and arrays")
    # the key goes into the state, so a fresh fit and its reloaded files are the same (and key the cache alike)
    arrays = {k: np.asarray(v) for k, v in state.items() if _is_array(v)}
    header = json.loads(json.dumps(dict({k: v for k, v in state.items() if k not in arrays}, key=key)))
    if arrays:
        header["arrays"] = sorted(arrays)
    if path is not None:
        if arrays:  # the arrays first: a header on disk means its arrays are there
            atomic_io.write_npz(path.with_suffix(".npz"), **arrays)
        atomic_io.write_json(path, header)
    return dict(header, **arrays)


def _is_array(value) -> bool:
    """A numpy or JAX array (a Python or numpy scalar stays in the JSON header)."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, (int, float, bool))


def _read_state(path: pathlib.Path) -> dict:
    header = json.loads(path.read_text())
    if not header.get("arrays"):
        return header
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as f:
        return dict(header, **{name: f[name] for name in header["arrays"]})


def quantize_split(x: np.ndarray, spec: QuantizerSpec, level, options: dict, fitted: Optional[dict] = None):
    """(quantized x, (2, N) bits and payload bits per item) of one split; `fitted`: the quantizer's fitted state
    (`fitted_state`), passed to it."""
    extra = {} if fitted is None else {"fitted": fitted}
    result = spec.apply(x, level, **options, **extra)
    if result.data.shape != x.shape or result.data.dtype != x.dtype:
        raise UserError(f"quantizer {spec.name!r} returned {result.data.shape} {result.data.dtype} for input "
                        f"{x.shape} {x.dtype}; a quantizer must keep shape and dtype")
    bits = result.bits_per_item if result.bits_per_item is not None else np.full(len(x), np.nan)
    payload = result.payload_bits if result.payload_bits is not None else np.full(len(x), np.nan)
    return result.data, np.stack([np.asarray(bits, np.float64), np.asarray(payload, np.float64)])


def raw_info(ds: ArrayDataset) -> dict:
    """The raw level's storage size (8 bits per channel, 16-bit PCM): no headers, so payload = file. This is
    storage, not information: the lossless rate (`helmjax.sweeps.rates`) says what the data needs."""
    if ds.sample_rate:  # 16-bit PCM
        return {"bpp": None, "bits_per_second": 16.0 * ds.sample_rate,
                "bits_per_second_payload": 16.0 * ds.sample_rate, "sample_rate": ds.sample_rate,
                "bytes_per_item": 2.0 * ds.x_train.shape[1]}
    pixels_channels = int(np.prod(ds.x_train.shape[1:]))
    channels = ds.x_train.shape[-1] if ds.x_train.ndim == 4 else 1
    return {"bpp": 8.0 * channels, "bpp_payload": 8.0 * channels, "bpp_header": 0.0, "bits_per_second": None,
            "sample_rate": None, "bytes_per_item": float(pixels_channels)}


def level_info(ds: ArrayDataset, bits: np.ndarray, spec: registry.QuantizerSpec, level, options: dict) -> dict:
    """What a level costs; `bits` is (2, N): whole coded size and payload alone, per example."""
    mean_bits = float(np.mean(bits[0])) if bits.shape[1] else float("nan")
    payload = float(np.mean(bits[1])) if bits.shape[1] and not np.isnan(bits[1]).any() else None
    info = {"bytes_per_item": mean_bits / 8.0, "bpp": None, "bpp_payload": None, "bpp_header": None,
            "bits_per_second": None, "bits_per_second_payload": None, "sample_rate": None}
    if spec.modality == "audio":
        duration = ds.x_train.shape[1] / ds.sample_rate
        info["bits_per_second"] = mean_bits / duration
        info["bits_per_second_payload"] = None if payload is None else payload / duration
        info["sample_rate"] = ds.sample_rate
        if spec.level_info is not None:  # e.g. LAME's actual output sample rate at this bitrate
            info.update(spec.level_info(level, ds.sample_rate))
    else:
        pixels = ds.x_train.shape[1] * ds.x_train.shape[2]
        info["bpp"] = mean_bits / pixels
        info["bpp_payload"] = None if payload is None else payload / pixels
        # the mean of (file - payload), so it equals the per-item header bits in `rates/` to the last digit
        info["bpp_header"] = None if payload is None else float(np.mean(bits[0] - bits[1])) / pixels
    return info


def quantize(ds: ArrayDataset, level: Union[int, float, str], spec: QuantizerSpec, options: dict,
             apply_to: str = "both", cache_dir: Optional[pathlib.Path] = None) -> LevelData:
    """The dataset at `level` ("raw" = as is) with quantizer `spec` (`registry.get(name)`) in memory, for library
    use; `apply_to` says which splits are compressed, `cache_dir` keeps a fitted quantizer's state. Sweeps keep
    their levels as files instead (`data.level_store`)."""
    if level == RAW:
        return LevelData(RAW, ds.x_train, ds.x_test, raw_info(ds))
    if apply_to not in APPLY_TO:
        raise UserError(f"quantizer.apply_to={apply_to!r}; use one of {', '.join(APPLY_TO)}")
    options = dict(options)
    if spec.modality == "audio":
        options.setdefault("sample_rate", ds.sample_rate)
    x_train, x_test, bits = ds.x_train, ds.x_test, None
    fitted = fitted_state(ds, spec, level, options, cache_dir)  # learned on train only, reused for test
    if apply_to in ("both", "train"):
        x_train, bits = quantize_split(ds.x_train, spec, level, options, fitted)
    if apply_to in ("both", "test"):
        x_test, test_bits = quantize_split(ds.x_test, spec, level, options, fitted)
        bits = test_bits if bits is None else np.concatenate([bits, test_bits], axis=1)
    return LevelData(level, x_train, x_test, level_info(ds, bits, spec, level, options), bits)
