"""What a run trains with: its settings, optimizer and learning-rate schedule, and the train state they update."""

import dataclasses
from typing import Any

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
    rho: float = 0.95  # adadelta
    batch_size: int = 128
    eval_batch_size: int = 1000  # at most; fewer for big items (pipeline.EVAL_VALUES)
    epochs: int = 200
    augment: bool = True  # random shift up to `shift_fraction` of H and W, and a horizontal flip
    shift_fraction: float = 0.1
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


OPTIMIZERS = ("sgd", "adam", "adadelta")


def learning_rate_schedule(settings: TrainSettings) -> optax.Schedule:
    if settings.lr_decay:
        return lambda step: settings.lr / (1.0 + settings.lr_decay * step)
    return optax.constant_schedule(settings.lr)


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(settings)
    if settings.optimizer == "sgd":
        return optax.sgd(schedule, momentum=settings.momentum or None, nesterov=settings.nesterov)
    if settings.optimizer == "adam":
        return optax.adam(schedule)
    if settings.optimizer == "adadelta":
        return optax.adadelta(schedule, rho=settings.rho, eps=1e-7)
    raise UserError(f"unknown optimizer {settings.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def init_state(model: nn.Module, sample_input: jax.Array, tx: optax.GradientTransformation,
               rng: jax.Array) -> TrainState:
    variables = model.init({"params": rng, "dropout": rng}, sample_input, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))
