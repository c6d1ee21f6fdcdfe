"""JPEG in JAX: pixel-identical to Pillow/libjpeg-turbo, jit-compiled, batched and differentiable.

`compress(images, quality)` runs the lossy half of a baseline JPEG round trip (colour conversion, chroma
subsampling, 8x8 DCT, quantization, and the decoder's inverse steps) with the same integer arithmetic as
libjpeg-turbo's defaults, so `mode="exact"` returns the very pixels Pillow's `save(..., "JPEG")` +
`Image.open` gives. Entropy coding is lossless and stays with libjpeg: `file_bits` asks Pillow for sizes.

The package: `libjpeg` (the integer arithmetic of each step), `pipeline` (the steps in order, run in one
graph or one jit per stage), `gradients` (the float twin whose gradient the exact forward pass borrows),
and here the API, which checks arguments and picks the way to run.

Speed on CPU: called eagerly (as `quantize_dataset` does), big batches run one jit per stage (see
`pipeline`); inside a user's jit the same stages form one graph, which is exact but slower. Small batches
use int32 matrix products for the DCTs, which compile much faster than the butterflies.
"""

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.quantizers.jpeg import gradients, pipeline
from helmjax.quantizers.jpeg.libjpeg import quality_scale, scaled_table  # noqa: F401 (public)
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE  # Annex K, natural order
from helmjax.quantizers.registry import Quantized, register

# The libjpeg-turbo version the exactness tests were run against (Pillow 13.0.0 bundles it).
REFERENCE_LIBJPEG_TURBO = "3.2.0"

SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
MODES = ("exact", "cubic", "sinusoidal")
SURROGATES = ("identity", "cubic", "sinusoidal")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_array(x):
    """Concrete inputs become numpy arrays (so range checks also run inside a user's jit); tracers stay."""
    return x if isinstance(x, jax.core.Tracer) else np.asarray(x)


def _all_integer(images, quality, luma_base, chroma_base) -> bool:
    """uint8 pixels and integer quality and tables: the exact integer pipeline alone, nothing to differentiate."""
    return (images.dtype == jnp.uint8 and jnp.issubdtype(quality.dtype, jnp.integer)
            and jnp.issubdtype(luma_base.dtype, jnp.integer) and jnp.issubdtype(chroma_base.dtype, jnp.integer))


def _check_subsampling(subsampling: str) -> None:
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling: expected one of {', '.join(SUBSAMPLINGS)}, got {subsampling!r}")


def _check_images(images):
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images: expected (N,H,W), (N,H,W,1) or (N,H,W,3), got shape {images.shape}")
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"images: expected 1 (grey) or 3 (RGB) channels, got {images.shape[-1]} "
                         f"in shape {images.shape}")
    if min(images.shape[1:3]) < 1:
        raise ValueError(f"images: height and width must be >= 1, got shape {images.shape}")
    if not (images.dtype == jnp.uint8 or jnp.issubdtype(images.dtype, jnp.floating)):
        raise ValueError(f"images: expected uint8 or float pixels in [0, 255], got dtype {images.dtype}")
    return images


def _check_table(table, name: str, exact: bool):
    if table is None:
        return None
    table = _as_array(table)
    if table.shape != (8, 8):
        raise ValueError(f"{name}: expected an 8x8 table in natural (row-major) order, got shape {table.shape}")
    if not (jnp.issubdtype(table.dtype, jnp.integer) or jnp.issubdtype(table.dtype, jnp.floating)):
        raise ValueError(f"{name}: expected a numeric table, got dtype {table.dtype}")
    if exact and _is_concrete(table):
        values = np.asarray(table)
        if values.min() < 1 or values.max() > 255 or not np.all(values == np.round(values)):
            raise ValueError(f"{name}: exact mode needs integer entries in [1, 255], "
                             f"got range [{values.min()}, {values.max()}]")
    return table


