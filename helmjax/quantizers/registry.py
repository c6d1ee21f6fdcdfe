"""A registry of quantizers: name -> function plus a spec that says what its levels mean.

A quantizer maps a batch of examples and a level to a `Quantized` result:

    fn(data: np.ndarray, level, **options) -> Quantized

`data` is uint8 NHWC for images (float32 (N, T) for audio); the result keeps shape and dtype. `bits_per_item`
is the real coded size of each example in bits (file size for a codec), or None where the quantizer has no
coded form. The lossless baseline ("raw") is never passed to a quantizer (the sweep uses the data as is).

Each quantizer describes itself (`QuantizerSpec`): its level type and range (integers, floats or named levels),
which way compresses more, a label and unit, the prefix of its run names, its rate unit, its quantization step
at a level (what the analysis calls N_approx) and a version that changes whenever its output does. Callers read
the spec, never the level's name: `spec.describe(levels)` is the JSON record a sweep keeps in `sweep.json`, so the
analysis needs no code of the quantizer. Built-ins and users' quantizers register through the same call:

    register("webp", webp_compress, level_name="quality", level_range=(0, 100), label="WebP quality",
             prefix="w", step=None, version="1")
"""

import dataclasses
import importlib
import inspect
import math
import re
from typing import Any, Callable, Optional, Sequence

import numpy as np

from helmjax.digests import content_digest
from helmjax.errors import UserError

from helmjax.layout import RAW
LEVEL_TYPES = ("int", "float", "named")
DIRECTIONS = ("lower", "higher")  # which level values compress more
# What a level costs, per modality: the rows' rate column and how it reads.
RATES = {"image": {"name": "bpp", "label": "bits per pixel"},
         "audio": {"name": "bits_per_second", "label": "bits per second"}}
RECORD_FORMAT = 1  # of `QuantizerSpec.describe`
_PLAIN = re.compile(r"[A-Za-z0-9_.+]+")  # level names and prefixes: they become parts of file names


@dataclasses.dataclass(frozen=True)
class Quantized:
    data: np.ndarray
    bits_per_item: Optional[np.ndarray]  # (N,) real coded bits per example (whole file), or None
    # (N,) bits of the coded payload alone (JPEG: the entropy-coded scan without headers and tables, which
    # dominate the file size of small images), or None when not separable.
    payload_bits: Optional[np.ndarray] = None


def level_text(level) -> str:
    """The stable text form of a level in run names, file names and tables: 20 -> "20", 0.013 -> "0.013",
    1e-05 -> "0.00001" (no exponent, so no "-"; the shortest digits that read back to the same float), a named
    level as it is."""
    if isinstance(level, str):
        return level
    if isinstance(level, (int, np.integer)) and not isinstance(level, bool):
        return str(int(level))
    return np.format_float_positional(float(level), trim="-")


def level_tag(prefix: str, level) -> str:
    """The level's part of run names and `rates/` file names, from the quantizer's run-name prefix: "q20",
    "kbps64", "lam0.013"; "raw" for the lossless baseline. The one rule: specs, records read back from sweep.json
    and the analysis all name levels through it."""
    return RAW if level == RAW else f"{prefix}{level_text(level)}"


