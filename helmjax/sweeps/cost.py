"""What a sweep costs before it runs (`python run.py --plan`): runs and images, each level's store on disk estimated
from a sample's files, and compute hours at a measured or cited throughput.

Why: at ImageNet scale a sweep is days of accelerator time and terabytes of level stores; a user should know both
before starting. Store sizes come from really encoding a sample of the training set at every level (the stored
file per item, with a t interval for the mean); CPU throughput is measured here, on a few real training steps of
each architecture; accelerator throughput is cited (`PUBLISHED`), or measured by `benchmarks/gpu_check.py`.
"""

import dataclasses
import math
import pathlib
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from helmjax.errors import UserError
from helmjax.layout import RAW

SAMPLE = 32  # training items encoded per level
MEASURE_BATCH = 32  # the CPU throughput is measured at this batch at most (a step of 256 ResNet-50 images is minutes)
# Published split sizes (train, test) of large sets, their stored resolution and classes: --plan costs them before
# they are downloaded (data.name, or data.dataset of tfds_images).
KNOWN_SETS = {"imagenet2012": (1_281_167, 50_000, 256, 1000), "ilsvrc": (1_281_167, 50_000, 256, 1000),
              "imagenet_resized/64x64": (1_281_167, 50_000, 64, 1000), "places365_small": (1_803_460, 36_500, 256, 365)}
TIMED_STEPS = 3  # training steps timed per architecture (after one compiling and one warm step)
# An evaluation image costs about a third of a training image (forward only, against forward and backward).
EVAL_COST = 1.0 / 3.0
# Accelerator training throughput measured by `benchmarks/gpu_check.py` (its `train` and `imagenet` parts), copied
# here from BENCHMARKS.md once a session has a device: arch -> (device, input side, images/s). None measured yet.
MEASURED_ACCELERATOR: Dict[str, Tuple[str, int, float]] = {}
# Published single-GPU training throughput of ResNet-50 at 224x224 (ImageNet), images/s.
PUBLISHED = {
    "arch": "resnet50",
    "size": 224,
    "rates": {"A100 80GB, TF32": 938.0, "A100 80GB, mixed precision": 2470.0},
    "source": "NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, 'Training "
              "performance: NVIDIA DGX A100 (8x A100 80GB)', 1 GPU, pytorch-21.03 NGC container",
}


@dataclasses.dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class LevelCost:
    level: object
    bytes_per_item: Optional[Interval]  # mean stored file per item; None when it cannot be estimated here
    store_bytes: Optional[Interval]  # the level's stores (train and test splits)
    why_not: str = ""


@dataclasses.dataclass(frozen=True)
class SettingCost:
    label: str
    runs: int
    runs_per_arch: Dict[str, int]
    epochs: int
    n_train: int
    n_val: int
    n_test: int
    images_per_run: int  # trained (epochs x steps x batch)
    evaluated_per_run: int  # validation each epoch, test once
    levels: Tuple[LevelCost, ...]
    cpu_images_per_s: Dict[str, float]  # per arch, measured here
    item_shape: Tuple[int, ...]
    stand_in: str = ""  # when the data is not here: what the counts and the encoded sample stand in with
    sample_size: int = SAMPLE  # training items encoded per level


def _mean_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    from scipy import stats
    mean = float(np.mean(values))
    if len(values) < 2:
        return Interval(mean, float("nan"), float("nan"))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    return Interval(mean, mean - half, mean + half)


def _scaled(interval: Interval, factor: float) -> Interval:
    return Interval(interval.value * factor, interval.low * factor, interval.high * factor)


