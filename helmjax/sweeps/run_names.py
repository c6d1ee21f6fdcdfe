"""How runs are named: `<level tag>-<arch>-s<seed>`, e.g. `q20-A-s0`, `kbps64-B-s1`, `lam0.013-A-s0`, `raw-C-s2`.

The level tag is the quantizer's run-name prefix and the level's stable text form (`registry.level_text`), both
from the quantizer's spec (a `QuantizerSpec`, or its `describe()` record read back from sweep.json).
"""

from typing import Union

from helmjax.quantizers.registry import RAW, QuantizerSpec, level_text

Quantizer = Union[QuantizerSpec, dict, str]


def _prefix(quantizer: Quantizer) -> str:
    if isinstance(quantizer, QuantizerSpec):
        return quantizer.prefix
    if isinstance(quantizer, dict):
        return str(quantizer.get("prefix", quantizer.get("level_name", "")))
    raise TypeError(f"run names need the quantizer's spec or its record, not {quantizer!r}")


def level_tag(quantizer: Quantizer, level) -> str:
    """The level's part of run names and `rates/` file names: "q20", "kbps64", "raw"."""
    return RAW if level == RAW else f"{_prefix(quantizer)}{level_text(level)}"


def run_name(quantizer: Quantizer, level, arch: str, seed) -> str:
    return f"{level_tag(quantizer, level)}-{arch}-s{seed}"
