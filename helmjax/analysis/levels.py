"""What a sweep's levels mean, read from the quantizer's record in sweep.json (`QuantizerSpec.describe`).

`LevelScale` answers every question the analysis, report and plots ask about levels (order, axis position, how a
level reads, its run-name tag, its quantization step) from that record, so nothing here knows any quantizer by
name. `quantizer_record` is the one place that describes the quantizer when a sweep.json predates the record.
"""

import dataclasses
import functools
import math
from typing import List, Optional

from helmjax.analysis.sweep_files import parse_level
from helmjax.layout import RAW
from helmjax.errors import UserError
from helmjax.quantizers import registry
from helmjax.sweeps import run_names


@dataclasses.dataclass(frozen=True)
class LevelScale:
    record: dict  # `QuantizerSpec.describe` output

    @property
    def level_name(self) -> str:
        return str(self.record.get("level_name") or "level")

    @property
    def named(self) -> bool:
        return self.record.get("level_type") == "named"

    @property
    def label(self) -> str:
        """Axis label: "JPEG quality", "MP3 bitrate (kbps)"."""
        label, unit = self.record.get("label") or self.level_name, self.record.get("unit")
        return f"{label} ({unit})" if unit else label

    @property
    def rate_name(self) -> str:
        return self.record["rate"]["name"]

    @property
    def rate_label(self) -> str:
        return self.record["rate"]["label"]

    @property
    def log_axis_name(self) -> str:
        """What the paper's curve is fitted against: ln of the level, or of its rank for named levels."""
        return f"rank of {self.level_name}" if self.named else self.level_name

    @functools.cached_property
    def _entries(self) -> dict:
        return {entry["level"]: entry for entry in self.record.get("levels") or []}

    @functools.cached_property
    def _ranks(self) -> dict:
        """Named levels -> 1 (most compression) .. n."""
        names = list(self.record.get("level_range") or [])
        if self.record.get("more_compression") == "higher":
            names.reverse()
        return {name: rank for rank, name in enumerate(names, 1)}

    def parse(self, value):
        """A level as the runner wrote it -> the level ("raw", a number, or a name); None if unreadable."""
        if self.named:
            return RAW if value == RAW else value if value in self._ranks else None
        return parse_level(value)

    def position(self, level) -> float:
        """Where a level sits on the axis the analysis works in: positive, ascending = less compression (the level
        itself; its inverse when higher values compress more, so ln position is ±ln level; the rank of a name)."""
        if self.named:
            return float(self._ranks[level])
        value = float(level)
        return value if self.record.get("more_compression", "lower") == "lower" else 1.0 / value

    def level_at(self, position: Optional[float]):
        """The level at an axis position (an interpolated knee); None for named levels (only ranks between)."""
        if position is None or self.named or not math.isfinite(position):
            return None
        return position if self.record.get("more_compression", "lower") == "lower" else 1.0 / position

    def sort_key(self, level):
        return (1, 0.0) if level == RAW else (0, self.position(level))

    def ordered(self, levels) -> list:
        """Most compression first, "raw" last."""
        return sorted(levels, key=self.sort_key)

    def log_value(self, level) -> float:
        """The x of the paper's curve a + c ln x: the level, or its rank for named levels."""
        return self.position(level) if self.named else float(level)

    def text(self, level) -> str:
        """How a level reads in sentences: "q=20", "32 kbps", "4 bits", "λ=0.013", "raw"."""
        if level is None:
            return "none"
        if level == RAW:
            return RAW
        value = f"{level:g}" if isinstance(level, float) else str(level)
        unit = self.record.get("unit")
        return f"{value} {unit}" if unit else f"{self.record.get('prefix') or self.level_name}={value}"

    def tick(self, level) -> str:
        """A level on an axis: its value or name."""
        return RAW if level == RAW else f"{level:g}" if isinstance(level, float) else str(level)

    def tag(self, level) -> str:
        """The level's part of run names and `rates/` file names."""
        if level == RAW:
            return RAW
        entry = self._entries.get(level)
        return entry["tag"] if entry else registry.level_tag(self.record.get("prefix", ""), level)

    def level_of_tag(self, tag: str):
        """The level a `rates/` file name stands for; None when it is not one of this quantizer's."""
        if tag == RAW:
            return RAW
        for level, entry in self._entries.items():
            if entry["tag"] == tag:
                return level
        prefix = self.record.get("prefix", "")
        return self.parse(tag[len(prefix):]) if tag.startswith(prefix) else None

    def run_name(self, level, arch, seed) -> str:
        return run_names.named(self.tag(level), arch, seed)

    def step(self, level) -> Optional[dict]:
        """The quantization step at a level of the grid (N_approx), as the record gives it; None when not given."""
        entry = self._entries.get(level)
        return entry.get("step") if entry else None


def quantizer_name(sweep_record: dict, first_row: dict) -> str:
    """sweep.json may hold the quantizer as a name or as its config block ({"name": ..., options})."""
    quantizer = (sweep_record.get("quantizer_name") or sweep_record.get("quantizer") or first_row.get("quantizer")
                 or "?")
    if isinstance(quantizer, dict):
        quantizer = quantizer.get("name", "?")
    return str(quantizer)


def quantizer_record(sweep_record: dict, rows: List[dict], warnings: List[str]) -> dict:
    """The quantizer's record: sweep.json's `quantizer_spec`; for a sweep written before quantizers described
    themselves, the quantizer as registered now (by name) describing the levels of the grid and the rows; failing
    that, plain numeric levels read from the rows (no step, rate unit from the rows)."""
    record = sweep_record.get("quantizer_spec")
    if isinstance(record, dict) and isinstance(record.get("levels"), list) and isinstance(record.get("rate"), dict):
        return record
    first = rows[0] if rows else {}
    name = quantizer_name(sweep_record, first)
    level_name = str(sweep_record.get("level_name") or first.get("level_name") or "level")
    grid = sweep_record.get("grid") if isinstance(sweep_record.get("grid"), dict) else {}
    values = grid.get("level", grid.get(level_name)) or []
    values = (values if isinstance(values, list) else [values]) + [row.get("level", row.get(level_name))
                                                                  for row in rows]
    levels = {parse_level(v) if parse_level(v) is not None else v for v in values if v is not None}
    levels.discard(RAW)
    try:
        spec = registry.get(name)
        record = spec.describe(levels)
        if rows or grid:
            warnings.append(f"sweep.json has no quantizer record (written before quantizers described themselves): "
                            f"levels read as quantizer {name!r} defines them now (version {spec.version})")
        return record
    except UserError as e:
        warnings.append(f"sweep.json has no quantizer record and quantizer {name!r} cannot describe its levels here "
                        f"({e}): levels read as plain numbers, no N_approx")
    numbers = sorted(v for v in levels if isinstance(v, (int, float)))
    audio = bool(rows) and all(r.get("bpp") is None for r in rows) and any(r.get("bits_per_second") is not None
                                                                          for r in rows)
    return {"format": registry.RECORD_FORMAT, "name": name, "version": None,
            "modality": "audio" if audio else "image", "level_name": level_name,
            "level_type": "int" if all(isinstance(v, int) for v in numbers) else "float",
            "level_range": [numbers[0], numbers[-1]] if numbers else [], "more_compression": "lower",
            "label": level_name, "unit": "", "prefix": level_name,
            "rate": dict(registry.RATES["audio" if audio else "image"]),
            "levels": [{"level": v, "text": registry.level_text(v), "tag": f"{level_name}{registry.level_text(v)}",
                        "step": None} for v in numbers]}
