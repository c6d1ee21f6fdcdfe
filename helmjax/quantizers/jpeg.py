"""JPEG in JAX: pixel-identical to Pillow/libjpeg-turbo, jit-compiled, batched and differentiable.

`compress(images, quality)` runs the lossy half of a baseline JPEG round trip (colour conversion, chroma
subsampling, 8x8 DCT, quantization, and the decoder's inverse steps) with the same integer arithmetic as
libjpeg-turbo's defaults, so `mode="exact"` returns the very pixels Pillow's `save(..., "JPEG")` +
`Image.open` gives. Entropy coding is lossless and stays with libjpeg: `file_bits` asks Pillow for sizes.

Gradients: the exact forward pass is paired with a smooth float surrogate of the same pipeline for the
backward pass (straight-through), so gradients w.r.t. float images, a float quality and the tables are
useful; `mode="cubic"` / `"sinusoidal"` put a soft rounding into the forward pass too.

Speed on CPU: called eagerly (as `quantize_dataset` does), big batches run as a chain of separately jitted
stages, since in one XLA graph the CPU compiler fuses each stage into its consumers and recomputes it
(see `_run_in_stages`); inside a user's jit the same stages form one graph, which is exact but slower.
Small batches use int32 matrix products for the DCTs, which compile much faster than the butterflies.

The libjpeg-turbo sources this follows: jccolor.c, jcsample.c, jcprepct.c, jfdctint.c, jcdctmgr.c,
jidctint.c, jdsample.c, jdcolor.c, jdmaster.c (range limiting).
"""

import functools
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE  # Annex K, natural order
from helmjax.quantizers.registry import Quantized, register

# The libjpeg-turbo version the exactness tests were run against (Pillow 13.0.0 bundles it).
REFERENCE_LIBJPEG_TURBO = "3.2.0"

SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
MODES = ("exact", "cubic", "sinusoidal")
SURROGATES = ("identity", "cubic", "sinusoidal")

# Chroma downsampling factors (horizontal, vertical) per subsampling; luma is never subsampled.
_CHROMA_FACTORS = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


def _fix(x: float, bits: int) -> int:
    return int(x * (1 << bits) + 0.5)


# jccolor.c / jdcolor.c: 16-bit fixed point.
_SCALEBITS = 16
_ONE_HALF = 1 << (_SCALEBITS - 1)
_CBCR_OFFSET = 128 << _SCALEBITS

# jfdctint.c / jidctint.c: CONST_BITS = 13.
_CONST_BITS = 13
_PASS1_BITS = 2
_F0_298 = _fix(0.298631336, 13)
_F0_390 = _fix(0.390180644, 13)
_F0_541 = _fix(0.541196100, 13)
_F0_765 = _fix(0.765366865, 13)
_F0_899 = _fix(0.899976223, 13)
_F1_175 = _fix(1.175875602, 13)
_F1_501 = _fix(1.501321110, 13)
_F1_847 = _fix(1.847759065, 13)
_F1_961 = _fix(1.961570560, 13)
_F2_053 = _fix(2.053119869, 13)
_F2_562 = _fix(2.562915447, 13)
_F3_072 = _fix(3.072711026, 13)
assert (_F0_298, _F3_072) == (2446, 25172)


# ----------------------------------------------------------------------------------------------------------
# Quantization tables (jcparam.c)
# ----------------------------------------------------------------------------------------------------------

