"""Experiments as data: load `experiments/<name>.py`, apply typed `--set key=value` overrides, validate early.

Every experiment module defines `get_config()` returning a locked `ml_collections.ConfigDict` with the fields
`name`, `data`, `quantizer`, `model`, `train`, `grid` (level x arch x seed, plus `reference_seed`: extra seeds
for the lossless level) and `tolerance`, and may define `analysis` (margin δ in points, confidence). A typo in a key or
a value of the wrong type is a one-line `UserError`, raised before anything is written.
"""

import ast
import importlib.util
import pathlib
import sys
from typing import Any, Iterable, List, Sequence

import ml_collections

from helmjax.errors import UserError

# Train keys added with the ImageNet-style recipe, and the defaults that keep the recipe as it was; left out of
# sweep digests at these values (`sweeps.identity.DEFAULT_NOT_SHAPING`).
RECIPE_DEFAULTS = {"lr_schedule": "", "warmup_epochs": 0.0, "lr_steps": (), "weight_decay": 0.0,
                   "label_smoothing": 0.0, "augment_mode": "", "crop_size": 0, "compute_dtype": "float32",
                   "best_epoch_by": "val_acc"}

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "experiments"


def experiment_names(directory: pathlib.Path = EXPERIMENTS_DIR) -> List[str]:
    return sorted(p.stem for p in directory.glob("*.py") if not p.name.startswith("_"))


