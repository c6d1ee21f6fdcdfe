"""The train and evaluation steps of one run on one gathered batch: pure functions, jitted by the trainer."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from helmjax.training.inputs import augment, center_crop, random_resized_crop, to_model_input
from helmjax.training.micro_batches import micro_batched
from helmjax.training.recipe import TrainSettings, TrainState


def apply_model(model: nn.Module, params, batch_stats, x, train: bool, rng=None):
    """(logits, batch statistics after the call): updated in training, as they were otherwise."""
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    if not train:  # logits in float32 whatever the layers compute in (train.compute_dtype): no-op for float32
        return model.apply(variables, x, train=False).astype(jnp.float32), batch_stats
    logits, updates = model.apply(variables, x, train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
    return logits.astype(jnp.float32), updates.get("batch_stats", batch_stats)


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, settings: TrainSettings,
                    is_image: bool, slices_for: Callable[[jax.Array], int]) -> Callable:
    """(state, x, y, rng) -> (state, metrics): one optimizer update on a gathered batch; metrics are sums.

    `slices_for(x)` says how many gradient slices the batch is cut into (a performance choice, see
    `micro_batches`); the loss is the same function either way.
    """

    def step(state: TrainState, x, y, rng):
        augment_rng, dropout_rng = jax.random.split(rng)
        if is_image and settings.augment:
            if settings.augment_mode == "random_resized_crop":
                x = random_resized_crop(x, augment_rng, (settings.crop_size,) * 2 if settings.crop_size else
                                        x.shape[1:3])
            else:
                x = augment(x, augment_rng, settings.shift_fraction)
        if is_image:
            x = center_crop(x, settings.crop_size)  # as evaluated, where the augmentation left the stored size
        x = to_model_input(x, settings.standardize)

        def loss_fn(params, batch, dropout_rng):
            x, y = batch
            logits, batch_stats = apply_model(model, params, state.batch_stats, x, True, dropout_rng)
            losses = training_losses(logits, y, settings.label_smoothing)
            metrics = {"loss_sum": jnp.sum(losses), "correct": jnp.sum(jnp.argmax(logits, -1) == y),
                       "count": jnp.asarray(y.shape[0], jnp.int32)}
            return jnp.mean(losses), (metrics, batch_stats)

        grad_fn = micro_batched(jax.grad(loss_fn, has_aux=True), slices_for(x))
        grads, (metrics, batch_stats) = grad_fn(state.params, (x, y), dropout_rng)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

    return step


def make_eval_step(model: nn.Module, settings: TrainSettings, top5: bool = False) -> Callable:
    """(state, x, y, mask) -> (loss_sum, correct per example) on a gathered batch; padded rows are masked. With
    `top5`, a third output: per example whether the label is among the 5 highest logits (None with 5 classes or
    fewer, where every label is). Images are center-cropped to `settings.crop_size`; the loss is unsmoothed."""

    def step(state: TrainState, x, y, mask):
        x = center_crop(x, settings.crop_size) if settings.crop_size else x
        logits, _ = apply_model(model, state.params, state.batch_stats, to_model_input(x, settings.standardize),
                                False)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = (jnp.argmax(logits, -1) == y) & mask
        if not top5:
            return jnp.sum(jnp.where(mask, losses, 0.0)), correct
        top5_correct = None if logits.shape[-1] <= 5 else \
            jnp.any(jax.lax.top_k(logits, 5)[1] == y[:, None], axis=-1) & mask
        return jnp.sum(jnp.where(mask, losses, 0.0)), correct, top5_correct

    return step


def training_losses(logits: jax.Array, y: jax.Array, label_smoothing: float) -> jax.Array:
    """Per-example cross-entropy of the training loss: against one-hot labels, or labels smoothed by
    `label_smoothing` (the one-hot target mixed with the uniform distribution over classes)."""
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)
    targets = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)