@dataclasses.dataclass(frozen=True)
class QuantizerSpec:
    name: str
    fn: Callable[..., Quantized]
    modality: str  # "image" or "audio"
    level_name: str  # the result rows' column of the level: "quality", "kbps", "bits"
    level_range: tuple  # inclusive (low, high) for int and float levels; the names in order for named levels
    description: str = ""
    # Optional (level, sample_rate) -> dict of facts about a level recorded with each result row (for audio:
    # the codec's actual output sample rate, ...).
    level_info: Optional[Callable[..., dict]] = None
    level_type: str = "int"  # "int", "float" or "named"
    more_compression: str = "lower"  # "lower": lower values (earlier names) compress more; or "higher"
    label: str = ""  # what a level is, for axes: "JPEG quality", "MP3 bitrate"
    unit: str = ""  # of a level: "", "kbps", "bits"; "" reads "q=20" (prefix=value), else "32 kbps"
    prefix: str = ""  # of run names: "q" -> q20-A-s0
    # level -> the quantization step there (a dict of named figures, or one number = {"step": n}); None when the
    # codec has no single step. The analysis reads it from the record as N_approx.
    step: Optional[Callable[[Any], Any]] = None
    version: str = "1"  # changes whenever the output does (for a learned quantizer: `weights_digest`)
    # Optional fit hook of a quantizer learned per dataset (e.g. `learned_jpeg`'s tables), the learned-quantizer
    # contract: fit(x_train, y_train, level, **options) -> state, a dict whose values are JSON or arrays (saved as
    # .npz beside a JSON header). A sweep calls it on the training split alone, once per level (once for all
    # levels, with level=None, when `variable_rate`), saves the state with the sweep, keys the quantized copies by
    # its digest and passes it to every split as `fn(data, level, fitted=state)`. `fit` and `fn` each get only the
    # options they take.
    fit: Optional[Callable[..., dict]] = None
    variable_rate: bool = False  # one fitted state serves every level (a rate-conditioned model)

    @property
    def rate(self) -> dict:
        """{"name": the rows' rate column, "label": how it reads}: bits per pixel or bits per second."""
        return dict(RATES[self.modality])

    def check(self, level: Any):
        """A valid level of this quantizer (int, float or name), or a one-line UserError naming what is accepted."""
        if self.level_type == "named":
            if isinstance(level, str) and level in self.level_range:
                return level
            accepted = f"one of {', '.join(self.level_range)}"
        else:
            low, high = self.level_range
            number = isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool)
            if self.level_type == "int":
                number = isinstance(level, (int, np.integer)) and not isinstance(level, bool)
                accepted = f"an integer in [{low}, {high}]"
            else:
                number = number and math.isfinite(float(level))
                accepted = f"a number in [{low:g}, {high:g}]"
            if number and low <= level <= high:
                return int(level) if self.level_type == "int" else float(level)
        raise UserError(f"{self.level_name} {level!r} is out of range for quantizer {self.name!r}: use {accepted} "
                        f"or 'raw' for the lossless baseline")

    def text(self, level) -> str:
        """The level's stable text form (see `level_text`)."""
        return level_text(level)

    def tag(self, level) -> str:
        """The level's part of run names and of `rates/` file names: "q20", "kbps64", "raw"."""
        return level_tag(self.prefix, level)

    def apply(self, data: np.ndarray, level, **options) -> Quantized:
        """Quantizes `data` at `level`; options the quantizer does not take are left out."""
        return self.fn(data, self.check(level), **accepted_options(self, options))

    def step_at(self, level) -> Optional[dict]:
        """The quantization step at a level as a dict of named figures, or None."""
        if self.step is None or level == RAW:
            return None
        value = self.step(level)
        if value is None or isinstance(value, dict):
            return value
        return {"step": float(value)}

    def describe(self, levels: Sequence = ()) -> dict:
        """The JSON record of this quantizer and of `levels` (a grid; "raw" is left out): everything the
        analysis needs to read a sweep, the step at each level included. Levels are validated and listed from
        most to least compression."""
        checked = sorted({self.check(level) for level in levels if level != RAW}, key=self.order)
        return {
            "format": RECORD_FORMAT, "name": self.name, "version": self.version, "modality": self.modality,
            "description": self.description, "level_name": self.level_name, "level_type": self.level_type,
            "level_range": list(self.level_range), "more_compression": self.more_compression,
            "label": self.label, "unit": self.unit, "prefix": self.prefix, "rate": self.rate,
            "levels": [{"level": level, "text": level_text(level), "tag": self.tag(level),
                        "step": self.step_at(level)} for level in checked],
        }

    def order(self, level) -> float:
        """Sort key of a valid level: ascending = less compression."""
        value = float(self.level_range.index(level)) if self.level_type == "named" else float(level)
        return value if self.more_compression == "lower" else -value


_REGISTRY: dict = {}
# Built-in quantizer -> why it cannot run here (one line naming what to install), for `get` to say.
_UNAVAILABLE: dict = {}


def unavailable(name: str, reason: str):
    """Records that built-in quantizer `name` cannot run here (its codec library is missing) and why, in one line
    naming what to install: `get(name)` raises that instead of "unknown quantizer"."""
    _UNAVAILABLE[name] = reason


