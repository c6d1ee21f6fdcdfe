"""libjpeg-turbo's integer arithmetic in JAX: each step of a baseline JPEG round trip, bit for bit.

Colour conversion, down- and upsampling, the islow forward and inverse DCTs and the quantizer, on whole
planes so every op is elementwise and vectorises. Nothing here decides an order or a batching: that is the
pipeline's job. (Upsampling and geometry also serve the float surrogate, so they take `exact=`.)

The libjpeg-turbo sources this follows: jccolor.c, jcsample.c, jcprepct.c, jfdctint.c, jcdctmgr.c,
jidctint.c, jdsample.c, jdcolor.c, jdmaster.c (range limiting), jcparam.c (tables).
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from helmjax.quantizers import jpeg_tables

# Chroma downsampling factors (horizontal, vertical) per subsampling; luma is never subsampled.
CHROMA_FACTORS = {"4:4:4": (1, 1), "4:2:2": (2, 1), "4:2:0": (2, 2)}


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


def factors(num_components: int, subsampling: str):
    """(fx, fy) sampling factors of each component: luma full size, chroma per `subsampling`."""
    return [(1, 1)] + [CHROMA_FACTORS[subsampling]] * (num_components - 1)


def per_component(luma, chroma, num_components: int) -> list:
    """Luma's item for the first component and chroma's for the others (Y, Cb, Cr or grey alone)."""
    return [luma] + [chroma] * (num_components - 1)


# ----------------------------------------------------------------------------------------------------------
# Quantization tables (jcparam.c)
# ----------------------------------------------------------------------------------------------------------

def quality_scale(quality):
    """IJG quality -> percentage scale (jpeg_quality_scaling), on a possibly traced int array."""
    return jpeg_tables.quality_scale(quality, jnp)


def scaled_table(base, quality):
    """Integer table actually used at `quality` (jpeg_add_quant_table with force_baseline).

    `base` (8,8) int, `quality` int (...,), possibly traced -> int32 (..., 8, 8). The same rule as the
    analysis' numpy `jpeg_tables.scaled_table`, run by jax.numpy.
    """
    return jpeg_tables.scaled_table(base, quality, jnp)


# ----------------------------------------------------------------------------------------------------------
# Geometry: padding, blocks, down- and upsampling
# ----------------------------------------------------------------------------------------------------------

def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def pad_edge(plane, rows: int, cols: int):
    """Replicates the last row/column to reach (rows, cols) (libjpeg's expand_right/bottom_edge)."""
    n, h, w = plane.shape
    if rows == h and cols == w:
        return plane
    return jnp.pad(plane, ((0, 0), (0, rows - h), (0, cols - w)), mode="edge")


def to_blocks(plane):
    """(N, 8Hb, 8Wb) -> (8 cols, 8 rows, N, Hb, Wb): the butterflies then work on whole contiguous planes."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(4, 2, 0, 1, 3)


def from_blocks(blocks):
    c, r, n, hb, wb = blocks.shape
    return blocks.transpose(2, 3, 1, 4, 0).reshape(n, hb * 8, wb * 8)


def downsample_exact(plane, fx: int, fy: int, height: int, width: int):
    """jcsample.c h2v2/h2v1 on a full-size plane: returns the component padded to whole blocks.

    The full plane is edge-padded to (fy * rows, fx * width_in_blocks * 8) first, box-averaged with
    libjpeg's alternating bias, then (jcprepct.c) padded at the bottom by repeating the last output row.
    """
    comp_h, comp_w = ceil_div(height, fy), ceil_div(width, fx)
    out_h, out_w = ceil_div(comp_h, 8) * 8, ceil_div(comp_w, 8) * 8
    if fx == 1 and fy == 1:
        return pad_edge(plane, out_h, out_w)
    n = plane.shape[0]
    padded = pad_edge(plane, comp_h * fy, out_w * fx)
    summed = padded.reshape(n, comp_h, fy, out_w, fx).sum(axis=(2, 4))
    col = jnp.arange(out_w, dtype=jnp.int32)
    if fy == 2:  # h2v2: bias 1, 2, 1, 2, ... then >> 2
        down = (summed + 1 + (col & 1)) >> 2
    else:  # h2v1: bias 0, 1, 0, 1, ... then >> 1
        down = (summed + (col & 1)) >> 1
    return pad_edge(down, out_h, out_w)


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


def upsample(comp, fx: int, fy: int, height: int, width: int, *, exact: bool):
    """jdsample.c fancy (triangle) upsampling of a cropped chroma plane, then crop to (height, width).

    h2v2: 3:1 vertical then 3:1 horizontal weighting, + 8 / + 7 and >> 4; h2v1: (3 near + far + 1 / 2) >> 2.
    Edges repeat the outermost sample (what libjpeg's special-cased first/last columns and its context
    rows amount to). Planes narrower than 3 samples get plain replication, as in jinit_upsampler.
    Each output phase is an elementwise expression of shifted copies of the plane, so the whole
    upsampling is one fused loop plus an interleave. `exact=False`: the same weights in float, no rounding.
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
DOT_DCT_MAX_BLOCKS = 1 << 12


def _descale_rows(x, shifts):
    """Rounding right shift of each row (leading axis) of `x` by its own amount, as DESCALE does."""
    shifts = np.asarray(shifts, np.int32).reshape((8,) + (1,) * (x.ndim - 1))
    rounding = np.where(shifts > 0, 1 << np.maximum(shifts - 1, 0), 0).astype(np.int32)
    return (x + rounding) >> shifts


def _matmul_pass(matrix, x, spec: str, shifts):
    return _descale_rows(jnp.einsum(spec, jnp.asarray(matrix), x, preferred_element_type=jnp.int32), shifts)


def fdct_exact(blocks, *, use_dot: Optional[bool] = None):
    """(8c, 8r, ...) centred samples -> (8v, 8u, ...) coefficients, 8x the true DCT. Rows first.

    Butterflies: each pass runs on all 8 rows (columns) at once and stacks its outputs on the leading axis,
    so every op is elementwise on contiguous planes. Small inputs use the same passes as int32 matmuls.
    """
    if use_dot is None:
        use_dot = blocks.size // 64 < DOT_DCT_MAX_BLOCKS
    if use_dot:
        rows = _matmul_pass(_FDCT_ROW_MATRIX, blocks, "uc,cr...->ur...", _FDCT_ROW_SHIFTS)
        return _matmul_pass(_FDCT_COL_MATRIX, rows, "vr,ur...->vu...", _FDCT_COL_SHIFTS)
    rows = jnp.stack(_fdct_pass([blocks[c] for c in range(8)], True))  # (8u, 8r, ...)
    return jnp.stack(_fdct_pass([rows[:, r] for r in range(8)], False))  # (8v, 8u, ...)


def idct_exact(coefs, *, use_dot: Optional[bool] = None):
    """(8v, 8u, ...) dequantized coefficients -> (8c, 8r, ...) samples before range limiting. Columns first."""
    if use_dot is None:
        use_dot = coefs.size // 64 < DOT_DCT_MAX_BLOCKS
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


def quantize_exact(coefs, table):
    """Round-half-away-from-zero of coefs / (8 table) the way libjpeg-turbo computes it (jcdctmgr.c quantize).

    `table` is int32, broadcastable to `coefs`. Equal to (|x| + 4Q) // (8Q) with the sign restored;
    multiplication by a reciprocal is used because integer division does not vectorise on CPUs.
    """
    fq, c, r = _reciprocal(table * 8)
    magnitude = jnp.abs(coefs).astype(jnp.uint32)
    q = (((magnitude + c) * fq) >> r).astype(jnp.int32)
    return jnp.where(coefs < 0, -q, q)


# ----------------------------------------------------------------------------------------------------------
# Colour (jccolor.c, jdcolor.c)
# ----------------------------------------------------------------------------------------------------------

def rgb_to_ycc_exact(r, g, b):
    f = functools.partial(_fix, bits=_SCALEBITS)
    y = (f(0.29900) * r + f(0.58700) * g + f(0.11400) * b + _ONE_HALF) >> _SCALEBITS
    cb = (-f(0.16874) * r - f(0.33126) * g + f(0.5) * b + _CBCR_OFFSET + _ONE_HALF - 1) >> _SCALEBITS
    cr = (f(0.5) * r - f(0.41869) * g - f(0.08131) * b + _CBCR_OFFSET + _ONE_HALF - 1) >> _SCALEBITS
    return y, cb, cr


def ycc_to_rgb_exact(y, cb, cr):
    """Back to RGB with jdcolor.c's fixed point, range-limited to [0, 255]."""
    f = functools.partial(_fix, bits=_SCALEBITS)
    cb, cr = cb - 128, cr - 128
    red = y + ((f(1.40200) * cr + _ONE_HALF) >> _SCALEBITS)
    green = y + ((-f(0.34414) * cb + _ONE_HALF - f(0.71414) * cr) >> _SCALEBITS)
    blue = y + ((f(1.77200) * cb + _ONE_HALF) >> _SCALEBITS)
    return [jnp.clip(v, 0, 255) for v in (red, green, blue)]
