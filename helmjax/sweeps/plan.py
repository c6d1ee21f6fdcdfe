"""A sweep's plan: the config resolved once into frozen parts that everything below takes.

big_vision's and the flax ImageNet example's `train.py` read their config at the top and pass the parts down; so
does helmjax. `make_plan(config)` validates the whole config (a mistake is one `UserError` line, before anything
is written), looks every quantizer up once, and builds what a sweep needs: per setting of the grid axes the data
source, the quantizer spec with its options, the model factory, the training settings, the runs, the config
digest and the directory. Below the plan no module reads the config or looks a name up again.

A sweep without grid axes is a plan of one setting whose directory is the sweep's own.
"""

import dataclasses
import pathlib
from typing import Dict, List, Optional, Tuple, Union

from helmjax import layout, models
from helmjax.data import catalog
from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError
from helmjax.layout import RAW
from helmjax.quantizers import registry
from helmjax.sweeps import axes, identity
from helmjax.sweeps.quantized_data import APPLY_TO
from helmjax.sweeps.run_names import run_name
from helmjax.training import performance
from helmjax.training.recipe import TrainSettings, check_settings as check_recipe

# Quantizer options the sweep itself reads, whichever quantizer runs: the noise record measures q_N at the
# sweep's JPEG subsampling.
SWEEP_OPTIONS = ("subsampling",)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    level: Union[int, float, str]
    arch: str
    seed: int
    name: str


@dataclasses.dataclass(frozen=True)
class QuantizerPlan:
    """The quantizer resolved: its spec, its options as the config gives them (they key caches), which splits."""
    spec: registry.QuantizerSpec
    options: Dict
    apply_to: str

    @property
    def subsampling(self) -> str:
        return self.options.get("subsampling", "4:2:0")


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """Where a setting's data comes from: the catalog entry, its loader options, the validation split and the
    share of the rest that runs train on."""
    name: str
    modality: str
    options: Dict  # the loader's keyword arguments
    split_seed: int
    val_fraction: float
    train_fraction: float = 1.0

    def load(self, sweep_dir: pathlib.Path) -> ArrayDataset:
        """The data set; decoded copies of file-based sets are cached in the workdir's shared cache."""
        options = dict(self.options)
        if self.name in ("cifar10", "image_folder", "ilsvrc"):
            options.setdefault("cache_dir", str(layout.shared_cache(sweep_dir) / layout.DATASETS_DIR))
        return catalog.load(self.name, **options)


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    family: str
    knobs: Dict  # the family's width/depth/dropout settings

    def build(self, arch: str, num_classes: int):
        return models.build(self.family, arch, num_classes, **self.knobs)


@dataclasses.dataclass(frozen=True)
class SettingPlan:
    """One setting of the grid axes (the whole sweep when there are none): a sweep directory's worth of runs."""
    experiment: str
    tag: str  # "" without axes; else it names the directory and leads the run names
    label: str
    columns: Dict  # the axis values of this setting, one results column each
    sweep_dir: pathlib.Path
    data: DataPlan
    features: Optional[Dict]  # {"name": "log_mel", ...} for audio; None: the model sees the stored data
    quantizer: QuantizerPlan
    model: ModelPlan
    train: TrainSettings
    levels: Tuple
    runs: Tuple[RunSpec, ...]  # the whole grid in run order (level, arch, seed)
    tolerance: float  # the sweet spot's tolerance in the printed table
    digest: str  # of the keys that shape a run's result (`sweeps.identity`)
    raw_digest: str  # of those keys but the quantizer's: settings with the same one share their raw runs
    confidence: float
    config: Dict  # the setting's config as a plain tree: what each run's config.json keeps
    record: Dict  # its sweep.json: the config, its identity and what the quantizer's levels mean

    def select(self, only: Optional[dict]) -> List[RunSpec]:
        """The runs whose level, arch and seed pass `only` ({axis: allowed values})."""
        return [r for r in self.runs if not only or all(
            {"level": r.level, "arch": r.arch, "seed": r.seed}[a] in allowed for a, allowed in only.items())]

    def run_dir(self, run: RunSpec) -> pathlib.Path:
        return layout.run_dir(self.sweep_dir, run.name)


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    name: str
    sweep_dir: pathlib.Path
    axis_names: Tuple[str, ...]  # grid axes over config keys; () for a plain sweep
    settings: Tuple[SettingPlan, ...]
    record: Dict  # the sweep directory's sweep.json

    def choose(self, only: Optional[dict]) -> List[Tuple[SettingPlan, List[RunSpec]]]:
        """The settings and runs `only` (`--only`: axis values and level/arch/seed) keeps, ready to run; one error
        line when it keeps none or a chosen setting lacks its data."""
        axis_filters, grid_filters = _split_filters(self.axis_names, only)
        chosen = [s for s in self.settings if all(axes.value_text(s.columns[name]) in allowed
                                                 for name, allowed in axis_filters.items())]
        if not chosen:
            raise UserError("the --only filter leaves no setting of the grid axes; check its values against --list")
        for setting in chosen:  # what `--list` may show without, but a run needs
            if setting.data.name == "image_folder" and not setting.data.options.get("root"):
                raise UserError("data.root is empty: point it at a folder or .tar of class subfolders, "
                                "e.g. --set data.root=/path/to/images")
        picked = [(s, s.select(grid_filters)) for s in chosen]
        if not all(runs for _, runs in picked):
            raise UserError("the --only filter leaves no run of the grid; check its values against --list")
        return picked