def register(name: str, fn: Callable[..., Quantized], *, modality: str = "image", level_name: str = "quality",
             level_range: Sequence = (1, 100), level_type: str = "int", more_compression: str = "lower",
             label: Optional[str] = None, unit: str = "", prefix: Optional[str] = None,
             step: Optional[Callable[[Any], Any]] = None, version: str = "1", description: str = "",
             level_info: Optional[Callable[..., dict]] = None, overwrite: bool = False,
             fit: Optional[Callable[..., dict]] = None, variable_rate: bool = False) -> QuantizerSpec:
    """Registers `fn` under `name` with what its levels mean; users call this from their own code to run their
    quantizer in a sweep, exactly as the built-ins do. `label` defaults to `level_name`, `prefix` (of run names)
    to `level_name` too. Named levels: `level_type="named"`, `level_range=("low", "mid", "high")` in order.
    `fit`, `variable_rate`: see `QuantizerSpec.fit` (a quantizer learned on each dataset's training split)."""
    if not overwrite and name in _REGISTRY and _REGISTRY[name].fn is not fn:
        raise UserError(f"quantizer {name!r} is already registered; pick another name or pass overwrite=True")
    prefix = level_name if prefix is None else prefix
    level_range = tuple(level_range)
    if modality not in RATES:
        raise UserError(f"quantizer {name!r}: modality {modality!r}; use one of {', '.join(RATES)}")
    if level_type not in LEVEL_TYPES or more_compression not in DIRECTIONS:
        raise UserError(f"quantizer {name!r}: level_type={level_type!r}, more_compression={more_compression!r}; "
                        f"use level_type in {LEVEL_TYPES} and more_compression in {DIRECTIONS}")
    if not _PLAIN.fullmatch(prefix or "_") or prefix.lower().startswith(RAW):
        raise UserError(f"quantizer {name!r}: prefix {prefix!r} must be letters, digits or _ . + (it names runs "
                        f"and files) and not start with 'raw'")
    if level_type == "named":
        if (not level_range or len(set(level_range)) != len(level_range)
                or not all(isinstance(n, str) and _PLAIN.fullmatch(n) and n != RAW for n in level_range)):
            raise UserError(f"quantizer {name!r}: named levels {level_range!r} must be distinct plain names "
                            f"(letters, digits, _ . +; not 'raw'), in order")
    elif (len(level_range) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                           for v in level_range) or not level_range[0] <= level_range[1]
          or (level_type == "int" and not all(float(v).is_integer() for v in level_range))):
        raise UserError(f"quantizer {name!r}: level_range {level_range!r} must be (low, high) with low <= high"
                        + (", integers" if level_type == "int" else ""))
    spec = QuantizerSpec(name, fn, modality, level_name, level_range, description, level_info, level_type,
                         more_compression, level_name if label is None else label, unit, prefix, step, str(version),
                         fit, variable_rate)
    _REGISTRY[name] = spec
    return spec


def quantizer(name: str, **kwargs) -> Callable:
    """Decorator form of `register`."""
    def wrap(fn):
        register(name, fn, **kwargs)
        return fn
    return wrap


def get(name: str) -> QuantizerSpec:
    if name not in _REGISTRY:
        _load_builtins(BUILTINS.get(name, ()))
    if name not in _REGISTRY and name in _UNAVAILABLE:
        raise UserError(_UNAVAILABLE[name])
    if name not in _REGISTRY:
        _load_builtins()
        raise UserError(f"unknown quantizer {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def available() -> list:
    _load_builtins()
    return sorted(_REGISTRY)


def check_level(spec: QuantizerSpec, level: Any):
    """Validates one level for `spec`; bad input is a one-line UserError."""
    return spec.check(level)


def accepted_options(spec: QuantizerSpec, options: dict, hook: str = "fn") -> dict:
    """The options `spec.fn` (or `spec.fit`) takes, so one config can switch quantizers (e.g. `subsampling` means
    nothing to `bitdepth`)."""
    params = inspect.signature(getattr(spec, hook)).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def takes_option(spec: QuantizerSpec, name: str) -> bool:
    """Whether the quantizer's `fn` or `fit` takes option `name`."""
    return any(name in accepted_options(spec, {name: None}, hook) for hook in ("fn", "fit")
               if getattr(spec, hook) is not None)


def apply(name: str, data: np.ndarray, level, **options) -> Quantized:
    """Quantizes `data` at `level` with quantizer `name`; options it does not take are left out."""
    return get(name).apply(data, level, **options)


def weights_digest(weights) -> str:
    """A version for a learned quantizer: a digest of its weights (a pytree of dicts, lists and arrays), so
    quantized data cached under other weights is never reused."""
    return content_digest(weights, 16)


# Built-in quantizer -> its module (which registers it on import); loaded on first use, so heavy codecs load only
# when asked for.
BUILTINS = {"pillow_jpeg": ("pillow_jpeg",), "jax_jpeg": ("jpeg",), "bitdepth": ("bitdepth",), "mp3": ("mp3",),
            "webp": ("codecs",), "avif": ("codecs",), "jpegxl": ("codecs",), "jpeg2000": ("codecs",),
            "learned_jpeg": ("learned_jpeg",)}


def _load_builtins(modules: Optional[Sequence[str]] = None):
    """Imports built-in quantizer modules (all of them by default); one whose optional dependency is missing is
    simply not offered."""
    for module in sorted({m for ms in BUILTINS.values() for m in ms}) if modules is None else modules:
        try:
            importlib.import_module(f"helmjax.quantizers.{module}")
        except ModuleNotFoundError as e:
            if e.name and (e.name.startswith("helmjax") or e.name in ("lameenc", "soundfile")):
                continue
            raise
