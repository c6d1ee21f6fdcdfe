"""Stored data to model input: the one uint8 -> float32 conversion, and the augmentation and cropping of image
batches (on the device, drawn from the step's key)."""

import math
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.errors import UserError


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

    return _flip(jax.vmap(crop)(padded, offsets), flip_rng)


def _flip(images: jax.Array, rng: jax.Array) -> jax.Array:
    """Each image flipped horizontally (axis 2 is width) with probability 1/2."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1, :], images)


def center_crop(images: jax.Array, size: int) -> jax.Array:
    """The central `size` x `size` window of NHWC images (offsets rounded down), as they are when `size` is 0 or
    their size: the evaluation view of images stored already resized (resize, then center crop)."""
    n, h, w, _ = images.shape
    if not size or (h, w) == (size, size):
        return images
    if size > h or size > w:
        raise UserError(f"train.crop_size={size} is larger than the stored {h}x{w} images; use at most {min(h, w)}")
    top, left = (h - size) // 2, (w - size) // 2
    return images[:, top:top + size, left:left + size, :]


def _crop_box(rng: jax.Array, h: int, w: int, scale: Tuple[float, float], ratio: Tuple[float, float],
              attempts: int) -> jax.Array:
    """(top, left, height, width) of one Inception-style crop, drawn as torchvision's RandomResizedCrop does: the
    first of `attempts` (area share, log aspect ratio) draws whose box fits, else the center box of the nearest
    allowed ratio."""
    area_rng, ratio_rng, top_rng, left_rng = jax.random.split(rng, 4)
    area = h * w * jax.random.uniform(area_rng, (attempts,), minval=scale[0], maxval=scale[1])
    aspect = jnp.exp(jax.random.uniform(ratio_rng, (attempts,), minval=math.log(ratio[0]), maxval=math.log(ratio[1])))
    bw, bh = jnp.round(jnp.sqrt(area * aspect)), jnp.round(jnp.sqrt(area / aspect))
    fits = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)
    top = jnp.floor(jax.random.uniform(top_rng, (attempts,)) * (h - bh + 1))
    left = jnp.floor(jax.random.uniform(left_rng, (attempts,)) * (w - bw + 1))
    first = jnp.argmax(fits)
    in_ratio = w / h
    fh, fw = ((round(w / ratio[0]), w) if in_ratio < ratio[0] else (h, round(h * ratio[1])) if in_ratio > ratio[1]
              else (h, w))
    fallback = jnp.asarray([(h - fh) // 2, (w - fw) // 2, fh, fw], jnp.float32)
    chosen = jnp.stack([top[first], left[first], bh[first], bw[first]])
    return jnp.where(jnp.any(fits), chosen, fallback)


def random_resized_crop(images: jax.Array, rng: jax.Array, size: Tuple[int, int],
                        scale: Tuple[float, float] = (0.08, 1.0), ratio: Tuple[float, float] = (3 / 4, 4 / 3),
                        attempts: int = 10) -> jax.Array:
    """The ImageNet training view of NHWC images: per image a random box (`_crop_box`: `scale` of the area, aspect
    ratio in `ratio`) resized to `size` (bilinear, antialiased when shrinking), then a random horizontal flip.
    Integer images stay integers (rounded), as a resize of stored images gives them."""
    n, h, w, c = images.shape
    box_rng, flip_rng = jax.random.split(rng)
    boxes = jax.vmap(lambda k: _crop_box(k, h, w, scale, ratio, attempts))(jax.random.split(box_rng, n))

    def resize(image, box):
        zoom = jnp.asarray(size, jnp.float32) / box[2:]
        return jax.image.scale_and_translate(image.astype(jnp.float32), (*size, c), (0, 1), zoom, -box[:2] * zoom,
                                             method="linear", antialias=True)

    out = jax.vmap(resize)(images, boxes)
    if jnp.issubdtype(images.dtype, jnp.integer):
        info = jnp.iinfo(images.dtype)
        out = jnp.clip(jnp.round(out), info.min, info.max)
    return _flip(out.astype(images.dtype), flip_rng)