def _check_quality(quality, n: int, exact: bool):
    quality = _as_array(quality)
    if quality.ndim > 1 or (quality.ndim == 1 and quality.shape[0] != n):
        raise ValueError(f"quality: expected a scalar or one per image ({n},), got shape {quality.shape}")
    if not (jnp.issubdtype(quality.dtype, jnp.integer) or jnp.issubdtype(quality.dtype, jnp.floating)):
        raise ValueError(f"quality: expected a number, got dtype {quality.dtype}")
    if exact and _is_concrete(quality):
        values = np.asarray(quality)
        if values.min() < 1 or values.max() > 100:
            raise ValueError(f"quality: exact mode needs values in [1, 100], got {values.min()}..{values.max()}")
    return jnp.broadcast_to(jnp.asarray(quality), (n,))


def compress(images, quality, *, subsampling: str = "4:2:0", mode: str = "exact",
             luma_table=None, chroma_table=None, surrogate: str = "identity"):
    """JPEG round trip of a batch: what Pillow's save(JPEG, quality) + Image.open returns.

    images: (N,H,W,3) RGB, or (N,H,W) / (N,H,W,1) grey; uint8 or float in [0, 255]. Result has the input's
      shape; uint8 for uint8 input, float32 (exact integer values in exact mode) for float input.
    quality: scalar or (N,), traced: a new quality does not recompile. Clamped to [1, 100] when traced.
    subsampling: "4:4:4", "4:2:2" or "4:2:0" (Pillow's default for RGB).
    mode: "exact" (pixel-identical to libjpeg-turbo; gradients via `surrogate`), "cubic" or "sinusoidal"
      (soft rounding in the forward pass too, smooth table scaling).
    luma_table, chroma_table: optional 8x8 base tables (natural order) replacing Annex K; like libjpeg's
      jpeg_add_quant_table (and Pillow's qtables=) they are scaled by quality, so quality 50 uses them as is.
    surrogate: rounding whose gradient the exact mode uses backward: "identity" (straight-through),
      "cubic" or "sinusoidal".

    On CPU, call it eagerly on big uint8 batches for speed: it then runs stage by stage (2-3x faster at
    256x256 than the same stages inside a jit, where XLA fuses them into each other).
    """
    _check_subsampling(subsampling)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate: expected one of {', '.join(SURROGATES)}, got {surrogate!r}")
    original = jnp.asarray(images) if not isinstance(images, jax.Array) else images
    batch = _check_images(original)
    exact = mode == "exact"
    quality = _check_quality(quality, batch.shape[0], exact)
    luma = _check_table(luma_table, "luma_table", exact)
    chroma = _check_table(chroma_table, "chroma_table", exact)
    luma = LUMA_TABLE if luma is None else luma
    chroma = CHROMA_TABLE if chroma is None else chroma
    concrete = all(_is_concrete(x) for x in (batch, quality, luma, chroma))
    if exact and _all_integer(batch, quality, luma, chroma) and concrete and pipeline.run_in_stages(batch.shape):
        out = pipeline.round_trip(batch, quality, luma, chroma, subsampling, pipeline.STAGED)
    else:
        out = _compress_jit(batch, quality, luma, chroma, subsampling=subsampling, mode=mode, surrogate=surrogate)
    return out.reshape(original.shape)


@functools.partial(jax.jit, static_argnames=("subsampling", "mode", "surrogate"))
def _compress_jit(images, quality, luma_base, chroma_base, *, subsampling, mode, surrogate):
    if mode == "exact" and _all_integer(images, quality, luma_base, chroma_base):
        return pipeline.round_trip(images, quality, luma_base, chroma_base, subsampling)
    dtype = images.dtype if jnp.issubdtype(images.dtype, jnp.floating) else jnp.float32
    pixels, quality, luma_base, chroma_base = (x.astype(dtype) for x in (images, quality, luma_base, chroma_base))
    if mode == "exact":
        out = gradients.exact_straight_through(pixels, quality, luma_base, chroma_base, subsampling, surrogate)
    else:
        tables = gradients.float_tables(quality, luma_base, chroma_base, images.shape[-1], integer_steps=False)
        out = gradients.float_codec(pixels, tables, subsampling, mode)
    return out.astype(jnp.uint8) if images.dtype == jnp.uint8 else out


_compress_qualities_jit = jax.jit(pipeline.round_trips, static_argnames=("subsampling",))


