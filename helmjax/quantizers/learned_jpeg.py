"""Learned JPEG: a luma and a chroma quantization table learned for a task, stored as standard JPEG files.

`learn_tables(x_train, y_train, bpp)` learns the two 8x8 base tables for the least task loss at a payload of `bpp`
bits per pixel, in four steps:
1. Adam on the log table entries, from one step everywhere scaled to the target rate, through the differentiable JAX
   JPEG on task loss + lam * rate: libjpeg's exact pixels forward, the gradient of cubic soft rounding backward
   (`jpeg.compress(..., mode="exact", surrogate="cubic")`). A soft forward leaks: it passes a coefficient below half a
   step as (x - round(x))^3 instead of 0, which the fixed classifier reads, so the descent (measured on camera at 0.65
   bpp) raised the steps of a grating frequency until the real codec erased it and fresh classifiers failed. The rate is
   a smooth proxy of the JPEG payload (soft nonzero counts, magnitude bits, DC differences, zero runs in zigzag order),
   calibrated by least squares against Pillow's real payload bits and rescaled every `CORRECT_EVERY` steps to the real
   payload at the current tables; lam follows by dual ascent so that the rate meets `bpp`. The tables are kept symmetric
   (entry (u, v) = (v, u)).
2. The DC steps are then chosen on the real codec (`choose_dc`): the soft rounding's gradient for a DC step is
   misleading (measured: it drove the luma DC to 1 and the chroma DC to 255).
3. The tables are rounded to integers in [1, 255] and scaled together (bisection on one log offset, `meet_rate`)
   until Pillow's real payload on the learning images is at most `bpp`: the level is a true rate, so levels are
   ordered by rate by construction.
4. Steps 1-3 run `restarts` times, each descent with its own fixed classifier (seed `seed + restart`) and batch
   order; the tables a fresh classifier, trained on the other training images coded with them, scores best on are
   kept.
The quantizer `learned_jpeg` writes real JPEG files with them (Pillow `qtables=`), so its bits are true file sizes
and its pixels are what any decoder returns (equal to `jpeg.compress(..., mode="exact", quality=50, ...)` with the
same tables: quality 50 uses tables as given).

The task loss comes from a fixed classifier, not one trained jointly with the tables: jointly, the tables would
co-adapt to that one network (it learns to read whatever the tables keep), while the sweep asks what a fresh
classifier trained from scratch on the compressed copy can learn. The fixed classifier is trained on other training
images than the tables are learned on (so its loss reflects what generalises, not what it memorised), raw and
JPEG-compressed with random tables (Annex K at random qualities and random log-uniform tables), because the fresh
classifiers of the sweep are trained on compression artifacts too. Symmetric tables, because free ones learned to
keep one grating orientation of the camera set and leave the other to be read from its absence, which the fixed
classifier does and fresh classifiers learn less reliably; several descents, each with its own fixed classifier,
of which the one a fresh classifier learns best from is kept, because descents from one start differ a lot, and
descents led by one classifier fail together when it reads few of the frequencies the task has (measured on camera).
What each choice gave: BENCHMARKS.md.

In a sweep the level is the target payload bits per pixel (lower compresses more). The tables are learned once per
level on the training split only (the registry's `fit` hook, called by `helmjax.sweeps.quantized_data.quantize`),
saved with the sweep as JSON (`<sweep>/cache/fitted/`) and reused for the test split. From user code:

    state = learned_jpeg.learn_tables(x_train, y_train, bpp=0.6)      # or load_tables(path_of_a_sweeps_json)
    out = learned_jpeg.compress_with_tables(x_test, state)            # Quantized: pixels, file and payload bits
"""

import functools
import hashlib
import io
import json
import math
import pathlib
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image
from scipy import optimize, stats

from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg
from helmjax.quantizers.jpeg import compress as jax_compress
from helmjax.quantizers.jpeg import gradients, libjpeg
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, scaled_table
from helmjax.quantizers.registry import Quantized, register

