"""Grid axes over any config key: `grid.axes` sweeps `data.photons`, `quantizer.subsampling`, `train.lr`, ... beside
level, arch and seed.

An axis is `[key, values]` with a dotted config key and its values, typed and checked like `--set`:

    c.grid.axes = [["data.photons", [25, 100, 400, float("inf")]]]      # or: --axis data.photons=25,100,400,inf

or `[name, [{key: value, ...}, ...]]` whose values set several keys together (a codec and its own levels):

    c.grid.axes = [["codec", [{"quantizer.name": "pillow_jpeg", "grid.level": ["raw", 10, 50]},
                              {"quantizer.name": "webp", "grid.level": ["raw", 10, 50]}]]]

The grid's product over all axes gives the settings; each setting is a whole sweep of its own config (its own
data, rates, noise record and analysis) in `<sweep>/settings/<tag>/`, with the setting's tag in front of its run
names (`photons25-q20-A-s0`). The parent sweep holds the results of all settings, one column per axis, and the
report that sets them side by side (`helmjax.reporting.facets`).
"""

import dataclasses
import itertools
import re
from typing import Any, Dict, List, Sequence, Tuple

import ml_collections

from helmjax import config as config_lib
from helmjax.errors import UserError
from helmjax.quantizers.registry import level_text

GRID_KEYS = ("grid.level", "grid.arch", "grid.seed", "grid.reference_seed")  # may be set by a dict-valued axis
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the axes' product: the axis values (as they read in tables), the config keys they set, and
    the tag that names its directory and prefixes its run names."""
    values: Tuple[Tuple[str, Any], ...]  # (axis name, value) per axis; a dict-valued axis gives its value's text
    assignments: Tuple[Tuple[str, Any], ...]  # (dotted key, typed value) the setting sets
    tag: str

    @property
    def columns(self) -> Dict[str, Any]:
        return dict(self.values)

    @property
    def label(self) -> str:
        return ", ".join(f"{name}={value_text(value)}" for name, value in self.values)


def value_text(value) -> str:
    """How an axis value reads in tags, tables and `--only`: 25.0 -> "25", inf -> "inf", "4:4:4" as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return level_text(value)
    return str(value)


def _tag_part(name: str, value) -> str:
    leaf = name.rpartition(".")[2]
    text = _UNSAFE.sub("", value_text(value))
    return f"{leaf}{text}" if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{leaf}-{text}"


def raw_axes(config) -> List[Tuple[str, list]]:
    return [(str(axis[0]), list(axis[1])) for axis in (config.grid.get("axes") or [])]


def has_axes(config) -> bool:
    return bool(raw_axes(config))


def _typed(config, key: str, value, origin: str):
    """`value` typed as config key `key` is (one-line UserError for an unknown key or a wrong type)."""
    if key == "grid.axes" or key == "grid.setting" or key.split(".")[0] == "name":
        raise UserError(f"{origin} {key}: cannot be an axis; sweep data, quantizer, model or train keys")
    typed = config_lib.apply_overrides(config, [f"{key}={value!r}"], origin=origin)
    node = typed
    for part in key.split("."):
        node = node[part]
    return node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node


def settings(config) -> List[Setting]:
    """The product of the config's axes in grid order (first axis slowest), typed and validated; [] without axes."""
    axes = raw_axes(config)
    if not axes:
        return []
    names = [name for name, _ in axes]
    if len(set(names)) != len(names):
        raise UserError(f"grid.axes names an axis twice ({', '.join(names)}); give each key one list of values")
    per_axis = []
    for name, values in axes:
        origin = "grid axis"
        if not values:
            raise UserError(f"{origin} {name} has no values; give at least one, e.g. --axis {name}=1,2")
        options = []
        for value in values:
            if isinstance(value, (dict, ml_collections.ConfigDict)):
                value = dict(value)
                if not value:
                    raise UserError(f"{origin} {name}: an empty setting {{}}; give the keys it sets")
                assignments = tuple((k, _typed(config, k, v, origin)) for k, v in value.items())
                options.append(((name, value_text(assignments[0][1])), assignments))
            else:
                if name in GRID_KEYS:
                    raise UserError(f"{origin} {name}: already a grid axis; set it with --set {name}=..., or "
                                    f"use a setting of several keys ({{'quantizer.name': ..., '{name}': ...}})")
                typed = _typed(config, name, value, origin)
                options.append(((name, typed), ((name, typed),)))
        texts = [value_text(v) for (_, v), _ in options]
        if len(set(texts)) != len(texts):
            raise UserError(f"{origin} {name} has a value twice ({', '.join(texts)})")
        per_axis.append(options)
    out = []
    for combo in itertools.product(*per_axis):
        values = tuple(v for v, _ in combo)
        assignments = tuple(a for _, group in combo for a in group)
        out.append(Setting(values, assignments, "_".join(_tag_part(n, v) for n, v in values)))
    return out


def setting_config(config, setting: Setting) -> ml_collections.ConfigDict:
    """The setting's own config: the base with the setting's keys set, no axes, and its tag for run names."""
    tree = config.to_dict()
    for key, value in setting.assignments:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    tree["grid"]["axes"] = []
    tree["grid"]["setting"] = setting.tag
    out = ml_collections.ConfigDict(tree)
    out.lock()
    return out


def parse_axis_flags(config, items: Sequence[str]) -> ml_collections.ConfigDict:
    """`--axis data.photons=25,100,inf` (repeatable) -> the config with that axis in `grid.axes` (replacing an axis
    of the same key) and named `<experiment>-by-<axes>` (its own sweep directory); values are typed and checked
    here, before anything is written."""
    axes = raw_axes(config)
    for item in items:
        if "=" not in item:
            raise UserError(f"--axis {item!r} is not of the form key=v1,v2,... (e.g. --axis data.photons=25,100)")
        key, text = (part.strip() for part in item.split("=", 1))
        values = [config_lib.parse_value(v.strip()) for v in text.split(",") if v.strip()]
        axes = [a for a in axes if a[0] != key] + [(key, values)]
    if not items:
        return config
    tree = config.to_dict()
    tree["grid"]["axes"] = [[k, v] for k, v in axes]
    # Its own sweep directory beside the experiment's (`demo_q_sweep-by-photons`): one directory, one grid.
    tree["name"] = f"{config.name}-by-" + "-".join(k.rpartition(".")[2] for k, _ in axes)
    out = ml_collections.ConfigDict(tree)
    out.lock()
    settings(out)  # typed and validated now, before anything is written
    return out