def make_plan(config, sweep_dir: Optional[pathlib.Path] = None, workdir: pathlib.Path = pathlib.Path("runs")
              ) -> SweepPlan:
    """The plan of `config`'s sweep in `sweep_dir` (default `<workdir>/<config.name>`): validated and resolved."""
    sweep_dir = pathlib.Path(sweep_dir) if sweep_dir else pathlib.Path(workdir) / config.name
    every = axes.settings(config)
    shaping = identity.shaping(config)
    if not every:
        setting = _setting_plan(config, "", "", {}, sweep_dir, shaping)
        _check_options([setting])
        return SweepPlan(config.name, sweep_dir, (), (setting,), setting.record)
    plans = []
    for s in every:
        part = axes.setting_config(config, s)
        plans.append(_setting_plan(part, s.tag, s.label, s.columns, layout.setting_dir(sweep_dir, s.tag),
                                   identity.shaping(part)))
    _check_options(plans)
    record = dict(_record(config, _quantizer(config).spec, shaping), settings=[
        {"tag": s.tag, "values": s.columns, "assignments": dict(s.assignments)} for s in every])
    return SweepPlan(config.name, sweep_dir, tuple(name for name, _ in axes.raw_axes(config)), tuple(plans), record)


def _record(config, spec: registry.QuantizerSpec, shaping: dict) -> dict:
    """sweep.json: the config, its identity (`sweeps.identity`) and what the quantizer's levels mean."""
    return dict(config.to_dict(), level_name=spec.level_name, dataset=config.data.name, quantizer_name=spec.name,
                quantizer_spec=spec.describe(config.grid.level), config_digest=identity.digest(shaping),
                shaping=shaping)


def _quantizer(config) -> QuantizerPlan:
    options = {k: v for k, v in config.quantizer.to_dict().items() if k not in ("name", "apply_to")}
    return QuantizerPlan(registry.get(config.quantizer.name), options, config.quantizer.get("apply_to", "both"))


def _setting_plan(config, tag: str, label: str, columns: dict, sweep_dir: pathlib.Path, shaping: dict
                  ) -> SettingPlan:
    quantizer = _quantizer(config)
    data_entry = catalog.entry(config.data.name)
    data_options = {k: v for k, v in config.data.to_dict().items()
                    if k not in ("name", "split_seed", "train_fraction")}
    data = DataPlan(config.data.name, data_entry.modality, data_options, config.data.get("split_seed", 0),
                    config.train.val_fraction, config.data.get("train_fraction", 1.0))
    features = config.get("features")
    features = None if not features or features.get("name") in (None, "none") else features.to_dict()
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    train = TrainSettings(**{k: v for k, v in config.train.to_dict().items() if k in fields})
    model = ModelPlan(config.model.family, {k: v for k, v in config.model.to_dict().items() if k != "family"})
    _validate(config, quantizer, data, model, train)
    raw_keys = {k: v for k, v in shaping.items() if not k.startswith("quantizer.")}
    return SettingPlan(
        experiment=config.name, tag=tag, label=label, columns=dict(columns), sweep_dir=sweep_dir, data=data,
        features=features, quantizer=quantizer, model=model, train=train, levels=tuple(config.grid.level),
        runs=tuple(_grid_runs(config, quantizer.spec, tag)), tolerance=config.tolerance,
        digest=identity.digest(shaping), raw_digest=identity.digest(raw_keys), confidence=config.analysis.confidence,
        config=config.to_dict(), record=_record(config, quantizer.spec, shaping))