FORMAT = 2  # of the tables' JSON record
BPP_RANGE = (0.02, 16.0)  # the level: target payload bits per pixel
LAM_RANGE = (1e-4, 1e3)  # where dual ascent may take lam (task-loss nats per payload bit per pixel)
# Annex K qualities whose tables (with random ones) calibrate the rate proxy: the span of rates learned tables reach.
CALIBRATION_QUALITIES = (3, 5, 10, 20, 35, 50, 75, 90)
# Payload bits per bit of DC difference magnitude (Huffman size code + amplitude bits): measured by changing
# only the DC entries of Annex K q10 tables on camera images (1.7-1.9); fixed, because a free fit confounds it
# with the AC features and returns 0.
DC_WEIGHT = 1.8
CORRECT_EVERY = 20  # steps between measurements of the real payload during the descent
# How the tables are learned; part of the fitted state's key, so changing one relearns.
SETTINGS = dict(subset=1000, classifier_steps=600, augment=2, steps=300, batch_size=64, lr=0.05, dual_lr=0.05,
                init_lam=0.1, init_quality="flat", mode="exact", surrogate="cubic", symmetric=True, dc_search=True,
                restarts=6, fresh_steps=170, fresh_seeds=2, arch="A", width=0.25, seed=0)


# ---------------------------------------------------------------------------------------------- real files


def _qtables(luma, chroma) -> list:
    return [[int(v) for v in np.ravel(luma)], [int(v) for v in np.ravel(chroma)]]


def encode(image: np.ndarray, luma, chroma, subsampling: str = "4:2:0") -> bytes:
    """One HWC uint8 image -> JPEG bytes with these base tables as given (natural order, Pillow `qtables=`
    without a quality: scale 100%)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", qtables=_qtables(luma, chroma),
                                subsampling=pillow_jpeg._subsampling_code(subsampling))
    return buf.getvalue()


def _check_tables(state: dict):
    tables = [np.asarray(state.get(key), np.int64) if state.get(key) is not None else None
              for key in ("luma", "chroma")]
    if any(t is None or t.shape != (8, 8) or t.min() < 1 or t.max() > 255 for t in tables):
        raise UserError("learned JPEG tables must be 8x8 integers in [1, 255] under 'luma' and 'chroma'; "
                        "use learn_tables(...) or load_tables(path)")
    return tables


def compress_with_tables(images: np.ndarray, state: dict, subsampling: Optional[str] = None) -> Quantized:
    """Real JPEG files of a uint8 (N,H,W,3) batch with the tables of `state` (from `learn_tables` or
    `load_tables`): the decoded pixels, file bits and payload bits of each image."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise UserError(f"learned_jpeg needs uint8 RGB images (N,H,W,3), got {images.shape} {images.dtype}")
    luma, chroma = _check_tables(state)
    subsampling = subsampling or state.get("subsampling", "4:2:0")
    out = np.empty_like(images)
    bits = np.empty(len(images), np.int64)
    payload = np.empty(len(images), np.int64)
    for i, image in enumerate(images):
        data = encode(image, luma, chroma, subsampling)
        out[i] = np.asarray(Image.open(io.BytesIO(data)))
        bits[i], payload[i] = 8 * len(data), 8 * pillow_jpeg.payload_bytes(data)
    return Quantized(out, bits, payload)


def payload_bits(images: np.ndarray, luma, chroma, subsampling: str = "4:2:0") -> np.ndarray:
    """Pillow's payload (entropy-coded scan) bits of each image with these base tables."""
    return np.array([8 * pillow_jpeg.payload_bytes(encode(image, luma, chroma, subsampling))
                     for image in np.asarray(images)], np.float64)


def save_tables(path, state: dict):
    from helmjax import atomic_io
    atomic_io.write_json(pathlib.Path(path), state)


def load_tables(path) -> dict:
    """The state JSON `learn_tables` returns and a sweep saves (`<sweep>/cache/fitted/*.json`), checked."""
    try:
        state = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read learned JPEG tables from {path}: {e}") from None
    _check_tables(state)
    return state


# ------------------------------------------------------------------------------------------ the rate proxy


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


# ------------------------------------------------------------------------------------- the fixed classifier


def _accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


def _standardize(images, mean, std):
    return (images / 255.0 - mean) / std


# In-process memo: every level of one dataset shares its fixed classifiers (one per descent) and rate calibration
# (keyed by data digest and the settings they depend on), so a sweep over levels trains each classifier once.
_MEMO: dict = {}
_MEMO_SIZE = 64  # entries (a classifier is about 0.2 MB); cleared when full


