"""What a run trains with: its settings, optimizer and learning-rate schedule, and the train state they update."""

import dataclasses
from typing import Any, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from helmjax.errors import UserError


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum), "adam", "adadelta"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    lr_decay: float = 1e-6  # Keras-style per-step decay: lr / (1 + decay * step)
    # The schedule (`learning_rate_schedule`): "" the Keras-style `lr_decay`; "cosine" to 0 over all training steps;
    # "step": x0.1 at each epoch of `lr_steps` (e.g. (30, 60, 80)). `warmup_epochs` > 0: a linear ramp from 0 first.
    lr_schedule: str = ""
    warmup_epochs: float = 0.0
    lr_steps: Tuple[float, ...] = ()
    weight_decay: float = 0.0  # L2 on conv/dense kernels (ndim > 1), added to the gradient before the optimizer
    label_smoothing: float = 0.0  # of the training loss' one-hot targets; evaluation is unsmoothed
    rho: float = 0.95  # adadelta
    batch_size: int = 128
    eval_batch_size: int = 1000  # at most; fewer for big items (pipeline.EVAL_VALUES)
    epochs: int = 200
    augment: bool = True  # random shift up to `shift_fraction` of H and W, and a horizontal flip
    shift_fraction: float = 0.1
    # "": the shift and flip above; "random_resized_crop": Inception-style crop (scale 0.08-1, ratio 3/4-4/3) resized
    # to `crop_size`, and a horizontal flip. `crop_size` > 0: the model sees crop_size x crop_size images, evaluation
    # (and training without augmentation) the center crop of the stored ones; 0: the stored size.
    augment_mode: str = ""
    crop_size: int = 0
    # What the conv and dense layers compute in: "float32", or "bfloat16" on accelerators (parameters, batch norm
    # and the loss stay float32). It changes results, so it shapes a run's identity (unlike train.performance).
    compute_dtype: str = "float32"
    # The best epoch (whose parameters are tested): "val_acc" (ties by loss) or "val_loss" (`run_files.best_epoch_key`)
    best_epoch_by: str = "val_acc"
    standardize: bool = False  # per-image standardisation (zero mean, unit variance) instead of x / 255
    max_steps_per_epoch: int = 0  # > 0 caps an epoch (smoke tests); 0 = one pass over the training set
    # > 0: also a checkpoint (state, input position) every this many steps within an epoch, so a kill loses at most
    # that many steps; 0: at epoch ends only. The result is the same either way.
    checkpoint_every_steps: int = 0
    # Speed only (the same result up to float summation order); 0 / "" / "auto" = what was fastest on the platform.
    micro_batches: int = 0  # gradient slices per batch
    stack: int = 0  # runs trained together as one program
    stack_mode: str = ""  # how a stack runs: "unroll" (a copy of the step per run) or "vmap" (one batched step)
    performance: str = "auto"  # the layers and compiler options: a `performance.PROFILES` name
    data_workers: int = 0  # processes decoding the items not held in memory (`pipeline`); 0 = in this process
    in_memory_bytes: int = 4 * 2 ** 30  # a source decoding to at most this is decoded once and held in memory

    def __post_init__(self):
        object.__setattr__(self, "lr_steps", tuple(self.lr_steps))  # a config's list: settings stay hashable


OPTIMIZERS = ("sgd", "adam", "adadelta")
LR_SCHEDULES = ("", "cosine", "step")
AUGMENT_MODES = ("", "random_resized_crop")
BEST_EPOCH_BY = ("val_acc", "val_loss")  # as `run_files.best_epoch_key` ranks them
STEP_DECAY = 0.1  # the "step" schedule's factor at each of `lr_steps`


