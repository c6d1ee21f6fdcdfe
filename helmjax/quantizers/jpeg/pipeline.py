"""The exact JPEG round trip, written once as a chain of stages, run in one graph or one jit per stage.

Between stages flow uint8 or int32 arrays. `encode` (colour, downsampling, blocks, forward DCT) and `decode`
(tables, quantization, inverse DCT, upsampling, colour back) take a `Stages`: `INLINE` (the stage
functions themselves, composed into the caller's trace) or `STAGED` (the same functions, each its own jit).

Why staged: inside one jit, XLA (CPU) fuses each stage into its consumers and recomputes it once per
consumer element (the butterflies read every sample 8 times, so the colour conversion ran 8x, through
strided reads); optimization_barrier does not stop it, as XLA drops the barriers before fusion. One jit
per stage keeps every intermediate materialised: 2-3x faster at 256x256. It needs concrete arrays, so
traced callers (user jit, vmap, grad) get `INLINE`; so do small batches, which are compile-bound and use
the matmul DCTs: one compilation instead of ten.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.quantizers.jpeg import libjpeg
from helmjax.quantizers.jpeg.libjpeg import ceil_div


def groups(num_components: int, subsampling: str):
    """Components that share a plane size, as (component indices, factors): they run as one batch, so
    Cb and Cr (and, in 4:4:4, all three) go through each step together in one bigger, cheaper op."""
    factors = libjpeg.factors(num_components, subsampling)
    if num_components == 1:
        return [([0], factors[0])]
    if factors[1] == (1, 1):
        return [([0, 1, 2], (1, 1))]
    return [([0], (1, 1)), ([1, 2], factors[1])]


def run_in_stages(shape) -> bool:
    """Whether a concrete batch of `shape` (N, H, W, ...) is big enough to be worth one jit per stage."""
    n, height, width = shape[:3]
    return n * ceil_div(height, 8) * ceil_div(width, 8) >= libjpeg.DOT_DCT_MAX_BLOCKS


# ----------------------------------------------------------------------------------------------------------
# The stages
# ----------------------------------------------------------------------------------------------------------

def component_tables(quality, luma_base, chroma_base, *, channels: int):
    """The scaled int32 (N, 8, 8) table of each component at `quality` (N,): the one place tables are built."""
    return libjpeg.per_component(libjpeg.scaled_table(luma_base, quality),
                                 libjpeg.scaled_table(chroma_base, quality), channels)


def group_table(tables, indices):
    return jnp.concatenate([tables[i] for i in indices]) if len(indices) > 1 else tables[indices[0]]


def colour_planes(images):
    """uint8 (N,H,W,C) -> uint8 (C, N, H, W) component planes (Y, Cb, Cr or grey)."""
    if images.shape[-1] == 1:
        return jnp.moveaxis(images, -1, 0)
    rgb = (images[..., c].astype(jnp.int32) for c in range(3))
    return jnp.stack(libjpeg.rgb_to_ycc_exact(*rgb)).astype(jnp.uint8)


def group_plane(planes, indices, fx: int, fy: int):
    """Components `indices` (consecutive) of uint8 (C, N, H, W) planes, as one uint8 (kN, 8Hb, 8Wb) batch:
    downsampled and padded to whole blocks."""
    height, width = planes.shape[2:]
    plane = planes[indices[0]:indices[-1] + 1].reshape((-1, height, width)).astype(jnp.int32)
    return libjpeg.downsample_exact(plane, fx, fy, height, width).astype(jnp.uint8)


def flat_blocks(padded):
    """uint8 (kN, 8Hb, 8Wb) -> uint8 (8c, 8r, M), M = kN * Hb * Wb. The flat block axis lets the DCT
    stages compile once for all image shapes with the same number of blocks."""
    return libjpeg.to_blocks(padded).reshape(8, 8, -1)


def fdct_blocks(blocks):
    """uint8 (8c, 8r, M) -> int32 (8v, 8u, M) forward-DCT output (8x the DCT)."""
    return libjpeg.fdct_exact(blocks.astype(jnp.int32) - 128)


def dequantize(coefs, table):
    """Quantized-then-dequantized (8v, 8u, M) coefficients; `table` is int32 (kN, 8, 8), one per image."""
    blocks = coefs.reshape(8, 8, table.shape[0], -1)
    table = jnp.moveaxis(table, 0, -1)[..., None]  # (8, 8, kN, 1)
    return (libjpeg.quantize_exact(blocks, table) * table).reshape(coefs.shape)


def idct_samples(dequantized):
    """(8v, 8u, M) -> uint8 (8c, 8r, M) samples. jdmaster.c range limit: the SIMD IDCT saturates, i.e.
    clamps to [0, 255] after + 128."""
    return jnp.clip(libjpeg.idct_exact(dequantized) + 128, 0, 255).astype(jnp.uint8)


def crop_blocks(blocks, rows: int, cols: int):
    """uint8 (8c, 8r, M) -> uint8 (kN, rows, cols) component planes."""
    return libjpeg.from_blocks(blocks.reshape(8, 8, -1, ceil_div(rows, 8), ceil_div(cols, 8)))[:, :rows, :cols]


def upsample_group(comp, fx: int, fy: int, height: int, width: int):
    """uint8 cropped component planes -> uint8 (kN, height, width)."""
    return libjpeg.upsample(comp.astype(jnp.int32), fx, fy, height, width, exact=True).astype(jnp.uint8)


def merge_groups(planes_by_group, channels: int, subsampling: str):
    """Full-size uint8 planes per group -> uint8 (N, H, W, C) pixels (colour conversion back to RGB)."""
    planes = [None] * channels
    for up, (indices, _) in zip(planes_by_group, groups(channels, subsampling)):
        n = up.shape[0] // len(indices)
        for j, i in enumerate(indices):
            planes[i] = up[j * n:(j + 1) * n]
    if channels == 1:
        return planes[0][..., None]
    planes = [p.astype(jnp.int32) for p in planes]
    return jnp.stack(libjpeg.ycc_to_rgb_exact(*planes), axis=-1).astype(jnp.uint8)


class Stages(NamedTuple):
    """The pipeline's steps; `encode` and `decode` call them with their static arguments by keyword."""
    colour: Callable = colour_planes
    group_plane: Callable = group_plane
    flat_blocks: Callable = flat_blocks
    fdct: Callable = fdct_blocks
    tables: Callable = component_tables
    dequantize: Callable = dequantize
    idct: Callable = idct_samples
    crop_blocks: Callable = crop_blocks
    upsample: Callable = upsample_group
    merge: Callable = merge_groups