def _memo(key: tuple, make):
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_SIZE:
            _MEMO.clear()
        _MEMO[key] = make()
    return _MEMO[key]


def compressed_copies(images: np.ndarray, copies: int, seed: int, subsampling: str = "4:2:0") -> np.ndarray:
    """`copies` JPEG-decoded copies of `images` (concatenated), each image with its own random tables: half Annex K
    at a random quality in [2, 95], half random log-uniform tables (the kinds of tables a descent visits)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for image in images:
            if rng.random() < 0.5:
                quality = int(rng.integers(2, 96))
                luma, chroma = scaled_table(LUMA_TABLE, quality), scaled_table(CHROMA_TABLE, quality)
            else:
                [(luma, chroma)] = random_tables(rng, 1)
            out.append(np.asarray(Image.open(io.BytesIO(encode(image, luma, chroma, subsampling)))))
    return np.stack(out) if out else images[:0]


def _train_classifier(images, labels, num_classes, arch, width, steps, batch_size, seed, augment=0,
                      subsampling="4:2:0"):
    """The project's CIFAR net (`arch` at `width`, no dropout) trained with Adam on raw images and `augment`
    JPEG-compressed copies of them (`compressed_copies`); returns (apply(variables, images float [0,255]) -> logits,
    variables, accuracy on its raw training images)."""
    from helmjax import models
    model = models.build("image", arch, num_classes, width=width, dropout=0.0)
    raw = np.asarray(images, np.float32)
    x = np.concatenate([raw, compressed_copies(images, augment, seed, subsampling).astype(np.float32)])
    y = np.tile(labels, 1 + augment)
    mean, std = raw.mean(axis=(0, 1, 2)) / 255.0, raw.std(axis=(0, 1, 2)) / 255.0 + 1e-6
    key = jax.random.PRNGKey(seed)
    params = model.init(key, jnp.zeros((1,) + x.shape[1:]), train=False)
    optimizer = optax.adam(2e-3)
    opt_state = optimizer.init(params)

    def loss_fn(params, xb, yb):
        logits = model.apply(params, _standardize(xb, mean, std), train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(params, opt_state, xb, yb):
        grads = jax.grad(loss_fn)(params, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(x), batch_size, replace=False)
        params, opt_state = step(params, opt_state, x[idx], y[idx])

    def apply(variables, images):
        return model.apply(variables["params"], _standardize(images, variables["mean"], variables["std"]),
                           train=False)

    variables = {"params": params, "mean": jnp.asarray(mean), "std": jnp.asarray(std)}
    predictions = np.concatenate([np.asarray(jnp.argmax(jax.jit(apply)(variables, raw[i:i + 500]), -1))
                                  for i in range(0, len(raw), 500)])
    return apply, variables, float(np.mean(predictions == labels))  # on its own (raw) training images


# ------------------------------------------------------------------------------------------------ learning


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """Content hash of the images and labels the tables are learned from."""
    h = hashlib.sha256()
    for a in (np.asarray(images), np.asarray(labels)):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:20]


def check_bpp(bpp) -> float:
    low, high = BPP_RANGE
    if isinstance(bpp, bool) or not isinstance(bpp, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(bpp)) or not low <= float(bpp) <= high:
        raise UserError(f"learned_jpeg: target {bpp!r} must be a number of payload bits per pixel in "
                        f"[{low:g}, {high:g}] (lower compresses more)")
    return float(bpp)


def _rounded(log_luma, log_chroma, offset: float = 0.0):
    return tuple(np.clip(np.round(np.exp(np.asarray(t, np.float64) + offset)), 1, 255).astype(int)
                 for t in (log_luma, log_chroma))


def meet_rate(images: np.ndarray, log_luma, log_chroma, bpp: float, subsampling: str = "4:2:0",
              iterations: int = 24):
    """The integer tables exp(log_table + c), rounded and clipped to [1, 255], with the smallest common log offset
    c (bisection) whose mean Pillow payload over `images` is at most `bpp`; (luma, chroma, c, payload bpp). The
    tables keep the learned shape (their ratios) while the rate becomes exactly the target's."""
    pixels = float(images.shape[1] * images.shape[2])

    @functools.lru_cache(maxsize=None)  # each offset is coded once (the end reads the bisection's last bound again)
    def rate(offset):
        return payload_bits(images, *_rounded(log_luma, log_chroma, offset), subsampling).mean() / pixels

    low, high = -math.log(255.0), math.log(255.0)  # every entry 1 (finest) ... every entry 255 (coarsest)
    if rate(high) > bpp:  # even the coarsest tables are above target: say so, do not pretend
        raise UserError(f"learned_jpeg: {bpp:g} payload bits per pixel is below what JPEG reaches on these images "
                        f"with every step at 255 ({rate(high):.3f}); use a larger target")
    if rate(low) <= bpp:
        high = low
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        low, high = (low, mid) if rate(mid) <= bpp else (mid, high)
    luma, chroma = _rounded(log_luma, log_chroma, high)
    return luma, chroma, high, rate(high)