def check_settings(settings: TrainSettings):
    """Raises UserError for a recipe setting that cannot work (checked when a sweep is planned, before anything is
    written)."""
    if settings.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {settings.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if settings.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"train.lr_schedule={settings.lr_schedule!r}; use one of cosine, step (or '' for the "
                        f"Keras-style train.lr_decay)")
    if settings.warmup_epochs < 0 or settings.weight_decay < 0:
        raise UserError("train.warmup_epochs and train.weight_decay must be >= 0")
    steps = list(settings.lr_steps)
    if settings.lr_schedule == "step" and (not steps or steps != sorted(set(steps)) or steps[0] <= 0):
        raise UserError(f"train.lr_schedule='step' needs train.lr_steps: increasing epochs > 0 at which the rate "
                        f"drops x{STEP_DECAY} (e.g. [30, 60, 80]); got {steps}")
    if not 0.0 <= settings.label_smoothing < 1.0:
        raise UserError(f"train.label_smoothing={settings.label_smoothing} must be in [0, 1)")
    if settings.augment_mode not in AUGMENT_MODES:
        raise UserError(f"train.augment_mode={settings.augment_mode!r}; use random_resized_crop (or '' for the "
                        f"random shift and flip)")
    if settings.crop_size < 0:
        raise UserError(f"train.crop_size={settings.crop_size} must be >= 0 (0: the stored size)")
    if settings.best_epoch_by not in BEST_EPOCH_BY:
        raise UserError(f"train.best_epoch_by={settings.best_epoch_by!r}; use one of {', '.join(BEST_EPOCH_BY)}")


def _needs_steps_per_epoch(settings: TrainSettings) -> bool:
    return settings.lr_schedule in ("cosine", "step") or settings.warmup_epochs > 0


def learning_rate_schedule(settings: TrainSettings, steps_per_epoch: int = 0) -> optax.Schedule:
    """The learning rate at a step. Schedules in epochs (cosine, step, warm-up) need `steps_per_epoch`: the cosine
    reaches 0 after `settings.epochs` epochs, step boundaries and the warm-up's end are epochs times it."""
    check_settings(settings)
    if _needs_steps_per_epoch(settings) and steps_per_epoch < 1:
        raise ValueError(f"train.lr_schedule={settings.lr_schedule!r} with train.warmup_epochs="
                         f"{settings.warmup_epochs} counts epochs: give the steps per epoch")
    warmup = int(round(settings.warmup_epochs * steps_per_epoch))
    if settings.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, settings.lr, warmup, settings.epochs * steps_per_epoch, 0.0)
    if settings.lr_schedule == "step":
        # The first step of the epoch after each boundary (count = epoch * steps_per_epoch) has the lower rate.
        boundaries = jnp.asarray([round(epoch * steps_per_epoch) for epoch in settings.lr_steps], jnp.int32)
        schedule = lambda step: settings.lr * STEP_DECAY ** jnp.sum(step >= boundaries)
    elif settings.lr_decay:
        schedule = lambda step: settings.lr / (1.0 + settings.lr_decay * step)
    else:
        schedule = optax.constant_schedule(settings.lr)
    if not warmup:
        return schedule
    # A linear ramp from 0 to the schedule's value at the warm-up's end; later steps follow the schedule unchanged.
    return lambda step: jnp.where(step < warmup, schedule(warmup) * step / warmup, schedule(step))


def decayed_kernels(params) -> Any:
    """The weight decay's mask: True for convolution and dense kernels (ndim > 1), False for biases and
    normalisation scales and offsets."""
    return jax.tree_util.tree_map(lambda p: p.ndim > 1, params)


def make_optimizer(settings: TrainSettings, steps_per_epoch: int = 0) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(settings, steps_per_epoch)
    if settings.optimizer == "sgd":
        tx = optax.sgd(schedule, momentum=settings.momentum or None, nesterov=settings.nesterov)
    elif settings.optimizer == "adam":
        tx = optax.adam(schedule)
    else:
        tx = optax.adadelta(schedule, rho=settings.rho, eps=1e-7)
    if settings.weight_decay:  # as SGD's weight_decay in the ImageNet recipe: wd * w added before momentum
        tx = optax.chain(optax.add_decayed_weights(settings.weight_decay, decayed_kernels), tx)
    return tx


def init_state(model: nn.Module, sample_input: jax.Array, tx: optax.GradientTransformation,
               rng: jax.Array) -> TrainState:
    variables = model.init({"params": rng, "dropout": rng}, sample_input, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))