def quality_scale(quality):
    """IJG quality -> percentage scale (jpeg_quality_scaling), integer maths on an int array."""
    quality = jnp.clip(quality, 1, 100)
    return jnp.where(quality < 50, 5000 // quality, 200 - 2 * quality)


def scaled_table(base, quality):
    """Integer table actually used at `quality` (jpeg_add_quant_table with force_baseline).

    `base` (8,8) int, `quality` int (...,) -> int32 (..., 8, 8).
    """
    scale = quality_scale(jnp.asarray(quality, jnp.int32))[..., None, None]
    return jnp.clip((jnp.asarray(base, jnp.int32) * scale + 50) // 100, 1, 255)


def _straight_through(value, smooth):
    """`value` forward, the gradient of `smooth` backward."""
    return smooth + jax.lax.stop_gradient(value - smooth)


def _float_table(base, quality, *, integer_steps: bool):
    """Differentiable table scaling. With `integer_steps` the forward value is libjpeg's integer table and
    the floors and the [1, 255] clamp pass gradients straight through; without, the scaling is smooth."""
    quality = jnp.asarray(quality)[..., None, None]
    base = jnp.asarray(base, quality.dtype)
    q = _straight_through(jnp.clip(quality, 1.0, 100.0), quality)
    ratio = 5000.0 / jnp.maximum(q, 1.0)
    if integer_steps:
        q = _straight_through(jnp.round(q), q)
        ratio = _straight_through(jnp.floor(5000.0 / jnp.maximum(q, 1.0)), ratio)
    scale = jnp.where(q < 50, ratio, 200.0 - 2.0 * q)
    table = (base * scale + 50.0) / 100.0 if integer_steps else base * scale / 100.0
    if integer_steps:
        # At q = 100 the scale is 0 and the table no longer depends on the base: keep a 1% path so the
        # base tables' gradient does not vanish there (it changes no forward value).
        table = table + (base - jax.lax.stop_gradient(base)) / 100.0
        table = _straight_through(jnp.floor(table), table)
    # A hard clamp would zero the quality gradient at q = 1 (every entry clamps to 255): pass it through.
    return _straight_through(jnp.clip(table, 1.0, 255.0), table)


# ----------------------------------------------------------------------------------------------------------
# Geometry: padding, blocks, down- and upsampling
# ----------------------------------------------------------------------------------------------------------

def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pad_edge(plane, rows: int, cols: int):
    """Replicates the last row/column to reach (rows, cols) (libjpeg's expand_right/bottom_edge)."""
    n, h, w = plane.shape
    if rows == h and cols == w:
        return plane
    return jnp.pad(plane, ((0, 0), (0, rows - h), (0, cols - w)), mode="edge")


def _to_blocks(plane):
    """(N, 8Hb, 8Wb) -> (8 cols, 8 rows, N, Hb, Wb): the butterflies then work on whole contiguous planes."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(4, 2, 0, 1, 3)


def _from_blocks(blocks):
    c, r, n, hb, wb = blocks.shape
    return blocks.transpose(2, 3, 1, 4, 0).reshape(n, hb * 8, wb * 8)


def _downsample_exact(plane, fx: int, fy: int, height: int, width: int):
    """jcsample.c h2v2/h2v1 on a full-size plane: returns the component padded to whole blocks.

    The full plane is edge-padded to (fy * rows, fx * width_in_blocks * 8) first, box-averaged with
    libjpeg's alternating bias, then (jcprepct.c) padded at the bottom by repeating the last output row.
    """
    comp_h, comp_w = _ceil_div(height, fy), _ceil_div(width, fx)
    out_h, out_w = _ceil_div(comp_h, 8) * 8, _ceil_div(comp_w, 8) * 8
    if fx == 1 and fy == 1:
        return _pad_edge(plane, out_h, out_w)
    n = plane.shape[0]
    padded = _pad_edge(plane, comp_h * fy, out_w * fx)
    summed = padded.reshape(n, comp_h, fy, out_w, fx).sum(axis=(2, 4))
    col = jnp.arange(out_w, dtype=jnp.int32)
    if fy == 2:  # h2v2: bias 1, 2, 1, 2, ... then >> 2
        down = (summed + 1 + (col & 1)) >> 2
    else:  # h2v1: bias 0, 1, 0, 1, ... then >> 1
        down = (summed + (col & 1)) >> 1
    return _pad_edge(down, out_h, out_w)


def _downsample_float(plane, fx: int, fy: int, height: int, width: int):
    comp_h, comp_w = _ceil_div(height, fy), _ceil_div(width, fx)
    out_h, out_w = _ceil_div(comp_h, 8) * 8, _ceil_div(comp_w, 8) * 8
    if fx == 1 and fy == 1:
        return _pad_edge(plane, out_h, out_w)
    n = plane.shape[0]
    padded = _pad_edge(plane, comp_h * fy, out_w * fx)
    down = padded.reshape(n, comp_h, fy, out_w, fx).mean(axis=(2, 4))
    return _pad_edge(down, out_h, out_w)


def _shifted(x, step: int, axis: int):
    """`x` moved by `step` (+1: each sample takes its predecessor's value, -1: its successor's) along `axis`,
    the edge sample repeated. A pad with a crop plus a select: jnp.pad(mode="edge") along the minor axis
    made the upsampling ~8x slower on CPU."""
    size = x.shape[axis]
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (1, -1, 0) if step == 1 else (-1, 1, 0)
    moved = jax.lax.pad(x, jnp.zeros((), x.dtype), config)
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, axis)
    return jnp.where(index == (0 if step == 1 else size - 1), x, moved)


def _upsample(comp, fx: int, fy: int, height: int, width: int, *, exact: bool):
    """jdsample.c fancy (triangle) upsampling of a cropped chroma plane, then crop to (height, width).

    h2v2: 3:1 vertical then 3:1 horizontal weighting, + 8 / + 7 and >> 4; h2v1: (3 near + far + 1 / 2) >> 2.
    Edges repeat the outermost sample (what libjpeg's special-cased first/last columns and its context
    rows amount to). Planes narrower than 3 samples get plain replication, as in jinit_upsampler.
    Each output phase is an elementwise expression of shifted copies of the plane, so the whole
    upsampling is one fused loop plus an interleave.
    """
    if fx == 1 and fy == 1:
        return comp
    n, h, w = comp.shape
    if w <= 2:  # no fancy upsampling: replicate
        up = jnp.repeat(comp, fx, axis=2)
        if fy == 2:
            up = jnp.repeat(up, 2, axis=1)
        return up[:, :height, :width]
    rows = [3 * comp + _shifted(comp, step, axis=1) for step in (1, -1)] if fy == 2 else [comp]
    phases = [[3 * r + _shifted(r, step, axis=2) for step in (1, -1)] for r in rows]
    if fy == 2:
        rounding, shift, divisor = (8, 7), 4, 16.0
    else:
        rounding, shift, divisor = (1, 2), 2, 4.0
    if exact:
        phases = [[(p + k) >> shift for p, k in zip(row, rounding)] for row in phases]
    else:
        phases = [[p / divisor for p in row] for row in phases]
    out = jnp.stack([jnp.stack(row, axis=-1) for row in phases], axis=2)  # (N, h, fy, w, 2)
    return out.reshape(n, h * fy, w * 2)[:, :height, :width]


# ----------------------------------------------------------------------------------------------------------
# Integer DCT (jfdctint.c, jidctint.c) on planes: x[k] is the k-th sample of every block row/column at once
# ----------------------------------------------------------------------------------------------------------

def _descale(x, n: int):
    return (x + (1 << (n - 1))) >> n


def _fdct_pass(d, first: bool):
    """One 1-D pass of jpeg_fdct_islow over the list of 8 planes `d`; returns 8 planes."""
    tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
    tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
    tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
    tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    shift = _CONST_BITS - _PASS1_BITS if first else _CONST_BITS + _PASS1_BITS
    out = [None] * 8
    if first:
        out[0] = (tmp10 + tmp11) << _PASS1_BITS
        out[4] = (tmp10 - tmp11) << _PASS1_BITS
    else:
        out[0] = _descale(tmp10 + tmp11, _PASS1_BITS)
        out[4] = _descale(tmp10 - tmp11, _PASS1_BITS)
    z1 = (tmp12 + tmp13) * _F0_541
    out[2] = _descale(z1 + tmp13 * _F0_765, shift)
    out[6] = _descale(z1 - tmp12 * _F1_847, shift)
    z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
    z5 = (z3 + z4) * _F1_175
    tmp4, tmp5, tmp6, tmp7 = tmp4 * _F0_298, tmp5 * _F2_053, tmp6 * _F3_072, tmp7 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    out[7] = _descale(tmp4 + z1 + z3, shift)
    out[5] = _descale(tmp5 + z2 + z4, shift)
    out[3] = _descale(tmp6 + z2 + z3, shift)
    out[1] = _descale(tmp7 + z1 + z4, shift)
    return out


def _idct_pass(c, first: bool):
    """One 1-D pass of jpeg_idct_islow (dequantized input) over 8 planes; returns 8 planes."""
    shift = _CONST_BITS - _PASS1_BITS if first else _CONST_BITS + _PASS1_BITS + 3
    z1 = (c[2] + c[6]) * _F0_541
    tmp2 = z1 - c[6] * _F1_847
    tmp3 = z1 + c[2] * _F0_765
    tmp0 = (c[0] + c[4]) << _CONST_BITS
    tmp1 = (c[0] - c[4]) << _CONST_BITS
    tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
    tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
    t0, t1, t2, t3 = c[7], c[5], c[3], c[1]
    z1, z2, z3, z4 = t0 + t3, t1 + t2, t0 + t2, t1 + t3
    z5 = (z3 + z4) * _F1_175
    t0, t1, t2, t3 = t0 * _F0_298, t1 * _F2_053, t2 * _F3_072, t3 * _F1_501
    z1, z2 = z1 * -_F0_899, z2 * -_F2_562
    z3, z4 = z3 * -_F1_961 + z5, z4 * -_F0_390 + z5
    t0, t1, t2, t3 = t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4
    return [_descale(tmp10 + t3, shift), _descale(tmp11 + t2, shift), _descale(tmp12 + t1, shift),
            _descale(tmp13 + t0, shift), _descale(tmp13 - t0, shift), _descale(tmp12 - t1, shift),
            _descale(tmp11 - t2, shift), _descale(tmp10 - t3, shift)]


def _pass_matrix(one_pass, first: bool, shifts):
    """The integer matrix M of one butterfly pass: pass(x) == descale(M @ x, shifts) for every x, since
    the butterflies are exact integer linear maps followed by a rounding shift per output. Read off by
    running the pass on unit vectors scaled by 2^24, which the shifts divide exactly."""
    scale = 1 << 24
    columns = [one_pass([np.int64(scale if i == k else 0) for i in range(8)], first) for k in range(8)]
    scaled = np.array(columns, np.int64).T  # (8 outputs, 8 inputs)
    return (scaled >> (24 - np.asarray(shifts)[:, None])).astype(np.int32)


_FDCT_ROW_SHIFTS = (0, 11, 11, 11, 0, 11, 11, 11)  # out 0 and 4: no descale (<< PASS1_BITS is in M)
_FDCT_COL_SHIFTS = (2, 15, 15, 15, 2, 15, 15, 15)
_IDCT_COL_SHIFTS = (11,) * 8
_IDCT_ROW_SHIFTS = (18,) * 8
_FDCT_ROW_MATRIX = _pass_matrix(_fdct_pass, True, _FDCT_ROW_SHIFTS)
_FDCT_COL_MATRIX = _pass_matrix(_fdct_pass, False, _FDCT_COL_SHIFTS)
_IDCT_COL_MATRIX = _pass_matrix(_idct_pass, True, _IDCT_COL_SHIFTS)
_IDCT_ROW_MATRIX = _pass_matrix(_idct_pass, False, _IDCT_ROW_SHIFTS)

# Below this many 8x8 blocks the DCTs run as int32 matrix products: XLA compiles a dot ~30x faster than the
# butterflies' big fused loops, and small batches are compile-bound. Above it the butterflies win (2-3x
# faster to run on CPU). Both are exact; tests check they agree on the whole input range.
_DOT_DCT_MAX_BLOCKS = 1 << 12


def _descale_rows(x, shifts):
    """Rounding right shift of each row (leading axis) of `x` by its own amount, as DESCALE does."""
    shifts = np.asarray(shifts, np.int32).reshape((8,) + (1,) * (x.ndim - 1))
    rounding = np.where(shifts > 0, 1 << np.maximum(shifts - 1, 0), 0).astype(np.int32)
    return (x + rounding) >> shifts


def _matmul_pass(matrix, x, spec: str, shifts):
    return _descale_rows(jnp.einsum(spec, jnp.asarray(matrix), x, preferred_element_type=jnp.int32), shifts)


def _fdct_exact(blocks, *, use_dot: Optional[bool] = None):
    """(8c, 8r, ...) centred samples -> (8v, 8u, ...) coefficients, 8x the true DCT. Rows first.

    Butterflies: each pass runs on all 8 rows (columns) at once and stacks its outputs on the leading axis,
    so every op is elementwise on contiguous planes. Small inputs use the same passes as int32 matmuls.
    """
    if use_dot is None:
        use_dot = blocks.size // 64 < _DOT_DCT_MAX_BLOCKS
    if use_dot:
        rows = _matmul_pass(_FDCT_ROW_MATRIX, blocks, "uc,cr...->ur...", _FDCT_ROW_SHIFTS)
        return _matmul_pass(_FDCT_COL_MATRIX, rows, "vr,ur...->vu...", _FDCT_COL_SHIFTS)
    rows = jnp.stack(_fdct_pass([blocks[c] for c in range(8)], True))  # (8u, 8r, ...)
    return jnp.stack(_fdct_pass([rows[:, r] for r in range(8)], False))  # (8v, 8u, ...)


def _idct_exact(coefs, *, use_dot: Optional[bool] = None):
    """(8v, 8u, ...) dequantized coefficients -> (8c, 8r, ...) samples before range limiting. Columns first."""
    if use_dot is None:
        use_dot = coefs.size // 64 < _DOT_DCT_MAX_BLOCKS
    if use_dot:
        cols = _matmul_pass(_IDCT_COL_MATRIX, coefs, "rv,vu...->ru...", _IDCT_COL_SHIFTS)
        return _matmul_pass(_IDCT_ROW_MATRIX, cols, "cu,ru...->cr...", _IDCT_ROW_SHIFTS)
    cols = jnp.stack(_idct_pass([coefs[v] for v in range(8)], True))  # (8r, 8u, ...)
    return jnp.stack(_idct_pass([cols[:, u] for u in range(8)], False))  # (8c, 8r, ...)


def _reciprocal(divisor):
    """jcdctmgr.c compute_reciprocal (16-bit DCTELEM build, as with SIMD): (reciprocal, correction, shift)."""
    divisor = divisor.astype(jnp.uint32)
    b = 31 - jax.lax.clz(divisor).astype(jnp.int32)
    r = (16 + b).astype(jnp.uint32)
    one = jnp.left_shift(jnp.uint32(1), r)
    fq, fr = one // divisor, one % divisor
    c = divisor // 2
    power_of_two = fr == 0
    fq = jnp.where(power_of_two, fq >> 1, jnp.where(fr <= divisor // 2, fq, fq + 1))
    r = jnp.where(power_of_two, r - 1, r)
    c = jnp.where(~power_of_two & (fr <= divisor // 2), c + 1, c)
    return fq, c, r


def _quantize_exact(coefs, table):
    """Round-half-away-from-zero of coefs / (8 table) the way libjpeg-turbo computes it (jcdctmgr.c quantize).

    `table` is (8, 8, N, 1, 1) int32. Equal to (|x| + 4Q) // (8Q) with the sign restored; multiplication
    by a reciprocal is used because integer division does not vectorise on CPUs.
    """
    fq, c, r = _reciprocal(table * 8)
    magnitude = jnp.abs(coefs).astype(jnp.uint32)
    q = (((magnitude + c) * fq) >> r).astype(jnp.int32)
    return jnp.where(coefs < 0, -q, q)


# ----------------------------------------------------------------------------------------------------------
# Colour (jccolor.c, jdcolor.c)
# ----------------------------------------------------------------------------------------------------------

def _rgb_to_ycc_exact(r, g, b):
    f = functools.partial(_fix, bits=_SCALEBITS)
    y = (f(0.29900) * r + f(0.58700) * g + f(0.11400) * b + _ONE_HALF) >> _SCALEBITS
    cb = (-f(0.16874) * r - f(0.33126) * g + f(0.5) * b + _CBCR_OFFSET + _ONE_HALF - 1) >> _SCALEBITS
    cr = (f(0.5) * r - f(0.41869) * g - f(0.08131) * b + _CBCR_OFFSET + _ONE_HALF - 1) >> _SCALEBITS
    return y, cb, cr


def _ycc_to_rgb_exact(y, cb, cr):
    f = functools.partial(_fix, bits=_SCALEBITS)
    cb, cr = cb - 128, cr - 128
    red = y + ((f(1.40200) * cr + _ONE_HALF) >> _SCALEBITS)
    green = y + ((-f(0.34414) * cb + _ONE_HALF - f(0.71414) * cr) >> _SCALEBITS)
    blue = y + ((f(1.77200) * cb + _ONE_HALF) >> _SCALEBITS)
    return [jnp.clip(v, 0, 255) for v in (red, green, blue)]


def _rgb_to_ycc_float(r, g, b):
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return y, cb, cr


def _ycc_to_rgb_float(y, cb, cr):
    cb, cr = cb - 128.0, cr - 128.0
    return [y + 1.402 * cr, y - 0.344136286 * cb - 0.714136286 * cr, y + 1.772 * cb]


# ----------------------------------------------------------------------------------------------------------
# The two pipelines
# ----------------------------------------------------------------------------------------------------------

def _components(images, ycc):
    """(N,H,W,C) -> list of full-size planes (Y, Cb, Cr) or [Y]."""
    if images.shape[-1] == 1:
        return [images[..., 0]]
    return list(ycc(images[..., 0], images[..., 1], images[..., 2]))


def _factors(num_components: int, subsampling: str):
    chroma = _CHROMA_FACTORS[subsampling]
    return [(1, 1)] + [chroma] * (num_components - 1)


def _groups(num_components: int, subsampling: str):
    """Components that share a plane size, as (component indices, factors): they run as one batch, so
    Cb and Cr (and, in 4:4:4, all three) go through each step together in one bigger, cheaper op."""
    factors = _factors(num_components, subsampling)
    if num_components == 1:
        return [([0], factors[0])]
    if factors[1] == (1, 1):
        return [([0, 1, 2], (1, 1))]
    return [([0], (1, 1)), ([1, 2], factors[1])]


# The exact pipeline is a chain of stages with uint8 or int32 arrays between them. Inside one jit, XLA (CPU) fuses
# each stage into its consumers and recomputes it once per consumer element (the butterflies read every
# sample 8 times, so the colour conversion ran 8x, through strided reads); optimization_barrier does not
# stop it, as XLA drops the barriers before fusion. Called with concrete arrays, `compress` therefore runs
# each stage as its own jitted function (`_staged_*`), which keeps every intermediate materialised; traced
# callers (user jit, vmap, grad) get the same stage functions composed in one graph. Small batches, which
# are compile-bound and use the matmul DCTs, also run as one graph: one compilation instead of ten.


def _run_in_stages(shape) -> bool:
    n, height, width = shape[:3]
    return n * _ceil_div(height, 8) * _ceil_div(width, 8) >= _DOT_DCT_MAX_BLOCKS

def _colour_planes(images):
    """uint8 (N,H,W,C) -> uint8 (C, N, H, W) component planes (Y, Cb, Cr or grey)."""
    if images.shape[-1] == 1:
        return jnp.moveaxis(images, -1, 0)
    return jnp.stack(_rgb_to_ycc_exact(*(images[..., c].astype(jnp.int32) for c in range(3)))).astype(jnp.uint8)


def _group_plane(planes, indices, fx: int, fy: int):
    """Components `indices` (consecutive) of uint8 (C, N, H, W) planes, as one uint8 (kN, 8Hb, 8Wb) batch:
    downsampled and padded to whole blocks."""
    height, width = planes.shape[2:]
    plane = planes[indices[0]:indices[-1] + 1].reshape((-1, height, width)).astype(jnp.int32)
    return _downsample_exact(plane, fx, fy, height, width).astype(jnp.uint8)


def _encode_planes(images, subsampling: str):
    """uint8 (N,H,W,C) -> per component group: uint8 (kN, 8Hb, 8Wb) planes, colour-converted, downsampled
    and padded to whole blocks."""
    planes = _colour_planes(images)
    return [_group_plane(planes, indices, fx, fy) for indices, (fx, fy) in _groups(images.shape[-1], subsampling)]


def _flat_blocks(padded):
    """uint8 (kN, 8Hb, 8Wb) -> uint8 (8c, 8r, M), M = kN * Hb * Wb. The flat block axis lets the DCT
    stages compile once for all image shapes with the same number of blocks."""
    return _to_blocks(padded).reshape(8, 8, -1)


def _fdct_blocks(blocks):
    """uint8 (8c, 8r, M) -> int32 (8v, 8u, M) forward-DCT output (8x the DCT)."""
    return _fdct_exact(blocks.astype(jnp.int32) - 128)


def _dequantize(coefs, table):
    """Quantized-then-dequantized (8v, 8u, M) coefficients; `table` is int32 (kN, 8, 8), one per image."""
    blocks = coefs.reshape(8, 8, table.shape[0], -1)
    table = jnp.moveaxis(table, 0, -1)[..., None]  # (8, 8, kN, 1)
    return (_quantize_exact(blocks, table) * table).reshape(coefs.shape)


def _idct_samples(dequantized):
    """(8v, 8u, M) -> uint8 (8c, 8r, M) samples. jdmaster.c range limit: the SIMD IDCT saturates, i.e.
    clamps to [0, 255] after + 128."""
    return jnp.clip(_idct_exact(dequantized) + 128, 0, 255).astype(jnp.uint8)


def _crop_blocks(blocks, rows: int, cols: int):
    """uint8 (8c, 8r, M) -> uint8 (kN, rows, cols) component planes."""
    return _from_blocks(blocks.reshape(8, 8, -1, _ceil_div(rows, 8), _ceil_div(cols, 8)))[:, :rows, :cols]


def _decode_group(coefs, table, rows: int, cols: int):
    """Quantize, dequantize, inverse DCT and range-limit one group: uint8 (kN, rows, cols) component
    planes (cropped, not yet upsampled)."""
    return _crop_blocks(_idct_samples(_dequantize(coefs, table)), rows, cols)


def _upsample_group(comp, fx: int, fy: int, height: int, width: int):
    """uint8 cropped component planes -> uint8 (kN, height, width)."""
    return _upsample(comp.astype(jnp.int32), fx, fy, height, width, exact=True).astype(jnp.uint8)


def _merge_groups(groups, channels: int, subsampling: str):
    """Full-size uint8 planes per group -> uint8 (N, H, W, C) pixels (colour conversion back to RGB)."""
    planes = [None] * channels
    for up, (indices, _) in zip(groups, _groups(channels, subsampling)):
        n = up.shape[0] // len(indices)
        for j, i in enumerate(indices):
            planes[i] = up[j * n:(j + 1) * n]
    if channels == 1:
        return planes[0][..., None]
    planes = [p.astype(jnp.int32) for p in planes]
    return jnp.stack(_ycc_to_rgb_exact(*planes), axis=-1).astype(jnp.uint8)


def _group_table(tables, indices):
    return jnp.concatenate([tables[i] for i in indices]) if len(indices) > 1 else tables[indices[0]]


def _exact_dct(images, subsampling: str):
    """int (N,H,W,C) in [0, 255] -> per component group: int32 (8v, 8u, M) forward-DCT output."""
    return [_fdct_blocks(_flat_blocks(p)) for p in _encode_planes(images.astype(jnp.uint8), subsampling)]


def _exact_decode(dct, tables, height: int, width: int, subsampling: str):
    """Quantize, dequantize, inverse DCT, upsample and colour-convert; `tables` are int32 (N, 8, 8), one
    per component."""
    groups = []
    for coefs, (indices, (fx, fy)) in zip(dct, _groups(len(tables), subsampling)):
        comp = _decode_group(coefs, _group_table(tables, indices), _ceil_div(height, fy), _ceil_div(width, fx))
        groups.append(_upsample_group(comp, fx, fy, height, width) if (fx, fy) != (1, 1) else comp)
    return _merge_groups(groups, len(tables), subsampling)


def _counted(fn):
    """`fn`, counting its traces in _TRACE_COUNT (tests check that a new quality does not recompile)."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
        _TRACE_COUNT["compress"] += 1
        return fn(*args, **kwargs)
    return traced


_TRACE_COUNT = {"compress": 0}  # how often a jitted core was traced (tests count compilations with it)
_staged_colour = jax.jit(_counted(_colour_planes))
_staged_group_plane = jax.jit(_counted(_group_plane), static_argnames=("indices", "fx", "fy"))
_staged_flat_blocks = jax.jit(_counted(_flat_blocks))
_staged_fdct = jax.jit(_counted(_fdct_blocks))
_staged_dequantize = jax.jit(_counted(_dequantize))
_staged_idct = jax.jit(_counted(_idct_samples))
_staged_crop_blocks = jax.jit(_counted(_crop_blocks), static_argnames=("rows", "cols"))
_staged_upsample = jax.jit(_counted(_upsample_group), static_argnames=("fx", "fy", "height", "width"))
_staged_merge = jax.jit(_counted(_merge_groups), static_argnames=("channels", "subsampling"))


@functools.partial(jax.jit, static_argnames=("channels",))
def _staged_tables(quality, luma_base, chroma_base, *, channels: int):
    q = jnp.clip(quality, 1, 100)
    return [scaled_table(luma_base, q)] + [scaled_table(chroma_base, q)] * (channels - 1)


def _staged_exact_dct(images, subsampling: str):
    planes = _staged_colour(images)
    return [_staged_fdct(_staged_flat_blocks(_staged_group_plane(planes, indices=tuple(indices), fx=fx, fy=fy)))
            for indices, (fx, fy) in _groups(images.shape[-1], subsampling)]


def _staged_exact_decode(dct, quality, luma_base, chroma_base, height: int, width: int, channels: int,
                         subsampling: str):
    """`_exact_decode` of concrete arrays, one jitted call per stage (see the note above `_run_in_stages`)."""
    tables = _staged_tables(quality, luma_base, chroma_base, channels=channels)
    groups = []
    for coefs, (indices, (fx, fy)) in zip(dct, _groups(channels, subsampling)):
        samples = _staged_idct(_staged_dequantize(coefs, _group_table(tables, indices)))
        comp = _staged_crop_blocks(samples, rows=_ceil_div(height, fy), cols=_ceil_div(width, fx))
        if (fx, fy) != (1, 1):
            comp = _staged_upsample(comp, fx=fx, fy=fy, height=height, width=width)
        groups.append(comp)
    return _staged_merge(groups, channels=channels, subsampling=subsampling)


_DCT_MATRIX = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * i + 1) * k * np.pi / 16)
                         for i in range(8)] for k in range(8)], np.float32)


