"""A sweep directory holds runs of one config: the config parts that shape a run's result, and their digest.

Two runs are comparable only when everything that shapes their result (data, features, quantizer options, model,
training recipe) is the same; the grid only says which runs exist, and the analysis settings and performance knobs
(stack size, gradient slices, evaluation batch) change how fast a result comes, not what it is. `sweep.json` and
each run's `config.json` store the digest, so a re-run with another config into the same directory is refused
(naming the keys that differ) instead of mixing two experiments in one table.
"""

import hashlib
import json
import pathlib
from typing import Any, Dict, List, Mapping

from helmjax.errors import UserError
from helmjax.layout import SWEEP_FILE

SHAPING_SECTIONS = ("data", "features", "quantizer", "model", "train")
# Keys inside those sections that do not change a run's result: where a copy of the data lives, and speed knobs.
NOT_SHAPING = frozenset({"data.tfds_data_dir", "train.stack", "train.stack_mode", "train.micro_batches",
                         "train.eval_batch_size", "train.performance", "train.data_workers", "train.in_memory_bytes",
                         "train.checkpoint_every_steps"})
# Keys added after sweeps existed, left out at their default so the digests of those sweeps stay what they were
# (compared as JSON: a list and a tuple of the same values are one value).
DEFAULT_NOT_SHAPING = {"data.train_fraction": 1.0,
                       # the ImageNet-style recipe (`config.RECIPE_DEFAULTS`)
                       "train.lr_schedule": "", "train.warmup_epochs": 0.0, "train.lr_steps": [],
                       "train.weight_decay": 0.0, "train.label_smoothing": 0.0, "train.augment_mode": "",
                       "train.crop_size": 0, "train.compute_dtype": "float32",
                       "train.best_epoch_by": "val_acc"}


class ConfigMismatch(UserError):
    """The sweep directory holds runs of another config."""


def _flatten(tree: Mapping, prefix: str) -> Dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def shaping(config) -> Dict[str, Any]:
    """The dotted keys (and their values, JSON-normalised) that shape a run's result; for a config (not a record
    read back from disk) also the quantizer's version, which changes whenever its output does."""
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    flat = {}
    if hasattr(config, "to_dict"):
        from helmjax.quantizers import registry
        from helmjax.sweeps import axes
        flat["quantizer.version"] = registry.get(config.quantizer.name).version
        if axes.has_axes(config):  # the other quantizers a grid axis brings in shape their settings' runs too
            for setting in axes.settings(config):
                name = dict(setting.assignments).get("quantizer.name", config.quantizer.name)
                if name != config.quantizer.name:
                    flat[f"quantizer.versions.{name}"] = registry.get(name).version
    for section in SHAPING_SECTIONS:
        if isinstance(tree.get(section), Mapping):
            flat.update(_flatten(tree[section], section))
    flat = _as_read_back(flat)
    return {k: v for k, v in flat.items()
            if k not in NOT_SHAPING and not (k in DEFAULT_NOT_SHAPING and v == DEFAULT_NOT_SHAPING[k])}


def _as_read_back(value):
    """JSON-normalised, as read back from disk: tuples -> lists, keys sorted."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def digest(shaping_keys: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the canonical JSON of the shaping keys."""
    text = json.dumps(shaping_keys, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_digest(config) -> str:
    return digest(shaping(config))


def same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Equal shaping keys; a record from before quantizer versions were kept matches any version (and one from
    before an axis's other quantizers were kept, any of theirs)."""
    if "quantizer.version" not in old:
        new = {k: v for k, v in new.items() if k != "quantizer.version"}
    if not any(k.startswith("quantizer.versions.") for k in old):
        new = {k: v for k, v in new.items() if not k.startswith("quantizer.versions.")}
    return dict(old) == dict(new)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """`key: old -> new` for every shaping key that differs (a key only one side has shows as 'unset')."""
    keys = sorted(set(old) | set(new))
    show = lambda side, key: json.dumps(side[key]) if key in side else "unset"
    return [f"{k}: {show(old, k)} -> {show(new, k)}" for k in keys if old.get(k, ...) != new.get(k, ...)]


def recorded_shaping(sweep_dir: pathlib.Path) -> Dict[str, Any]:
    """The shaping keys a sweep directory was run with (from sweep.json; sweeps written before the digest existed
    store their whole config there, which gives the same keys). Empty when the directory holds no sweep."""
    path = pathlib.Path(sweep_dir) / SWEEP_FILE
    if not path.is_file():
        return {}
    record = json.loads(path.read_text())
    return record["shaping"] if "shaping" in record else shaping(record)


def record(config) -> dict:
    """What sweep.json stores about the config's identity."""
    keys = shaping(config)
    return {"config_digest": digest(keys), "shaping": keys}


def resolve_sweep_dir(workdir: pathlib.Path, config, *, new_sweep: bool = False) -> pathlib.Path:
    """The directory for this config's sweep: `<workdir>/<name>` when it is empty or holds this config;
    `<workdir>/<name>-<digest>` when that holds it (an earlier `--new_sweep`) or when `new_sweep` asks for it.
    Otherwise one error line naming the keys that differ."""
    base = pathlib.Path(workdir) / config.name
    keys = shaping(config)
    old = recorded_shaping(base)
    if not old or same(old, keys):
        return base
    own = base.with_name(f"{config.name}-{digest(keys)}")
    recorded = recorded_shaping(own)
    if new_sweep or recorded and same(recorded, keys):
        return own
    changed = differences(old, keys)
    shown = "; ".join(changed[:4]) + (f" (and {len(changed) - 4} more)" if len(changed) > 4 else "")
    raise ConfigMismatch(f"{base} holds runs of another config ({shown}); run with the same settings to continue "
                         f"it, or add --new_sweep to put this config in {own.name} beside it")


def find_sweep_dir(workdir: pathlib.Path, config) -> pathlib.Path:
    """The existing sweep directory of exactly this config (for --analyze); one error line when there is none."""
    try:
        sweep_dir = resolve_sweep_dir(workdir, config)
    except ConfigMismatch as e:
        raise ConfigMismatch(f"no sweep of this config to analyse: {e}".replace(
            "; run with the same settings to continue it, or add --new_sweep to put this config in",
            "; pass the settings it was run with, or run this config first (with --new_sweep) into")) from None
    if not (sweep_dir / SWEEP_FILE).is_file():
        raise UserError(f"no sweep in {sweep_dir}; run it first: python run.py --experiment={config.name}")
    return sweep_dir