DC_CANDIDATES = (4, 16, 64)  # DC steps tried on the real codec (luma x chroma), besides the descent's own


def choose_dc(images, labels, classifier, log_luma, log_chroma, bpp: float, subsampling: str = "4:2:0"):
    """The luma and chroma DC steps by the real codec: each pair of `DC_CANDIDATES` (and the descent's own) with
    the learned AC entries, all scaled together to the target rate (`meet_rate`), scored by the classifier's
    cross-entropy on the real JPEG pixels; returns the log tables with the best pair and every pair's score.

    Why: the descent's gradient for a DC step comes through the soft rounding of every block's mean, and measured
    it drove the luma DC to 1 and the chroma DC to 255, while on the real codec both at 32 cost 0.1 bits per pixel
    less at a lower loss (camera set)."""
    own = (float(np.exp(log_luma[0, 0])), float(np.exp(log_chroma[0, 0])))
    scores = []
    for dc_luma, dc_chroma in [own] + [(a, b) for a in DC_CANDIDATES for b in DC_CANDIDATES]:
        ll, lc = np.array(log_luma, np.float64), np.array(log_chroma, np.float64)
        ll[0, 0], lc[0, 0] = math.log(dc_luma), math.log(dc_chroma)
        luma, chroma, _, rate = meet_rate(images, ll, lc, bpp, subsampling, iterations=12)
        decoded = compress_with_tables(images, {"luma": luma, "chroma": chroma}, subsampling).data
        loss = float(optax.softmax_cross_entropy_with_integer_labels(
            classifier(jnp.asarray(decoded, jnp.float32)), labels).mean())
        scores.append({"dc_luma": round(dc_luma, 2), "dc_chroma": round(dc_chroma, 2), "loss": loss, "bpp": rate,
                       "tables": (ll, lc)})
    best = min(scores, key=lambda r: r["loss"])
    return (*best["tables"], [{k: v for k, v in r.items() if k != "tables"} for r in scores])