def _round_soft(x, kind: str):
    """Rounding for the float pipeline: forward value and gradient of each surrogate."""
    if kind == "identity":  # exact rounding forward, gradient 1 (straight-through)
        return _straight_through(jnp.round(x), x)
    if kind == "cubic":  # Shin & Song 2017
        rounded = jax.lax.stop_gradient(jnp.round(x))
        return rounded + (x - rounded) ** 3
    if kind == "sinusoidal":  # Korus & Memon
        return x - jnp.sin(2 * jnp.pi * x) / (2 * jnp.pi)
    raise AssertionError(kind)


def _float_codec(images, tables, subsampling: str, rounding: str):
    """The same pipeline in float: the differentiable surrogate (and the soft modes' forward pass)."""
    n, height, width, channels = images.shape
    matrix = jnp.asarray(_DCT_MATRIX, images.dtype)
    planes = []
    for plane, table, (fx, fy) in zip(_components(images, _rgb_to_ycc_float), tables,
                                      _factors(channels, subsampling)):
        padded = _downsample_float(plane, fx, fy, height, width)
        blocks = _to_blocks(padded - 128.0)
        coefs = jnp.einsum("vr,cr...,uc->vu...", matrix, blocks, matrix)
        table = jnp.moveaxis(table.astype(images.dtype), 0, -1)[..., None, None]
        coefs = _round_soft(coefs / table, rounding) * table
        samples = jnp.einsum("vr,vu...,uc->cr...", matrix, coefs, matrix) + 128.0
        comp = _from_blocks(samples)[:, :_ceil_div(height, fy), :_ceil_div(width, fx)]
        planes.append(_upsample(comp, fx, fy, height, width, exact=False))
    rgb = planes if len(planes) == 1 else _ycc_to_rgb_float(*planes)
    # Clamp forward, gradient straight through: a hard clamp would zero gradients at saturated pixels.
    return jnp.stack([_straight_through(jnp.clip(v, 0.0, 255.0), v) for v in rgb], axis=-1)