def load_experiment(name: str, directory: pathlib.Path = EXPERIMENTS_DIR) -> ml_collections.ConfigDict:
    path = directory / f"{name}.py"
    if not path.is_file():
        raise UserError(f"unknown experiment {name!r}; available: {', '.join(experiment_names(directory))} "
                        f"(files in {directory})")
    if str(directory.parent) not in sys.path:  # experiment files share `experiments/_common.py`
        sys.path.insert(0, str(directory.parent))
    spec = importlib.util.spec_from_file_location(f"helmjax_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = with_defaults(module.get_config())
    config.lock()
    return config


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The keys every experiment has, filled in where its file leaves them out: the analysis settings (margin δ
    in accuracy points, confidence, storage budgets, the family its α covers), `data.train_fraction`, `grid.reference_seed` (extra seeds of the lossless reference level) and the
    speed seam's `train.performance` (auto | cpu | accelerator | plain) and `train.stack_mode` ("" | unroll | vmap),
    the input pipeline's `train.data_workers` and `train.in_memory_bytes`, `train.checkpoint_every_steps`, and the
    recipe's `RECIPE_DEFAULTS` (schedule, warm-up, weight decay, label smoothing, crop)."""
    if "analysis" not in config:
        config.analysis = ml_collections.ConfigDict(dict(margin=1.0, confidence=0.95))
    if "reference_seed" not in config.grid:
        config.grid.reference_seed = []
    # Axes over any config key (`helmjax.sweeps.axes`); `setting` is set in each setting's own config.
    if "axes" not in config.grid:
        config.grid.axes = []
    if "setting" not in config.grid:
        config.grid.setting = ""
    # The share of the training split a run trains on (nested, class-balanced subsets: `sweeps.level_data`), an
    # axis of the storage question (how many images at how many bits); budgets for the storage report, in bytes.
    if "train_fraction" not in config.data:
        config.data.train_fraction = 1.0
    if "budget" not in config.analysis:
        config.analysis.budget = []
    # Which sequences the analysis' α covers (`helmjax.analysis.families`): "per_sequence" or "report".
    if "family" not in config.analysis:
        config.analysis.family = "per_sequence"
    # The speed seam (helmjax.training.performance): the layer/compiler profile and how stacks run.
    if "performance" not in config.train:
        config.train.performance = "auto"
    if "stack_mode" not in config.train:
        config.train.stack_mode = ""
    # The input pipeline (helmjax.training.pipeline) and checkpoints within an epoch; none changes a result.
    for key, default in (("data_workers", 0), ("in_memory_bytes", 4 * 2 ** 30), ("checkpoint_every_steps", 0)):
        if key not in config.train:
            config.train[key] = default
    # The ImageNet-style recipe (helmjax.training.recipe); at these defaults a run trains as before they existed.
    for key, default in RECIPE_DEFAULTS.items():
        if key not in config.train:
            config.train[key] = list(default) if isinstance(default, tuple) else default
    return config


def parse_value(text: str) -> Any:
    """A Python literal when the text is one (numbers, booleans, lists, None), else the text as a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _check_type(key: str, old: Any, new: Any, origin: str = "--set") -> Any:
    if old is None or new is None:
        return new
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
        if isinstance(new, str) and new.strip().lower() in ("inf", "infinity"):  # e.g. a noise-free camera
            return float("inf")
    elif isinstance(old, str):
        if isinstance(new, str):
            return new
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return str(new)
        return _type_error(key, old, new, origin)
    elif isinstance(old, (list, tuple)):
        if isinstance(new, (list, tuple)):
            return type(old)(new)
        if isinstance(new, str) and "," in new:  # `--set grid.level=raw,1,50`
            return type(old)(parse_value(v.strip()) for v in new.split(",") if v.strip())
        return type(old)([new])  # `--set grid.seed=3` means the one-element list [3]
    elif isinstance(new, type(old)):
        return new
    return _type_error(key, old, new, origin)


def _type_error(key, old, new, origin):
    raise UserError(f"{origin} {key}={new!r}: expected a {type(old).__name__} like {old!r}, "
                    f"got a {type(new).__name__}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str],
                    origin: str = "--set") -> ml_collections.ConfigDict:
    """Returns a copy of `config` with each `key=value` applied; the copy stays locked. `origin` names where the
    override came from in error lines (`--set`, a grid axis)."""
    config = ml_collections.ConfigDict(config.to_dict(), type_safe=False)
    config.lock()
    for item in overrides:
        if "=" not in item:
            raise UserError(f"{origin} {item!r} is not of the form key=value (e.g. --set train.epochs=5)")
        key, text = item.split("=", 1)
        key = key.strip()
        parent, _, leaf = key.rpartition(".")
        node = config
        for part in parent.split(".") if parent else []:
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                raise UserError(f"{origin} {key}: unknown key {part!r}; known keys: {', '.join(flat_keys(config))}")
            node = node[part]
        if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
            raise UserError(f"{origin} {key}: unknown key; known keys: {', '.join(flat_keys(config))}")
        old = node[leaf]
        if isinstance(old, ml_collections.ConfigDict):
            raise UserError(f"{origin} {key}: is a group; set one of its fields: "
                            f"{', '.join(key + '.' + k for k in old.keys())}")
        with config.unlocked():
            node[leaf] = _check_type(key, old, parse_value(text), origin)
    return config


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> List[str]:
    keys = []
    for k, v in config.items():
        if isinstance(v, ml_collections.ConfigDict):
            keys += flat_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


def parse_filters(filters: Sequence[str], axes: Sequence[str] = ()) -> dict:
    """`--only level=raw,20 --only arch=A` -> {"level": {"raw", 20}, "arch": {"A"}}; `axes`: the config's grid
    axes over config keys (`helmjax.sweeps.axes`), also accepted by their last part (`photons`)."""
    chosen = {}
    for item in filters:
        if "=" not in item:
            raise UserError(f"--only {item!r} is not of the form axis=value[,value...] (e.g. --only arch=A,B)")
        axis, values = item.split("=", 1)
        axis = axis.strip()
        known = ["level", "arch", "seed"] + list(axes)
        if axis not in known and axis not in {a.rpartition(".")[2] for a in axes}:
            raise UserError(f"--only {item!r}: unknown grid axis {axis!r}; use one of {', '.join(known)}")
        chosen.setdefault(axis, set()).update(parse_value(v.strip()) for v in values.split(","))
    return chosen