def compress_qualities(images, qualities: Sequence[int], *, subsampling: str = "4:2:0",
                       luma_table=None, chroma_table=None):
    """Exact JPEG of one uint8 batch at many qualities in one jitted call: (Q, *images.shape) uint8.

    The colour conversion and forward DCT are done once and shared by all qualities.
    """
    _check_subsampling(subsampling)
    original = jnp.asarray(images)
    batch = _check_images(original)
    if batch.dtype != jnp.uint8:
        raise ValueError(f"images: compress_qualities needs uint8 pixels, got dtype {batch.dtype}")
    qualities = jnp.asarray(qualities)
    if qualities.ndim != 1 or not jnp.issubdtype(qualities.dtype, jnp.integer):
        raise ValueError(f"qualities: expected a 1-D integer array, got shape {qualities.shape} {qualities.dtype}")
    if _is_concrete(qualities) and (np.min(qualities) < 1 or np.max(qualities) > 100):
        raise ValueError(f"qualities: values must lie in [1, 100], got {np.asarray(qualities).tolist()}")
    luma = _check_table(luma_table, "luma_table", True)
    chroma = _check_table(chroma_table, "chroma_table", True)
    luma = jnp.asarray(LUMA_TABLE if luma is None else luma, jnp.int32)
    chroma = jnp.asarray(CHROMA_TABLE if chroma is None else chroma, jnp.int32)
    if all(_is_concrete(x) for x in (batch, qualities, luma, chroma)) and pipeline.run_in_stages(batch.shape):
        out = pipeline.round_trips(batch, qualities, luma, chroma, subsampling, pipeline.STAGED)
    else:
        out = _compress_qualities_jit(batch, qualities.astype(jnp.int32), luma, chroma, subsampling=subsampling)
    return out.reshape((len(qualities),) + original.shape)


def quantize_dataset(images: np.ndarray, qualities: Sequence[int], *, subsampling: str = "4:2:0",
                     chunk: int = 1024) -> np.ndarray:
    """A whole uint8 dataset at many qualities -> (Q, N, ...) uint8 numpy, in fixed-size chunks.

    The last chunk is padded, so one compilation serves every chunk (and every quality list of that length).
    """
    images = np.asarray(images)
    qualities = np.asarray(qualities, np.int32)
    out = np.empty((len(qualities),) + images.shape, np.uint8)
    chunk = max(1, min(chunk, len(images)))
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk]
        size = len(part)
        if size < chunk:
            part = np.concatenate([part, np.repeat(part[-1:], chunk - size, axis=0)])
        out[:, start:start + size] = np.asarray(compress_qualities(part, qualities, subsampling=subsampling))[:, :size]
    return out


def file_bits(images, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """True JPEG file size in bits of each uint8 image, from Pillow's encoder (entropy coding is lossless)."""
    from helmjax.quantizers import pillow_jpeg
    return pillow_jpeg.file_bits(np.asarray(images), quality, subsampling)


def bits_per_pixel(images, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """File bits per pixel of each image (N,)."""
    images = np.asarray(images)
    return file_bits(images, quality, subsampling) / float(images.shape[1] * images.shape[2])


def _registry_compress(images: np.ndarray, quality: int, subsampling: str = "4:2:0",
                       chunk: int = 256) -> Quantized:
    """Registry entry `jax_jpeg`: exact pixels from JAX, file bits from Pillow."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images: jax_jpeg needs uint8 images, got {images.dtype}; convert with np.uint8 first")
    pixels = quantize_dataset(images, [quality], subsampling=subsampling, chunk=chunk)[0]
    from helmjax.quantizers import pillow_jpeg
    return Quantized(pixels, *pillow_jpeg.coded_bits(images, quality, subsampling))


from helmjax.quantizers import pillow_jpeg  # noqa: E402  (its step and codec version are this quantizer's too)

register("jax_jpeg", _registry_compress, modality="image", level_name="quality", level_range=(1, 100),
         label="JPEG quality", prefix="q", step=pillow_jpeg.quantization_step,
         version=f"1 (file bits: {pillow_jpeg.LIBRARY})",
         description="JPEG in JAX, pixel-identical to Pillow/libjpeg-turbo (runs on the accelerator)")