# ----------------------------------------------------------------------------------------------------------
# Exact forward with a surrogate backward
# ----------------------------------------------------------------------------------------------------------

def _exact_from_float(images, quality, luma_base, chroma_base, subsampling):
    """Exact pixels from float arguments (rounded to the integers libjpeg would be given)."""
    ints = jnp.clip(jnp.round(images), 0, 255).astype(jnp.int32)
    q = jnp.round(quality).astype(jnp.int32)
    bases = [jnp.round(luma_base).astype(jnp.int32), jnp.round(chroma_base).astype(jnp.int32)]
    dct = _exact_dct(ints, subsampling)
    tables = [scaled_table(bases[min(i, 1)], q) for i in range(images.shape[-1])]
    return _exact_decode(dct, tables, images.shape[1], images.shape[2], subsampling).astype(images.dtype)


def _surrogate(images, quality, luma_base, chroma_base, subsampling, surrogate):
    tables = [_float_table(base, quality, integer_steps=True) for base in (luma_base, chroma_base)]
    return _float_codec(images, tables[:images.shape[-1]] if images.shape[-1] == 1 else
                        [tables[0], tables[1], tables[1]], subsampling, surrogate)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _exact_straight_through(images, quality, luma_base, chroma_base, subsampling, surrogate):
    return _exact_from_float(images, quality, luma_base, chroma_base, subsampling)


