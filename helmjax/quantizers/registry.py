"""A registry of quantizers: name -> function, so sweeps plug in built-in codecs and users' own.

A quantizer maps a batch of examples and a level to a `Quantized` result:

    fn(data: np.ndarray, level: int, **options) -> Quantized

`data` is uint8 NHWC for images (float32 (N, T) for audio); the result keeps shape and dtype. `bits_per_item`
is the real coded size of each example in bits (file size for a codec), or None where the quantizer has no
coded form. Levels are integers (JPEG quality, MP3 kbps, bit depth); the lossless baseline is never passed
to a quantizer (the sweep uses the data as is).
"""

import dataclasses
import inspect
from typing import Any, Callable, Optional, Sequence

import numpy as np

from helmjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Quantized:
    data: np.ndarray
    bits_per_item: Optional[np.ndarray]  # (N,) real coded bits per example (whole file), or None
    # (N,) bits of the coded payload alone (JPEG: the entropy-coded scan without headers and tables, which
    # dominate the file size of small images), or None when not separable.
    payload_bits: Optional[np.ndarray] = None


@dataclasses.dataclass(frozen=True)
class QuantizerSpec:
    name: str
    fn: Callable[..., Quantized]
    modality: str  # "image" or "audio"
    level_name: str  # what a level means: "quality", "kbps", "bits"
    level_range: tuple  # inclusive (low, high) of valid integer levels
    description: str = ""
    # Optional (level, sample_rate) -> dict of facts about a level recorded with each result row (for audio:
    # the codec's actual output sample rate, ...).
    level_info: Optional[Callable[..., dict]] = None


_REGISTRY: dict = {}


def register(name: str, fn: Callable[..., Quantized], *, modality: str = "image", level_name: str = "quality",
             level_range: Sequence[int] = (1, 100), description: str = "", overwrite: bool = False,
             level_info: Optional[Callable[..., dict]] = None) -> QuantizerSpec:
    """Registers `fn` under `name`; users call this from their own code to run their quantizer in a sweep."""
    if not overwrite and name in _REGISTRY and _REGISTRY[name].fn is not fn:
        raise UserError(f"quantizer {name!r} is already registered; pick another name or pass overwrite=True")
    spec = QuantizerSpec(name, fn, modality, level_name, tuple(level_range), description, level_info)
    _REGISTRY[name] = spec
    return spec


def quantizer(name: str, **kwargs) -> Callable:
    """Decorator form of `register`."""
    def wrap(fn):
        register(name, fn, **kwargs)
        return fn
    return wrap


def get(name: str) -> QuantizerSpec:
    _load_builtins()
    if name not in _REGISTRY:
        raise UserError(f"unknown quantizer {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def available() -> list:
    _load_builtins()
    return sorted(_REGISTRY)


def check_level(spec: QuantizerSpec, level: Any) -> int:
    """Validates one level for `spec` (an int in its range); bad input is a one-line UserError."""
    low, high = spec.level_range
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not low <= int(level) <= high:
        raise UserError(f"{spec.level_name} {level!r} is out of range for quantizer {spec.name!r}: "
                        f"use an integer in [{low}, {high}] or 'raw' for the lossless baseline")
    return int(level)


def accepted_options(spec: QuantizerSpec, options: dict) -> dict:
    """The options `spec.fn` takes, so one config can switch quantizers (e.g. `subsampling` means nothing to
    `bitdepth`)."""
    params = inspect.signature(spec.fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def apply(name: str, data: np.ndarray, level: int, **options) -> Quantized:
    """Quantizes `data` at `level` with quantizer `name`; options it does not take are left out."""
    spec = get(name)
    return spec.fn(data, check_level(spec, level), **accepted_options(spec, options))


_BUILTINS_LOADED = False


def _load_builtins():
    """Imports the built-in quantizer modules (each registers itself); lazily, so heavy codecs load on use."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    import importlib
    for module in ("pillow_jpeg", "jpeg", "bitdepth", "mp3"):
        try:
            importlib.import_module(f"helmjax.quantizers.{module}")
        except ModuleNotFoundError as e:
            # A built-in whose optional dependency is missing is simply not offered.
            if e.name and e.name.startswith("helmjax"):
                continue
            if e.name in ("lameenc", "soundfile"):
                continue
            raise