_STATIC_ARGNAMES = {"group_plane": ("indices", "fx", "fy"), "tables": ("channels",),
                    "crop_blocks": ("rows", "cols"), "upsample": ("fx", "fy", "height", "width"),
                    "merge": ("channels", "subsampling")}


def jit_each(stages: Stages) -> Stages:
    """The same stages, each its own jitted function."""
    return Stages(*(jax.jit(fn, static_argnames=_STATIC_ARGNAMES.get(name, ()))
                    for name, fn in zip(Stages._fields, stages)))


INLINE = Stages()
STAGED = jit_each(INLINE)


# ----------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------

def encode(images, subsampling: str, stages: Stages = INLINE):
    """uint8 (N,H,W,C) -> per component group: int32 (8v, 8u, M) forward-DCT output."""
    planes = stages.colour(images)
    return [stages.fdct(stages.flat_blocks(stages.group_plane(planes, indices=tuple(indices), fx=fx, fy=fy)))
            for indices, (fx, fy) in groups(images.shape[-1], subsampling)]


def decode(dct, quality, luma_base, chroma_base, height: int, width: int, channels: int, subsampling: str,
           stages: Stages = INLINE):
    """Quantize at `quality` (N,) with the scaled base tables, dequantize, inverse DCT, upsample and
    colour-convert: uint8 (N, height, width, channels)."""
    tables = stages.tables(quality, luma_base, chroma_base, channels=channels)
    planes = []
    for coefs, (indices, (fx, fy)) in zip(dct, groups(channels, subsampling)):
        samples = stages.idct(stages.dequantize(coefs, group_table(tables, indices)))
        comp = stages.crop_blocks(samples, rows=ceil_div(height, fy), cols=ceil_div(width, fx))
        if (fx, fy) != (1, 1):
            comp = stages.upsample(comp, fx=fx, fy=fy, height=height, width=width)
        planes.append(comp)
    return stages.merge(planes, channels=channels, subsampling=subsampling)


def round_trip(images, quality, luma_base, chroma_base, subsampling: str, stages: Stages = INLINE):
    """uint8 (N,H,W,C) at `quality` (N,) -> uint8 (N,H,W,C): what libjpeg-turbo encodes and decodes."""
    n, height, width, channels = images.shape
    return decode(encode(images, subsampling, stages), quality, luma_base, chroma_base, height, width, channels,
                  subsampling, stages)


def round_trips(images, qualities, luma_base, chroma_base, subsampling: str, stages: Stages = INLINE):
    """uint8 (N,H,W,C) at each of `qualities` (Q,) -> uint8 (Q,N,H,W,C); the encoding is shared."""
    n, height, width, channels = images.shape
    dct = encode(images, subsampling, stages)

    def at(quality):
        return decode(dct, jnp.broadcast_to(quality, (n,)), luma_base, chroma_base, height, width, channels,
                      subsampling, stages)

    if stages is STAGED:  # concrete qualities: one staged decode each
        return jnp.stack([at(q) for q in np.asarray(qualities)])
    return jax.lax.map(at, qualities)  # traced: one decode in the graph, looped by XLA