def _st_fwd(images, quality, luma_base, chroma_base, subsampling, surrogate):
    out = _exact_from_float(images, quality, luma_base, chroma_base, subsampling)
    return out, (images, quality, luma_base, chroma_base)


def _st_bwd(subsampling, surrogate, residuals, cotangent):
    _, vjp = jax.vjp(lambda *a: _surrogate(*a, subsampling, surrogate), *residuals)
    return vjp(cotangent)


_exact_straight_through.defvjp(_st_fwd, _st_bwd)


# ----------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------

def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_array(x):
    """Concrete inputs become numpy arrays (so range checks also run inside a user's jit); tracers stay."""
    return x if isinstance(x, jax.core.Tracer) else np.asarray(x)


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
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling: expected one of {', '.join(SUBSAMPLINGS)}, got {subsampling!r}")
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
    integer_inputs = (batch.dtype == jnp.uint8 and jnp.issubdtype(quality.dtype, jnp.integer)
                      and jnp.issubdtype(luma.dtype, jnp.integer) and jnp.issubdtype(chroma.dtype, jnp.integer))
    concrete = all(_is_concrete(x) for x in (batch, quality, luma, chroma))
    if exact and integer_inputs and concrete and _run_in_stages(batch.shape):
        height, width, channels = batch.shape[1:]
        dct = _staged_exact_dct(batch, subsampling)
        out = _staged_exact_decode(dct, quality.astype(jnp.int32), jnp.asarray(luma, jnp.int32),
                                   jnp.asarray(chroma, jnp.int32), height, width, channels, subsampling)
    else:
        out = _compress_jit(batch, quality, luma, chroma, subsampling=subsampling, mode=mode, surrogate=surrogate)
    return out.reshape(original.shape)


