"""Dropout that draws only the random bits it needs.

Flax's Dropout hashes one 32-bit random word per activation and turns it into a float; on CPU that counter-based
hashing cost as much as a convolution layer. When the keep probability is a multiple of 1/2^b for some b <= 8
(the paper's 0.5 is b = 1), each b-bit slice of a word is an exact Bernoulli draw, so one word serves 32 // b
activations. Other rates fall back to jax.random.bernoulli. Same contract as flax.linen.Dropout otherwise.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _bits_per_draw(keep: float) -> int:
    """The smallest b <= 8 with keep * 2^b an integer, or 0 when there is none."""
    for bits in range(1, 9):
        if abs(keep * 2 ** bits - round(keep * 2 ** bits)) < 1e-9:
            return bits
    return 0


def bernoulli_mask(key: jax.Array, keep: float, shape) -> jax.Array:
    """A boolean array of `shape`, each entry True with probability `keep`, independently."""
    bits = _bits_per_draw(keep)
    if not bits:
        return jax.random.bernoulli(key, keep, shape)
    per_word = 32 // bits
    n = int(np.prod(shape))
    words = jax.random.bits(key, (math.ceil(n / per_word),), jnp.uint32)
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * bits
    draws = (words[:, None] >> shifts) & jnp.uint32(2 ** bits - 1)
    return (draws.reshape(-1)[:n] < round(keep * 2 ** bits)).reshape(shape)


class Dropout(nn.Module):
    """Zeroes each activation with probability `rate` in training and scales the rest by 1 / (1 - rate)."""
    rate: float
    deterministic: bool = False
    rng_collection: str = "dropout"

    @nn.compact
    def __call__(self, x):
        if self.deterministic or self.rate == 0.0:
            return x
        if self.rate == 1.0:
            return jnp.zeros_like(x)
        keep = 1.0 - self.rate
        mask = bernoulli_mask(self.make_rng(self.rng_collection), keep, x.shape)
        return jnp.where(mask, x / keep, jnp.zeros_like(x))
