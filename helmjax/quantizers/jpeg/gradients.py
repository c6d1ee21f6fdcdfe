"""Gradients for the JPEG codec: a smooth float twin of the pipeline and the straight-through pairing.

round() has zero gradient almost everywhere, so the exact integer pipeline alone teaches nothing. Here the
same steps run in float (float colour and DCT, a chosen soft rounding); `exact_straight_through` returns
the exact pixels forward and this twin's gradient backward, w.r.t. float images, quality and base tables.
The soft modes ("cubic", "sinusoidal") use the twin forward as well.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.quantizers.jpeg import libjpeg, pipeline
from helmjax.quantizers.jpeg.libjpeg import ceil_div


def straight_through(value, smooth):
    """`value` forward, the gradient of `smooth` backward."""
    return smooth + jax.lax.stop_gradient(value - smooth)


def float_table(base, quality, *, integer_steps: bool):
    """Differentiable table scaling. With `integer_steps` the forward value is libjpeg's integer table and
    the floors and the [1, 255] clamp pass gradients straight through; without, the scaling is smooth."""
    quality = jnp.asarray(quality)[..., None, None]
    base = jnp.asarray(base, quality.dtype)
    q = straight_through(jnp.clip(quality, 1.0, 100.0), quality)
    ratio = 5000.0 / jnp.maximum(q, 1.0)
    if integer_steps:
        q = straight_through(jnp.round(q), q)
        ratio = straight_through(jnp.floor(5000.0 / jnp.maximum(q, 1.0)), ratio)
    scale = jnp.where(q < 50, ratio, 200.0 - 2.0 * q)
    table = (base * scale + 50.0) / 100.0 if integer_steps else base * scale / 100.0
    if integer_steps:
        # At q = 100 the scale is 0 and the table no longer depends on the base: keep a 1% path so the
        # base tables' gradient does not vanish there (it changes no forward value).
        table = table + (base - jax.lax.stop_gradient(base)) / 100.0
        table = straight_through(jnp.floor(table), table)
    # A hard clamp would zero the quality gradient at q = 1 (every entry clamps to 255): pass it through.
    return straight_through(jnp.clip(table, 1.0, 255.0), table)


def float_tables(quality, luma_base, chroma_base, channels: int, *, integer_steps: bool):
    """`float_table` of each component (luma, then chroma for Cb and Cr)."""
    return libjpeg.per_component(float_table(luma_base, quality, integer_steps=integer_steps),
                                 float_table(chroma_base, quality, integer_steps=integer_steps), channels)


def _rgb_to_ycc_float(r, g, b):
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return y, cb, cr


def _ycc_to_rgb_float(y, cb, cr):
    cb, cr = cb - 128.0, cr - 128.0
    return [y + 1.402 * cr, y - 0.344136286 * cb - 0.714136286 * cr, y + 1.772 * cb]


def _downsample_float(plane, fx: int, fy: int, height: int, width: int):
    """jcsample.c's box average without its integer bias, padded to whole blocks like the exact one."""
    comp_h, comp_w = ceil_div(height, fy), ceil_div(width, fx)
    out_h, out_w = ceil_div(comp_h, 8) * 8, ceil_div(comp_w, 8) * 8
    if fx == 1 and fy == 1:
        return libjpeg.pad_edge(plane, out_h, out_w)
    n = plane.shape[0]
    padded = libjpeg.pad_edge(plane, comp_h * fy, out_w * fx)
    down = padded.reshape(n, comp_h, fy, out_w, fx).mean(axis=(2, 4))
    return libjpeg.pad_edge(down, out_h, out_w)


_DCT_MATRIX = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * i + 1) * k * np.pi / 16)
                         for i in range(8)] for k in range(8)], np.float32)


def _round_soft(x, kind: str):
    """Rounding for the float pipeline: forward value and gradient of each surrogate."""
    if kind == "identity":  # exact rounding forward, gradient 1 (straight-through)
        return straight_through(jnp.round(x), x)
    if kind == "cubic":  # Shin & Song 2017
        rounded = jax.lax.stop_gradient(jnp.round(x))
        return rounded + (x - rounded) ** 3
    if kind == "sinusoidal":  # Korus & Memon
        return x - jnp.sin(2 * jnp.pi * x) / (2 * jnp.pi)
    raise AssertionError(kind)


def float_codec(images, tables, subsampling: str, rounding: str):
    """The same pipeline in float: the differentiable surrogate (and the soft modes' forward pass)."""
    n, height, width, channels = images.shape
    matrix = jnp.asarray(_DCT_MATRIX, images.dtype)
    components = [images[..., 0]] if channels == 1 else _rgb_to_ycc_float(*(images[..., c] for c in range(3)))
    planes = []
    for plane, table, (fx, fy) in zip(components, tables, libjpeg.factors(channels, subsampling)):
        padded = _downsample_float(plane, fx, fy, height, width)
        blocks = libjpeg.to_blocks(padded - 128.0)
        coefs = jnp.einsum("vr,cr...,uc->vu...", matrix, blocks, matrix)
        table = jnp.moveaxis(table.astype(images.dtype), 0, -1)[..., None, None]
        coefs = _round_soft(coefs / table, rounding) * table
        samples = jnp.einsum("vr,vu...,uc->cr...", matrix, coefs, matrix) + 128.0
        comp = libjpeg.from_blocks(samples)[:, :ceil_div(height, fy), :ceil_div(width, fx)]
        planes.append(libjpeg.upsample(comp, fx, fy, height, width, exact=False))
    rgb = planes if len(planes) == 1 else _ycc_to_rgb_float(*planes)
    # Clamp forward, gradient straight through: a hard clamp would zero gradients at saturated pixels.
    return jnp.stack([straight_through(jnp.clip(v, 0.0, 255.0), v) for v in rgb], axis=-1)


def _exact_from_float(images, quality, luma_base, chroma_base, subsampling):
    """Exact pixels from float arguments (rounded to the integers libjpeg would be given)."""
    pixels = jnp.clip(jnp.round(images), 0, 255).astype(jnp.uint8)
    quality = jnp.round(quality).astype(jnp.int32)
    bases = [jnp.round(base).astype(jnp.int32) for base in (luma_base, chroma_base)]
    return pipeline.round_trip(pixels, quality, *bases, subsampling).astype(images.dtype)


def _surrogate(images, quality, luma_base, chroma_base, subsampling, surrogate):
    tables = float_tables(quality, luma_base, chroma_base, images.shape[-1], integer_steps=True)
    return float_codec(images, tables, subsampling, surrogate)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def exact_straight_through(images, quality, luma_base, chroma_base, subsampling, surrogate):
    """The exact codec's pixels; backward, the gradient of the float twin with `surrogate` rounding."""
    return _exact_from_float(images, quality, luma_base, chroma_base, subsampling)


def _st_fwd(images, quality, luma_base, chroma_base, subsampling, surrogate):
    out = _exact_from_float(images, quality, luma_base, chroma_base, subsampling)
    return out, (images, quality, luma_base, chroma_base)


def _st_bwd(subsampling, surrogate, residuals, cotangent):
    _, vjp = jax.vjp(lambda *a: _surrogate(*a, subsampling, surrogate), *residuals)
    return vjp(cotangent)


exact_straight_through.defvjp(_st_fwd, _st_bwd)
