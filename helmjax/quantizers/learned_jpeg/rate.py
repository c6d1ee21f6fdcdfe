"""The rate proxy: a smooth, differentiable stand-in for JPEG's payload bits, calibrated against Pillow's.

The descent needs a rate it can differentiate with respect to the tables; the real entropy coder gives none. The
proxy reads features of the quantized DCT coefficients that track the coded size (`rate_features`), weighted by a
least-squares fit to Pillow's real payload bits over Annex K and random tables (`calibrate_rate`), so it reads in
payload bits (`proxy_bits`).
"""

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize, stats

from helmjax.quantizers.jpeg import gradients, libjpeg
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, scaled_table
from helmjax.quantizers.learned_jpeg.files import payload_bits

# Annex K qualities whose tables (with random ones) calibrate the rate proxy: the span of rates learned tables reach.
CALIBRATION_QUALITIES = (3, 5, 10, 20, 35, 50, 75, 90)
# Payload bits per bit of DC difference magnitude (Huffman size code + amplitude bits): measured by changing
# only the DC entries of Annex K q10 tables on camera images (1.7-1.9); fixed, because a free fit confounds it
# with the AC features and returns 0.
DC_WEIGHT = 1.8


def dct_coefficients(images, subsampling: str = "4:2:0") -> list:
    """Float DCT coefficients (8, 8, N, blocks_y, blocks_x) of Y, Cb and Cr, as the codec's float twin computes
    them (same colour conversion, subsampling and block padding)."""
    images = jnp.asarray(images, jnp.float32)
    _, height, width, _ = images.shape
    matrix = jnp.asarray(gradients._DCT_MATRIX)
    planes = gradients._rgb_to_ycc_float(*(images[..., c] for c in range(3)))
    out = []
    for plane, (fx, fy) in zip(planes, libjpeg.factors(3, subsampling)):
        blocks = libjpeg.to_blocks(gradients._downsample_float(plane, fx, fy, height, width) - 128.0)
        out.append(jnp.einsum("vr,cr...,uc->vu...", matrix, blocks, matrix))
    return out


def _zigzag() -> np.ndarray:
    """(row, column) of the 64 coefficients in JPEG's zigzag scan order (ITU-T T.81 figure A.6)."""
    return np.array(sorted(((r, c) for r in range(8) for c in range(8)),
                           key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1])))


ZIGZAG = _zigzag()


def rate_features(coefs: list, luma, chroma):
    """(N, 4) smooth features of the coded size, after JPEG's entropy coder: a soft count of nonzero AC
    coefficients (each costs a Huffman run/size code), their magnitude bits (log2(1 + |c/q|) counted where
    nonzero: the appended amplitude bits), the DC differences' magnitude bits (size code + amplitude), and the zero
    runs before each nonzero coefficient in zigzag order (expected run length of the soft zeros: a lone nonzero
    coefficient far down the scan costs a long run/size code, and a ZRL code per 16 zeros)."""
    features = 0.0
    ac_mask = jnp.ones((8, 8)).at[0, 0].set(0.0)[:, :, None, None, None]
    for k, coef in enumerate(coefs):
        table = jnp.asarray(luma if k == 0 else chroma, jnp.float32)[:, :, None, None, None]
        ratio = jnp.abs(coef / table)
        nonzero = jax.nn.sigmoid(12.0 * (ratio - 0.5)) * ac_mask  # round(c/q) != 0, softly
        magnitude = nonzero * jnp.log2(1.0 + ratio)
        dc = (coef[0, 0] / table[0, 0]).reshape(coef.shape[2], -1)
        dc_diff = jnp.diff(dc, axis=1, prepend=jnp.zeros_like(dc[:, :1]))  # the first block's DC is coded as is
        dc_bits = jnp.log2(1.0 + jnp.abs(dc_diff)).sum(axis=1)
        scan = nonzero[ZIGZAG[:, 0], ZIGZAG[:, 1]]  # (64, N, by, bx) in scan order
        run, run_bits = jnp.zeros_like(scan[0]), 0.0
        for i in range(1, 64):  # run: expected zeros since the last nonzero coefficient
            run_bits = run_bits + scan[i] * run
            run = (1.0 - scan[i]) * (run + 1.0)
        features = features + jnp.stack([nonzero.sum(axis=(0, 1, 3, 4)), magnitude.sum(axis=(0, 1, 3, 4)),
                                         dc_bits, run_bits.sum(axis=(1, 2))], axis=1)
    return features


def random_tables(rng: np.random.Generator, count: int) -> list:
    """`count` (luma, chroma) pairs of random tables, entries log-uniform in [1, 255]."""
    return [tuple(np.clip(np.round(np.exp(rng.uniform(0.0, math.log(255.0), (8, 8)))), 1, 255).astype(int)
                  for _ in range(2)) for _ in range(count)]


def calibration_tables(seed: int = 0, count: int = 8) -> list:
    """(luma, chroma) pairs the proxy is calibrated on: the Annex K tables at `CALIBRATION_QUALITIES` and `count`
    random tables, so that DC, low and high frequencies vary independently, as they do along a descent (an Annex K
    ladder alone moves them together and leaves their weights confounded)."""
    tables = [(scaled_table(LUMA_TABLE, q), scaled_table(CHROMA_TABLE, q)) for q in CALIBRATION_QUALITIES]
    return tables + random_tables(np.random.default_rng(seed), count)


def calibrate_rate(images: np.ndarray, subsampling: str = "4:2:0", tables: Optional[list] = None) -> dict:
    """Nonnegative least squares of Pillow payload bits on the proxy's AC features over `images` coded with
    `tables` (default `calibration_tables()`), in relative error (so small files weigh as much as big ones), the
    DC weight fixed at `DC_WEIGHT`: {"weights": [3], "intercept", "spearman_pooled"}, so the proxy reads in
    payload bits; `spearman_pooled` is its rank correlation with the real bits over all (image, table) pairs."""
    coefs = dct_coefficients(images, subsampling)
    rows, targets = [], []
    for luma, chroma in calibration_tables() if tables is None else tables:
        rows.append(np.asarray(rate_features(coefs, luma, chroma), np.float64))
        targets.append(payload_bits(images, luma, chroma, subsampling))
    design, target = np.concatenate(rows), np.concatenate(targets)
    rest = target - DC_WEIGHT * design[:, 2]
    free = np.concatenate([design[:, :2], design[:, 3:], np.ones((len(design), 1))], axis=1)
    solution, _ = optimize.nnls(free / target[:, None], rest / target)
    weights = [float(solution[0]), float(solution[1]), DC_WEIGHT] + [float(v) for v in solution[2:-1]]
    proxy = design @ np.asarray(weights) + solution[-1]
    return {"weights": weights, "intercept": float(solution[-1]),
            # over every (image, table) pair: does the proxy order tables and images as the real coder does?
            "spearman_pooled": float(stats.spearmanr(proxy, target)[0])}


def proxy_bits(coefs: list, luma, chroma, calibration: dict):
    """The calibrated proxy: payload bits of each image (N,), differentiable w.r.t. the tables."""
    return rate_features(coefs, luma, chroma) @ jnp.asarray(calibration["weights"]) + calibration["intercept"]


def proxy_spearman(images: np.ndarray, luma, chroma, calibration: dict, subsampling: str = "4:2:0") -> float:
    """Spearman rank correlation over `images` of the proxy with Pillow's payload bits at these tables."""
    proxy = np.asarray(proxy_bits(dct_coefficients(images, subsampling), luma, chroma, calibration))
    return float(stats.spearmanr(proxy, payload_bits(images, luma, chroma, subsampling))[0])