def learn_tables(images: np.ndarray, labels: np.ndarray, bpp: float, *, subsampling: str = "4:2:0",
                 num_classes: Optional[int] = None, **settings) -> dict:
    """Learns a luma and a chroma base table on (images, labels) (the training split) for a payload of `bpp` bits
    per pixel: the least task loss at that rate.

    `settings` override `SETTINGS` (subset: images the tables are learned on, at most half the split; the
    classifier is trained on the other images; classifier_steps: its Adam steps; augment: JPEG-compressed copies
    it also trains on; steps, batch_size, lr: Adam on the log tables; dual_lr, init_lam: the dual ascent on lam
    (log lam += dual_lr * (rate / bpp - 1) each step); init_quality: the Annex K quality started from, "target":
    Annex K's shape scaled to `bpp`, or "flat": one step everywhere scaled to `bpp` (Annex K's shape starts the
    high frequencies at 255, where soft rounding has no gradient, and measured on camera the descent then drops a
    grating frequency a short-trained classifier needs); mode, surrogate: the codec's forward and the rounding whose
    gradient it uses (`jpeg.compress`; "exact" forward: see step 1 of the module); symmetric: entry (u, v) =
    (v, u); a list of starts is taken in turn by the descents; dc_search: DC steps chosen on the real codec
    (`choose_dc`); restarts: descents (starts, batch orders and fixed classifiers) of which the one fresh
    classifiers learn best from is kept; fresh_steps, fresh_seeds: those classifiers' Adam steps and how many are
    averaged; arch, width: the classifier; seed). Returns a JSON-able dict: `luma`, `chroma` (8x8 integer lists
    in [1, 255]), `bpp` (the target), `payload_bpp` (Pillow's, over the subset: at most `bpp`), `lam` (where the
    dual ascent ended), `offset` (the log scale the rate bisection applied), `subsampling`, `spearman` (the rate
    proxy against Pillow payload bits over the subset, at the learned tables), `proxy_bpp`, `calibration` (with
    `spearman_pooled`: over images and tables), the kept descent's fixed classifier: `classifier_seed`,
    `classifier_train_accuracy` (on its own raw images) and `classifier_accuracy` (on the raw images the tables are
    learned on, which it never saw), `restarts` (every descent's tables, scores and classifier), `final_task_loss`
    (of the descent's last batch, the codec of `mode`), `dc_choices` (each DC pair's loss on the real codec),
    `steps`, `seconds`, `settings` and `data` (the digest of images and labels).
    """
    bpp = check_bpp(bpp)
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise UserError(f"learn_tables: unknown settings {sorted(unknown)}; use {sorted(SETTINGS)}")
    s = dict(SETTINGS, **settings)
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int32)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels):
        raise UserError(f"learn_tables needs uint8 RGB images (N,H,W,3) and one label each, got "
                        f"{images.shape} {images.dtype} and {labels.shape}")
    t0 = time.perf_counter()
    num_classes = int(num_classes or labels.max() + 1)
    digest = data_digest(images, labels)
    # Tables on `subset` images, the classifier on the rest of the split (half each when it is small): a loss on
    # images the classifier memorised would ask the tables to keep everything (measured on CIFAR-10: 2 bpp).
    order = np.random.default_rng(s["seed"]).permutation(len(images))
    n_tables = min(int(s["subset"]), max(1, len(images) // 2))
    pick, rest = order[:n_tables], order[n_tables:]
    x, y = images[pick], labels[pick]
    data_key = (digest, s["subset"], s["seed"])

    def classifier_of(restart: int):
        """The fixed classifier of one descent: (apply, variables, accuracy on its own raw images, accuracy on the
        tables' raw images), seed `seed + restart`. Each descent has its own, because one classifier that reads a
        few frequencies led every descent to the same failure (measured on camera, learning seed 1: all three
        descents at 0.6-0.7 bpp dropped the gratings)."""
        k = s["seed"] + restart

        def train():
            apply, variables, train_accuracy = _train_classifier(images[rest], labels[rest], num_classes, s["arch"],
                                                                 s["width"], s["classifier_steps"], s["batch_size"], k,
                                                                 s["augment"], subsampling)
            return apply, variables, train_accuracy, _accuracy(apply(variables, jnp.asarray(x, jnp.float32)), y)

        return _memo(("classifier", num_classes, s["arch"], s["width"], s["classifier_steps"], s["batch_size"],
                      s["augment"], subsampling, k) + data_key, train)

    apply = classifier_of(0)[0]  # the network's function: the same for every descent, only its variables differ
    calibration = _memo(("calibration", subsampling) + data_key, lambda: calibrate_rate(x, subsampling))
    pixels = float(x.shape[1] * x.shape[2])

    def start(kind):
        """The log tables a descent starts from (see `init_quality`)."""
        if kind == "flat":  # every entry equal: no frequency starts in the dead zone of the rounding
            tables = [np.full((8, 8), math.log(16.0), np.float32)] * 2
        else:
            tables = [np.log(scaled_table(base, 50 if kind == "target" else int(kind))).astype(np.float32)
                      for base in (LUMA_TABLE, CHROMA_TABLE)]
        if kind in ("flat", "target"):  # that shape, scaled to the target rate
            tables = [np.log(t).astype(np.float32) for t in meet_rate(x, *tables, bpp, subsampling)[:2]]
        return kind, tables

    kinds = s["init_quality"] if isinstance(s["init_quality"], (list, tuple)) else [s["init_quality"]]
    starts = [start(kind) for kind in kinds]
    optimizer = optax.adam(s["lr"])
    log_lam_range = tuple(math.log(v) for v in LAM_RANGE)

    # The proxy's rate, scaled every `CORRECT_EVERY` steps to Pillow's real payload at the current (rounded) tables
    # on a fixed sample: the proxy gives the direction, the real coder the level, so lam trades real bits.
    sample = x[:256]
    sample_coefs = dct_coefficients(sample, subsampling)

    def correction(theta):
        tables = _rounded(theta["luma"], theta["chroma"])
        real = payload_bits(sample, *tables, subsampling).mean()
        return jnp.float32(real / float(np.mean(proxy_bits(sample_coefs, *tables, calibration))))

    def loss_fn(theta, lam, variables, scale, xb, yb):
        luma, chroma = jnp.exp(theta["luma"]), jnp.exp(theta["chroma"])
        classifier = functools.partial(apply, variables)
        decoded = jax_compress(xb.astype(jnp.float32), 50.0, subsampling=subsampling, mode=s["mode"],
                               luma_table=luma, chroma_table=chroma, surrogate=s["surrogate"])
        task = optax.softmax_cross_entropy_with_integer_labels(classifier(decoded), yb).mean()
        rate = scale * proxy_bits(dct_coefficients(xb, subsampling), luma, chroma, calibration).mean() / pixels
        return task + lam * rate, (task, rate)

    @jax.jit
    def step(theta, opt_state, log_lam, variables, scale, xb, yb):
        grads, (task, rate) = jax.grad(loss_fn, has_aux=True)(theta, jnp.exp(log_lam), variables, scale, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state)
        theta = optax.apply_updates(theta, updates)
        theta = jax.tree_util.tree_map(lambda t: jnp.clip(t, 0.0, math.log(255.0)), theta)
        if s["symmetric"]:  # projected: entry (u, v) = entry (v, u)
            theta = jax.tree_util.tree_map(lambda t: 0.5 * (t + t.T), theta)
        # dual ascent: lam grows while the proxy rate is above target, shrinks below it
        log_lam = jnp.clip(log_lam + s["dual_lr"] * (rate / bpp - 1.0), *log_lam_range)
        return theta, opt_state, log_lam, (task, rate)

    def descend(restart: int):
        """One descent from the initial tables (batches drawn by its own seed), its DC steps and the rate met."""
        kind, init = starts[restart % len(starts)]
        _, variables, train_accuracy, accuracy = classifier_of(restart)
        theta = {"luma": jnp.asarray(init[0]), "chroma": jnp.asarray(init[1])}
        opt_state = optimizer.init(theta)
        rng = np.random.default_rng(s["seed"] + 1 + restart)
        log_lam = jnp.asarray(math.log(s["init_lam"]), jnp.float32)
        for i in range(int(s["steps"])):
            if i % CORRECT_EVERY == 0:
                scale = correction(theta)
            idx = rng.choice(len(x), min(s["batch_size"], len(x)), replace=False)
            theta, opt_state, log_lam, (task, rate) = step(theta, opt_state, log_lam, variables, scale, x[idx],
                                                           y[idx])
        log_luma, log_chroma = np.asarray(theta["luma"]), np.asarray(theta["chroma"])
        dc_choices = []
        if s["dc_search"]:
            log_luma, log_chroma, dc_choices = choose_dc(x, y, functools.partial(apply, variables), log_luma,
                                                         log_chroma, bpp, subsampling)
        luma, chroma, offset, payload_bpp = meet_rate(x, log_luma, log_chroma, bpp, subsampling)
        return dict(init=kind, luma=luma, chroma=chroma, offset=float(offset), payload_bpp=float(payload_bpp),
                    lam=float(jnp.exp(log_lam)), final_task_loss=float(task), dc_choices=dc_choices,
                    classifier_seed=s["seed"] + restart, classifier_train_accuracy=float(train_accuracy),
                    classifier_accuracy=float(accuracy))

    def fresh_score(candidate) -> dict:
        """Classifiers trained from scratch on the other images coded with these tables (as the sweep's are, and
        for as few steps: `fresh_steps`), scored on the tables' images coded alike, mean over `fresh_seeds`: which
        of several descents a fresh classifier learns best from. Why short: measured on camera, after 600 steps
        every candidate scores 99.5-100% and the choice is blind, while after 170 (the sweep's 6 epochs) tables
        of one rate differ by 5 points, as they do in the sweep."""
        tables = {"luma": candidate["luma"], "chroma": candidate["chroma"]}
        train = compress_with_tables(images[rest], tables, subsampling).data
        held = jnp.asarray(compress_with_tables(x, tables, subsampling).data, jnp.float32)
        losses, accuracies = [], []
        for k in range(max(1, int(s["fresh_seeds"]))):
            fresh_apply, fresh_vars, _ = _train_classifier(train, labels[rest], num_classes, s["arch"], s["width"],
                                                           s["fresh_steps"], s["batch_size"], s["seed"] + k, 0,
                                                           subsampling)
            logits = fresh_apply(fresh_vars, held)
            losses.append(float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()))
            accuracies.append(_accuracy(logits, y))
        return {"fresh_loss": float(np.mean(losses)), "fresh_accuracy": float(np.mean(accuracies))}

    candidates = [descend(r) for r in range(max(1, int(s["restarts"])))]
    if len(candidates) > 1:
        for candidate in candidates:
            candidate.update(fresh_score(candidate))
    best = min(candidates, key=lambda c: c.get("fresh_loss", 0.0))
    luma, chroma = best["luma"], best["chroma"]
    real = payload_bits(x, luma, chroma, subsampling)
    proxy = np.asarray(proxy_bits(dct_coefficients(x, subsampling), luma, chroma, calibration))
    return {
        "format": FORMAT, "luma": luma.tolist(), "chroma": chroma.tolist(), "bpp": bpp, "subsampling": subsampling,
        "payload_bpp": best["payload_bpp"], "lam": best["lam"], "offset": best["offset"],
        "spearman": float(stats.spearmanr(proxy, real)[0]), "proxy_bpp": float(proxy.mean() / pixels),
        "final_task_loss": best["final_task_loss"], "calibration": calibration, "dc_choices": best["dc_choices"],
        "restarts": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items() if k != "dc_choices"}
                     for c in candidates],
        "classifier_seed": best["classifier_seed"], "classifier_train_accuracy": best["classifier_train_accuracy"],
        "classifier_accuracy": best["classifier_accuracy"], "steps": int(s["steps"]),
        "seconds": round(time.perf_counter() - t0, 2), "settings": s, "data": digest,
    }