def _grid_runs(config, spec: registry.QuantizerSpec, tag: str) -> List[RunSpec]:
    """The grid in run order (level, then arch, then seed); the lossless level may have more seeds than the
    others (`grid.reference_seed`), since every comparison uses it. A setting's tag leads its run names."""
    extra = [s for s in (config.grid.get("reference_seed") or []) if s not in config.grid.seed]
    runs = []
    for level in config.grid.level:
        for arch in config.grid.arch:
            for seed in list(config.grid.seed) + (extra if level == RAW else []):
                name = run_name(spec, level, arch, seed)
                runs.append(RunSpec(level, arch, seed, f"{tag}-{name}" if tag else name))
    return runs


def _validate(config, quantizer: QuantizerPlan, data: DataPlan, model: ModelPlan, train: TrainSettings):
    """Everything a user can get wrong in a setting, as one UserError line naming the fix."""
    spec = quantizer.spec
    if spec.modality != data.modality:
        raise UserError(f"quantizer {spec.name!r} is for {spec.modality} but dataset {data.name!r} is "
                        f"{data.modality}; pick a matching quantizer")
    if quantizer.apply_to not in APPLY_TO:
        raise UserError(f"quantizer.apply_to={quantizer.apply_to!r}; use one of {', '.join(APPLY_TO)}")
    if not config.grid.level:
        raise UserError("grid.level is empty; give at least one level, e.g. --set grid.level=raw,20,50")
    for level in config.grid.level:
        if level != RAW:
            spec.check(level)
    for arch in config.grid.arch:
        if arch not in models.archs(model.family):
            raise UserError(f"unknown {model.family} architecture {arch!r}; use one of "
                            f"{', '.join(models.archs(model.family))}")
    for seed in list(config.grid.seed) + list(config.grid.get("reference_seed") or []):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserError(f"grid.seed / grid.reference_seed has {seed!r}; seeds are integers >= 0")
    if config.grid.get("reference_seed") and RAW not in config.grid.level:
        raise UserError("grid.reference_seed adds seeds to the lossless level, but grid.level has no 'raw'; add it "
                        "or drop grid.reference_seed")
    check_recipe(train)  # the optimizer, schedule, regularisation and crop
    if data.modality != "image" and (train.augment_mode or train.crop_size):
        raise UserError(f"train.augment_mode and train.crop_size are for images; dataset {data.name!r} is "
                        f"{data.modality}: leave them unset")
    if train.epochs < 1 or train.batch_size < 1:
        raise UserError("train.epochs and train.batch_size must be >= 1")
    performance.check_settings(train)  # per device again when the trainer is built
    if train.checkpoint_every_steps < 0 or train.data_workers < 0 or train.in_memory_bytes < 0:
        raise UserError("train.checkpoint_every_steps, train.data_workers and train.in_memory_bytes must be >= 0")
    if not 0.0 < data.val_fraction < 1.0:
        raise UserError(f"train.val_fraction={data.val_fraction} must be in (0, 1)")
    if not 0.0 < data.train_fraction <= 1.0:
        raise UserError(f"data.train_fraction={data.train_fraction} must be in (0, 1]; it is the share of the "
                        f"training split the runs train on")


def _check_options(settings: List[SettingPlan]):
    """One error line for a quantizer option that no quantizer of the sweep takes (a typo, or an option of a
    codec the sweep does not use); each quantizer gets only the options it takes (`registry.accepted_options`)."""
    specs = {s.quantizer.spec.name: s.quantizer.spec for s in settings}
    for setting in settings:
        for option in setting.quantizer.options:
            if option not in SWEEP_OPTIONS and not any(registry.takes_option(spec, option) for spec in specs.values()):
                raise UserError(f"quantizer option {option!r} is taken by no quantizer of this sweep "
                                f"({', '.join(specs)}); remove it or check its spelling")


def _split_filters(axis_names, only: Optional[dict]) -> Tuple[dict, dict]:
    """`--only` as (axis filters {axis name: texts}, grid filters {level|arch|seed: values}); an axis may be
    named by its whole key or its last part (`data.photons` or `photons`)."""
    by_leaf = {name.rpartition(".")[2]: name for name in axis_names}
    axis_filters, grid_filters = {}, {}
    for key, allowed in (only or {}).items():
        if key in ("level", "arch", "seed"):
            grid_filters[key] = allowed
        elif key in axis_names or key in by_leaf:
            axis_filters[key if key in axis_names else by_leaf[key]] = {axes.value_text(v) for v in allowed}
        else:
            known = ", ".join(["level", "arch", "seed", *axis_names])
            raise UserError(f"--only {key}=...: unknown grid axis {key!r}; use one of {known}")
    return axis_filters, grid_filters