@functools.partial(jax.jit, static_argnames=("subsampling", "mode", "surrogate"))
def _compress_jit(images, quality, luma_base, chroma_base, *, subsampling, mode, surrogate):
    _TRACE_COUNT["compress"] += 1
    height, width = images.shape[1:3]
    integer_inputs = (images.dtype == jnp.uint8 and jnp.issubdtype(quality.dtype, jnp.integer)
                      and jnp.issubdtype(luma_base.dtype, jnp.integer)
                      and jnp.issubdtype(chroma_base.dtype, jnp.integer))
    if mode == "exact" and integer_inputs:  # nothing to differentiate: the integer pipeline alone
        dct = _exact_dct(images.astype(jnp.int32), subsampling)
        q = jnp.clip(quality, 1, 100)
        tables = [scaled_table(luma_base, q)] + [scaled_table(chroma_base, q)] * (images.shape[-1] - 1)
        return _exact_decode(dct, tables, height, width, subsampling)
    dtype = images.dtype if jnp.issubdtype(images.dtype, jnp.floating) else jnp.float32
    args = (images.astype(dtype), quality.astype(dtype), luma_base.astype(dtype), chroma_base.astype(dtype))
    if mode == "exact":
        out = _exact_straight_through(*args, subsampling, surrogate)
    else:
        tables = [_float_table(base, args[1], integer_steps=False) for base in args[2:]]
        tables = tables[:1] if images.shape[-1] == 1 else [tables[0], tables[1], tables[1]]
        out = _float_codec(args[0], tables, subsampling, mode)
    return out.astype(jnp.uint8) if images.dtype == jnp.uint8 else out