# ------------------------------------------------------------------------------------------- the quantizer


def fit(x_train: np.ndarray, y_train: np.ndarray, level, subsampling: str = "4:2:0", **settings) -> dict:
    """The registry's fit hook: the tables for `level` payload bits per pixel, learned on the training split."""
    return learn_tables(x_train, y_train, level, subsampling=subsampling, **settings)


def _registry_compress(images: np.ndarray, level, subsampling: str = "4:2:0", fitted: Optional[dict] = None):
    """Registry entry `learned_jpeg`: real JPEG files with the tables fitted for `level` payload bits per pixel."""
    if fitted is None:
        raise UserError("learned_jpeg needs tables learned on training data: pass fitted=learned_jpeg.fit(x_train, "
                        "y_train, bpp) to registry.apply, or run it in a sweep (which fits on the train split)")
    if float(fitted.get("bpp", float("nan"))) != float(level):
        raise UserError(f"learned_jpeg: tables fitted for {fitted.get('bpp')} bits per pixel were given for level "
                        f"{level}")
    if fitted.get("subsampling", subsampling) != subsampling:
        raise UserError(f"learned_jpeg: tables fitted for subsampling {fitted.get('subsampling')} were given for "
                        f"{subsampling}")
    return compress_with_tables(images, fitted, subsampling)


register("learned_jpeg", _registry_compress, modality="image", level_name="target_bpp", level_range=BPP_RANGE,
         level_type="float", more_compression="lower", label="target payload bits per pixel of learned JPEG tables",
         prefix="bpp", step=None, fit=fit,
         version=f"4 (settings {json.dumps(SETTINGS, sort_keys=True)}; {pillow_jpeg.LIBRARY})",
         description="JPEG with luma and chroma tables learned on the training split for the least task loss at a "
                     "target payload rate (real files through Pillow qtables=)")