def level_costs(ds, quantizer, levels, sample: int = SAMPLE, counts: Optional[Dict[str, int]] = None
                ) -> Tuple[LevelCost, ...]:
    """Each level's stored bytes per item, from `sample` evenly spaced training items really encoded, and its
    stores' size (train and test, `counts` items each, default the data's; the split a quantizer leaves alone
    stored at the raw level)."""
    from helmjax.data import level_store
    picks = np.unique(np.linspace(0, len(ds.x_train) - 1, min(sample, len(ds.x_train))).round().astype(np.int64))
    items = np.asarray(ds.x_train[picks])
    compressed = {"both": ("train", "test"), "train": ("train",), "test": ("test",)}[quantizer.apply_to]
    counts = counts or {"train": len(ds.x_train), "test": len(ds.x_test)}

    def per_item(level):
        plan = level_store.make_plan(items, quantizer.spec.name, level, dict(quantizer.options), ds.sample_rate)
        files, _, _ = level_store.encode_items(plan, items)
        return _mean_interval(np.array([len(f) for f in files], np.float64))

    raw = per_item(RAW)
    out = []
    for level in levels:
        if level != RAW and quantizer.spec.fit is not None:
            out.append(LevelCost(level, None, None, "needs its tables fitted on the training set first"))
            continue
        each = raw if level == RAW else per_item(level)
        total = [_scaled(each if level == RAW or split in compressed else raw, counts[split]) for split in counts]
        out.append(LevelCost(level, each, Interval(*(sum(getattr(t, f) for t in total)
                                                      for f in ("value", "low", "high")))))
    return tuple(out)


def cpu_images_per_second(model, settings, item_shape, is_image: bool, steps: int = TIMED_STEPS) -> float:
    """Training images/s of `model` on this machine: real steps of the trainer on random items of `item_shape`."""
    import jax
    from helmjax.training.pipeline import SplitData, StackInput
    from helmjax.training.trainer import Trainer
    trainer = Trainer(model, settings, is_image, steps_per_epoch=2)  # a schedule's length changes no step's cost
    rng = np.random.RandomState(0)
    batch, n = settings.batch_size, 2 * settings.batch_size
    x = (rng.randint(0, 256, (n, *item_shape)).astype(np.uint8) if is_image
         else rng.standard_normal((n, *item_shape)).astype(np.float32))
    y = rng.randint(0, 2, n).astype(np.int32)
    inputs = StackInput([SplitData(x, y, x, y, x, y)], settings, trainer.mesh)
    states = trainer.stack_states([trainer.init(x[:1], jax.random.key(0))])
    key_data = trainer.put(np.asarray(jax.random.key_data(jax.random.key(0)))[None])
    batches = inputs.batches(rng.randint(0, n, (2 + steps, 1, batch)))

    def step(states):
        b = next(batches)
        states, metrics = trainer.train_step(states, b.x, b.y, key_data, b.step)
        jax.block_until_ready((states, metrics))
        return states

    states = step(step(states))  # compile, then one warm step
    t0 = time.perf_counter()
    for _ in range(steps):
        states = step(states)
    return steps * batch / (time.perf_counter() - t0)


def setting_cost(setting, measure_cpu: bool = True, sample: int = SAMPLE) -> SettingCost:
    """The cost of one setting of a plan (`sweeps.plan.SettingPlan`); raises UserError when its data cannot be
    loaded (the message says why)."""
    import tempfile
    from helmjax import layout
    # --plan writes nothing: a file set's check is read from the workdir's cache if a run made one, else kept aside
    with tempfile.TemporaryDirectory(prefix="helmjax-plan-") as aside:
        cached = layout.shared_cache(setting.sweep_dir) / layout.DATASETS_DIR
        try:
            ds = setting.data.load(setting.sweep_dir if cached.is_dir() else pathlib.Path(aside) / "sweep")
        except UserError as e:
            known = KNOWN_SETS.get(setting.data.options.get("dataset") or setting.data.name)
            if known is None:
                raise
            return _stand_in_cost(setting, known, str(e), measure_cpu)
        return _setting_cost(setting, ds, measure_cpu, sample)


def _kodak_stand_in(size: int):
    """The 24 Kodak photos at the stored resolution (shorter side to `size`, centre square): natural photos whose
    coded sizes stand in for a large set's that is not on this machine."""
    from PIL import Image
    from helmjax import paths
    from helmjax.data.dataset import ArrayDataset
    from helmjax.data.resize import shorter_side_center_crop
    photos = sorted((paths.data_dir() / "kodak").glob("kodim*.png"))
    if not photos:
        raise UserError(f"no Kodak photos under {paths.data_dir() / 'kodak'} to stand in for the absent data set; "
                        "set HELMJAX_DATA_DIR")
    x = np.stack([shorter_side_center_crop(np.asarray(Image.open(p).convert("RGB")), size) for p in photos])
    y = np.arange(len(x), dtype=np.int32) % 2
    return ArrayDataset("kodak", x, y, x, y, ("a", "b"))


