"""Stored data to model input: the one uint8 -> float32 conversion, and the augmentation of image batches."""

import math

import jax
import jax.numpy as jnp
import numpy as np


def to_model_input(x: jax.Array, standardize: bool) -> jax.Array:
    """uint8 -> float32 in [0, 1] (or standardised per example); features are already float32."""
    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 255.0
    else:
        x = x.astype(jnp.float32)
    if standardize:
        axes = tuple(range(1, x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        std = jnp.maximum(jnp.std(x, axis=axes, keepdims=True), 1.0 / math.sqrt(np.prod(x.shape[1:])))
        x = (x - mean) / std
    return x


def augment(images: jax.Array, rng: jax.Array, shift_fraction: float) -> jax.Array:
    """Random shift (edge-replicating, like Keras' fill_mode='nearest') and horizontal flip of NHWC images."""
    n, h, w, _ = images.shape
    dy_max, dx_max = int(round(h * shift_fraction)), int(round(w * shift_fraction))
    shift_rng, flip_rng = jax.random.split(rng)
    padded = jnp.pad(images, ((0, 0), (dy_max, dy_max), (dx_max, dx_max), (0, 0)), mode="edge")
    offsets = jax.random.randint(shift_rng, (n, 2), 0, jnp.array([2 * dy_max + 1, 2 * dx_max + 1]))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    shifted = jax.vmap(crop)(padded, offsets)
    flip = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
    return jnp.where(flip, shifted[:, :, ::-1, :], shifted)  # axis 2 is width: a true horizontal flip
