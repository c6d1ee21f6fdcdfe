"""How runs are named: `<level tag>-<arch>-s<seed>`, e.g. `q20-A-s0`, `kbps64-B-s1`, `lam0.013-A-s0`, `raw-C-s2`.

The level tag is `registry.level_tag` of the quantizer's run-name prefix, taken from its spec (a `QuantizerSpec`)
or from its `describe()` record read back from sweep.json.
"""

from typing import Union

from helmjax.quantizers import registry
from helmjax.quantizers.registry import QuantizerSpec

Quantizer = Union[QuantizerSpec, dict]


def _prefix(quantizer: Quantizer) -> str:
    if isinstance(quantizer, QuantizerSpec):
        return quantizer.prefix
    if isinstance(quantizer, dict):
        return str(quantizer.get("prefix", quantizer.get("level_name", "")))
    raise TypeError(f"run names need the quantizer's spec or its record, not {quantizer!r}")


def level_tag(quantizer: Quantizer, level) -> str:
    """The level's part of run names and `rates/` file names: "q20", "kbps64", "raw"."""
    return registry.level_tag(_prefix(quantizer), level)


def run_name(quantizer: Quantizer, level, arch: str, seed) -> str:
    return named(level_tag(quantizer, level), arch, seed)


def named(tag: str, arch: str, seed) -> str:
    """A run's name from its level tag: `q20-A-s0`."""
    return f"{tag}-{arch}-s{seed}"