def _stand_in_cost(setting, known: Tuple[int, int, int, int], why: str, measure_cpu: bool) -> SettingCost:
    n_train, n_test, size, classes = known
    size = int(setting.data.options.get("image_size") or size)
    n_val = int(round(setting.data.val_fraction * n_train))
    counts = {"train": n_train, "test": n_test}
    ds = _kodak_stand_in(size)
    n_fit = int(round((n_train - n_val) * setting.data.train_fraction))
    stand_in = (f"the data is not here ({why.split(';')[0]}): its published split sizes ({n_train:,} train, "
                f"{n_test:,} test, {classes} classes), and the 24 Kodak photos at {size}x{size} encoded for the stores")
    return _setting_cost(setting, ds, measure_cpu, len(ds.x_train), counts=(n_fit, n_val, n_test), classes=classes,
                         store_counts=counts, stand_in=stand_in)


def _setting_cost(setting, ds, measure_cpu: bool, sample: int, counts=None, classes=None, store_counts=None,
                  stand_in: str = "") -> SettingCost:
    from helmjax.sweeps.level_data import nested_subset, split_validation
    if counts is None:
        train_idx, val_idx = split_validation(ds, setting.data.val_fraction, setting.data.split_seed)
        train_idx = nested_subset(ds.y_train, train_idx, setting.data.train_fraction, setting.data.split_seed)
        counts = (len(train_idx), len(val_idx), len(ds.y_test))
    n_train, n_val, n_test = counts
    train = setting.train
    steps = n_train // train.batch_size
    if train.max_steps_per_epoch:
        steps = min(steps, train.max_steps_per_epoch)
    archs: Dict[str, int] = {}
    for run in setting.runs:
        archs[run.arch] = archs.get(run.arch, 0) + 1
    is_image = setting.data.modality == "image"
    item_shape = tuple(ds.x_train.shape[1:])
    rates = {}
    if measure_cpu:
        if setting.features:
            raise UserError("--plan measures CPU throughput on image data only; this sweep computes audio features")
        for arch in archs:
            measured = dataclasses.replace(train, batch_size=min(train.batch_size, MEASURE_BATCH))
            rates[arch] = cpu_images_per_second(setting.model.build(arch, classes or ds.num_classes), measured,
                                                item_shape, is_image)
    return SettingCost(setting.label, len(setting.runs), archs, train.epochs, n_train, n_val, n_test,
                       train.epochs * steps * train.batch_size, train.epochs * n_val + n_test,
                       level_costs(ds, setting.quantizer, setting.levels, sample, store_counts), rates, item_shape,
                       stand_in, min(sample, len(ds.x_train)))


def hours(cost: SettingCost, images_per_s: float, runs: Optional[int] = None) -> float:
    """Compute hours of `runs` (default all) runs at `images_per_s` training images/s, evaluation at EVAL_COST."""
    work = cost.images_per_run + EVAL_COST * cost.evaluated_per_run
    return (cost.runs if runs is None else runs) * work / images_per_s / 3600.0


def store_total(costs: List[Tuple[object, SettingCost]]) -> Optional[Interval]:
    """Bytes of every level store of the sweep, a store counted once where settings share it (same data, quantizer
    and options, level); None when some level is not estimated."""
    seen = {}
    for setting, cost in costs:
        data, quantizer = dict(setting.config["data"]), dict(setting.config["quantizer"])
        for level in cost.levels:
            if level.store_bytes is None:
                return None
            key = repr((sorted(data.items(), key=str), "raw" if level.level == RAW else sorted(quantizer.items(), key=str),
                        level.level))
            seen[key] = level.store_bytes
    return Interval(*(sum(getattr(i, f) for i in seen.values()) for f in ("value", "low", "high")))