@functools.partial(jax.jit, static_argnames=("subsampling",))
def _compress_qualities_jit(images, qualities, luma_base, chroma_base, *, subsampling):
    _TRACE_COUNT["compress"] += 1
    height, width = images.shape[1:3]
    dct = _exact_dct(images.astype(jnp.int32), subsampling)  # shared by every quality

    def one_quality(q):
        q = jnp.broadcast_to(jnp.clip(q, 1, 100), images.shape[:1])
        tables = [scaled_table(luma_base, q)] + [scaled_table(chroma_base, q)] * (images.shape[-1] - 1)
        return _exact_decode(dct, tables, height, width, subsampling)

    return jax.lax.map(one_quality, qualities)


def compress_qualities(images, qualities: Sequence[int], *, subsampling: str = "4:2:0",
                       luma_table=None, chroma_table=None):
    """Exact JPEG of one uint8 batch at many qualities in one jitted call: (Q, *images.shape) uint8.

    The colour conversion and forward DCT are done once and shared by all qualities.
    """
    if subsampling not in SUBSAMPLINGS:
        raise ValueError(f"subsampling: expected one of {', '.join(SUBSAMPLINGS)}, got {subsampling!r}")
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
    if all(_is_concrete(x) for x in (batch, qualities, luma, chroma)) and _run_in_stages(batch.shape):
        n, height, width, channels = batch.shape
        dct = _staged_exact_dct(batch, subsampling)  # shared by every quality
        out = jnp.stack([_staged_exact_decode(dct, np.full((n,), q, np.int32), luma, chroma, height, width,
                                              channels, subsampling) for q in np.asarray(qualities)])
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


register("jax_jpeg", _registry_compress, modality="image", level_name="quality", level_range=(1, 100),
         description="JPEG in JAX, pixel-identical to Pillow/libjpeg-turbo (runs on the accelerator)")
