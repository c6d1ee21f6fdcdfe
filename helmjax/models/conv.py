"""A drop-in `conv_general_dilated` with two CPU fast paths: strided gradients, and few-channel convolutions.

XLA differentiates a stride-s convolution into a convolution over the gradient dilated with s-1 zeros between
rows and columns, so s*s - 1 of every s*s multiply-adds hit a zero: on CPU that pass ran at a third of the
forward's speed. Here the input gradient is the same sum computed sub-pixel style: each of the s*s phases of the
input is a stride-1 convolution of the (undilated) gradient with the kernel taps that reach that phase, then the
phases are interleaved (depth-to-space). Forward pass and kernel gradient stay XLA's own. The result equals
XLA's gradient up to float summation order (tested). For CPUs: GPU libraries have their own strided gradients,
so only the CPU performance profile (`helmjax.training.performance`) puts it in the models; anything other than a
plain 2-D NHWC/HWIO convolution goes to lax unchanged.

A stride-1 convolution whose patch is short (PATCH_MATMUL_MIN <= kh * kw * c_in <= PATCH_MATMUL_MAX, e.g. an RGB
stem: 3x3x3 = 27) runs as one matmul over the patches instead: XLA's convolution kernels vectorise over input
channels, and with 3 of them both the forward pass and the kernel gradient (a 27 x 32 result summed over every
pixel) ran well below the matmul's speed (BENCHMARKS.md). A single-channel 3x3 stem (9 values, the audio models'
on log-mels) lost 3% of the audio step that way, so patches that short stay XLA's.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
PATCH_MATMUL_MIN, PATCH_MATMUL_MAX = 16, 64  # patch lengths (kh * kw * c_in) computed as a matmul over patches


def _phase_taps(kernel: int, stride: int, pad_lo: int):
    """Which kernel tap feeds each input phase: (index[t, a], d_min, d_max).

    Input row s*m + a receives gradient row m - d times kernel row k for every k with k - a - pad_lo = s*d;
    index[d_max - d, a] = k, and `kernel` (one past the last tap, a zero row) where no tap lands.
    """
    taps = [(a, k, (k - a - pad_lo) // stride) for a in range(stride) for k in range(kernel)
            if (k - a - pad_lo) % stride == 0]
    offsets = [d for _, _, d in taps]
    d_min, d_max = min(offsets), max(offsets)
    index = np.full((d_max - d_min + 1, stride), kernel)
    for a, k, d in taps:
        index[d_max - d, a] = k
    return index, d_min, d_max


def strided_input_gradient(g: jax.Array, kernel: jax.Array, input_shape, strides, pads) -> jax.Array:
    """d(conv)/d(input) of a strided NHWC/HWIO convolution with explicit `pads`, without zero dilation.

    Each of the s*s input phases is one stride-1 VALID convolution of the padded gradient with only the kernel
    taps that land on it (a 3x3 stride-2 kernel splits into 2x2, 2x1, 1x2 and 1x1 pieces), so no multiply-add
    hits a zero; the phases are then interleaved back into rows and columns.
    """
    n, h, w, c_in = input_shape
    kh, kw, _, c_out = kernel.shape
    sy, sx = strides
    index_y, dmin_y, dmax_y = _phase_taps(kh, sy, pads[0][0])
    index_x, dmin_x, dmax_x = _phase_taps(kw, sx, pads[1][0])
    rows, cols = -(-h // sy), -(-w // sx)  # phase positions per axis; the last may overhang and is cropped
    g_rows, g_cols = g.shape[1:3]
    g = jnp.pad(g, ((0, 0), (dmax_y, max(0, rows - g_rows - dmin_y)), (dmax_x, max(0, cols - g_cols - dmin_x)),
                    (0, 0)))
    kernel = kernel.transpose(0, 1, 3, 2)  # the gradient flows from c_out back to c_in
    phase_rows = []
    for ay in range(sy):
        taps_y = [t for t in range(len(index_y)) if index_y[t, ay] < kh]  # contiguous offsets t
        phase_cols = []
        for ax in range(sx):
            taps_x = [t for t in range(len(index_x)) if index_x[t, ax] < kw]
            if not taps_y or not taps_x:  # no kernel tap reaches this phase (e.g. a 1x1 stride-2 kernel)
                phase_cols.append(jnp.zeros((n, rows, cols, c_in), g.dtype))
                continue
            taps = kernel[index_y[taps_y, ay][:, None], index_x[taps_x, ax][None, :]]
            window = g[:, taps_y[0]:taps_y[0] + rows + len(taps_y) - 1, taps_x[0]:taps_x[0] + cols + len(taps_x) - 1]
            phase_cols.append(lax.conv_general_dilated(window, taps, (1, 1), "VALID", dimension_numbers=_NHWC))
        phase_rows.append(jnp.stack(phase_cols, axis=3))  # (n, rows, cols, sx, c_in)
    out = jnp.stack(phase_rows, axis=2)  # (n, rows, sy, cols, sx, c_in)
    return out.reshape(n, rows * sy, cols * sx, c_in)[:, :h, :w]


def patch_matmul_conv(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
    """A stride-1 NHWC/HWIO convolution with explicit `pads` as one matmul over its kh*kw*c_in-long patches."""
    n, h, w, c_in = x.shape
    kh, kw, _, c_out = kernel.shape
    x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    rows, cols = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    patches = jnp.concatenate([x[:, i:i + rows, j:j + cols] for i in range(kh) for j in range(kw)], axis=-1)
    out = patches.reshape(-1, kh * kw * c_in) @ kernel.reshape(kh * kw * c_in, c_out)  # taps in (i, j, c) order
    return out.reshape(n, rows, cols, c_out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, kernel, strides, pads):
    return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_NHWC)


def _strided_conv_fwd(x, kernel, strides, pads):
    return _strided_conv(x, kernel, strides, pads), (x, kernel)


def _strided_conv_bwd(strides, pads, residuals, g):
    x, kernel = residuals
    _, kernel_vjp = jax.vjp(lambda k: lax.conv_general_dilated(x, k, strides, pads, dimension_numbers=_NHWC),
                            kernel)
    return strided_input_gradient(g, kernel, x.shape, strides, pads).astype(x.dtype), kernel_vjp(g)[0]


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def _is_nhwc(dimension_numbers) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return dimension_numbers == lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
    return tuple(dimension_numbers) == _NHWC


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None):
    """`lax.conv_general_dilated`, routing plain strided 2-D convolutions through the fast input gradient and
    stride-1 ones with short patches through one matmul."""
    strides = tuple(window_strides)
    plain = (lhs.ndim == 4 and _is_nhwc(dimension_numbers)
             and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
             and feature_group_count == 1 and batch_group_count == 1 and precision is None
             and preferred_element_type is None)
    few_channels = plain and max(strides) == 1 and PATCH_MATMUL_MIN <= int(np.prod(rhs.shape[:3])) <= PATCH_MATMUL_MAX
    if not plain or (max(strides) == 1 and not few_channels):
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                        dimension_numbers, feature_group_count, batch_group_count, precision,
                                        preferred_element_type)
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], strides, padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if few_channels:
        return patch_matmul_conv(lhs, rhs, pads)
    return _strided_conv(lhs, rhs, strides, pads)
