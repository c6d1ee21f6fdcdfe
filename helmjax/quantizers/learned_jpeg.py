"""Learned JPEG: a luma and a chroma quantization table learned for a task, stored as standard JPEG files.

`learn_tables(x_train, y_train, lam)` descends on the two 8x8 base tables through the differentiable JAX JPEG
(`jpeg.compress(..., mode="cubic")`) to minimise task loss + lam * rate, where the rate is a smooth proxy of the
JPEG payload in bits per pixel, calibrated by least squares against Pillow's real payload bits on the training
images. The tables are rounded to integers in [1, 255]; the quantizer `learned_jpeg` then writes real JPEG files
with them (Pillow `qtables=`), so its bits are true file sizes and its pixels are what any decoder returns (equal
to `jpeg.compress(..., mode="exact", quality=50, ...)` with the same tables: quality 50 uses tables as given).

The task loss comes from a fixed classifier trained on raw training images (other ones than the tables are learned
on, so its loss reflects what generalises, not what it memorised), not one trained jointly with the tables: jointly,
the tables would co-adapt to that one network (it learns to read whatever the tables keep), while the sweep asks
what a fresh classifier trained from scratch on the compressed copy can learn. A fixed network
trained on raw data says which image content the task uses, independent of any codec.

In a sweep the level is lam (higher compresses more). The tables are learned once per level on the training split
only (the registry's `fit` hook, called by `helmjax.sweeps.quantized_data.quantize`), saved with the sweep as JSON
(`<sweep>/cache/fitted/`) and reused for the test split. From user code:

    state = learned_jpeg.learn_tables(x_train, y_train, lam=0.05)     # or load_tables(path_of_a_sweeps_json)
    out = learned_jpeg.compress_with_tables(x_test, state)            # Quantized: pixels, file and payload bits
"""

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

FORMAT = 1  # of the tables' JSON record
LAM_RANGE = (0.0, 1000.0)  # lam: task-loss nats per payload bit per pixel
# Annex K qualities whose tables (with random ones) calibrate the rate proxy: the span of rates learned tables reach.
CALIBRATION_QUALITIES = (3, 5, 10, 20, 35, 50, 75, 90)
# Payload bits per bit of DC difference magnitude (Huffman size code + amplitude bits): measured by changing
# only the DC entries of Annex K q10 tables on camera images (1.7-1.9); fixed, because a free fit confounds it
# with the AC features and returns 0, and a proxy blind to DC learns DC steps of 1.
DC_WEIGHT = 1.8
# How the tables are learned; part of the fitted state's key, so changing one relearns.
SETTINGS = dict(subset=1000, classifier_steps=600, steps=200, batch_size=64, lr=0.05, init_quality=50,
                mode="cubic", arch="A", width=0.25, seed=0)


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


def rate_features(coefs: list, luma, chroma):
    """(N, 3) smooth features of the coded size, after JPEG's entropy coder: a soft count of nonzero AC
    coefficients (each costs a Huffman run/size code), their magnitude bits (log2(1 + |c/q|) counted where
    nonzero: the appended amplitude bits), and the DC differences' magnitude bits (size code + amplitude)."""
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
        features = features + jnp.stack([nonzero.sum(axis=(0, 1, 3, 4)), magnitude.sum(axis=(0, 1, 3, 4)),
                                         dc_bits], axis=1)
    return features


def calibration_tables(seed: int = 0, count: int = 8) -> list:
    """(luma, chroma) pairs the proxy is calibrated on: the Annex K tables at `CALIBRATION_QUALITIES` and `count`
    random tables (entries log-uniform in [1, 255]), so that DC, low and high frequencies vary independently, as
    they do along a descent (an Annex K ladder alone moves them together and leaves their weights confounded)."""
    rng = np.random.default_rng(seed)
    tables = [(scaled_table(LUMA_TABLE, q), scaled_table(CHROMA_TABLE, q)) for q in CALIBRATION_QUALITIES]
    return tables + [tuple(np.clip(np.round(np.exp(rng.uniform(0.0, math.log(255.0), (8, 8)))), 1, 255).astype(int)
                           for _ in range(2)) for _ in range(count)]


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
    design = np.concatenate([design[:, :2], np.ones((len(design), 1))], axis=1)
    solution, _ = optimize.nnls(design / target[:, None], rest / target)
    weights = [float(solution[0]), float(solution[1]), DC_WEIGHT]
    proxy = np.concatenate(rows) @ np.asarray(weights) + solution[2]
    return {"weights": weights, "intercept": float(solution[2]),
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


def _standardize(images, mean, std):
    return (images / 255.0 - mean) / std


# In-process memo: every lam of one dataset shares its classifier and rate calibration (keyed by data digest and
# the settings they depend on), so a sweep over lam trains the classifier once.
_MEMO: dict = {}


def _memo(key: tuple, make):
    if key not in _MEMO:
        if len(_MEMO) > 8:
            _MEMO.clear()
        _MEMO[key] = make()
    return _MEMO[key]


def _train_classifier(images, labels, num_classes, arch, width, steps, batch_size, seed):
    """The project's CIFAR net (`arch` at `width`, no dropout) trained on raw images with Adam; returns
    (apply_fn(images float [0,255]) -> logits, train accuracy)."""
    from helmjax import models
    model = models.build("image", arch, num_classes, width=width, dropout=0.0)
    x = np.asarray(images, np.float32)
    mean, std = x.mean(axis=(0, 1, 2)) / 255.0, x.std(axis=(0, 1, 2)) / 255.0 + 1e-6
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
        params, opt_state = step(params, opt_state, x[idx], labels[idx])

    def apply(images):
        return model.apply(params, _standardize(images, mean, std), train=False)

    predictions = np.concatenate([np.asarray(jnp.argmax(jax.jit(apply)(x[i:i + 500]), -1))
                                  for i in range(0, len(x), 500)])
    return apply, float(np.mean(predictions == labels))  # on its own training images


# ------------------------------------------------------------------------------------------------ learning


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """Content hash of the images and labels the tables are learned from."""
    h = hashlib.sha256()
    for a in (np.asarray(images), np.asarray(labels)):
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()[:20]


def check_lam(lam) -> float:
    low, high = LAM_RANGE
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(lam)) or not low <= float(lam) <= high:
        raise UserError(f"learned_jpeg: lam {lam!r} must be a number in [{low:g}, {high:g}] (the rate's weight: "
                        f"task-loss nats per payload bit per pixel; higher compresses more)")
    return float(lam)


def learn_tables(images: np.ndarray, labels: np.ndarray, lam: float, *, subsampling: str = "4:2:0",
                 num_classes: Optional[int] = None, **settings) -> dict:
    """Learns a luma and a chroma base table on (images, labels) (the training split) for rate weight `lam`.

    `settings` override `SETTINGS` (subset: images the tables are learned on, at most half the split; the
    classifier is trained on the other images; classifier_steps: Adam steps of the fixed raw-trained classifier;
    steps, batch_size, lr: Adam on the log tables; init_quality: the Annex K tables started from; mode: the
    codec's soft rounding; arch, width: the classifier; seed). Returns a JSON-able dict: `luma`, `chroma` (8x8
    integer lists in [1, 255]), `lam`, `subsampling`, `spearman` (the rate proxy against Pillow payload bits over
    the subset, at the learned tables: how well it ranks images whose sizes differ little), `payload_bpp` and
    `proxy_bpp` there, `calibration` (with `spearman_pooled`: over images and tables), `classifier_train_accuracy`
    (on its own images) and `classifier_accuracy` (on the raw images the tables are learned on, which it never
    saw), `final_task_loss`, `steps`, `seconds`, `settings` and `data` (the digest of images and labels).
    """
    lam = check_lam(lam)
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
    classifier, train_accuracy = _memo(
        ("classifier", num_classes, s["arch"], s["width"], s["classifier_steps"], s["batch_size"]) + data_key,
        lambda: _train_classifier(images[rest], labels[rest], num_classes, s["arch"], s["width"],
                                  s["classifier_steps"], s["batch_size"], s["seed"]))
    calibration = _memo(("calibration", subsampling) + data_key, lambda: calibrate_rate(x, subsampling))
    pixels = float(x.shape[1] * x.shape[2])
    init = [np.log(scaled_table(base, s["init_quality"]).astype(np.float32)) for base in (LUMA_TABLE, CHROMA_TABLE)]
    theta = {"luma": jnp.asarray(init[0]), "chroma": jnp.asarray(init[1])}
    optimizer = optax.adam(s["lr"])
    opt_state = optimizer.init(theta)

    def loss_fn(theta, xb, yb):
        luma, chroma = jnp.exp(theta["luma"]), jnp.exp(theta["chroma"])
        decoded = jax_compress(xb.astype(jnp.float32), 50.0, subsampling=subsampling, mode=s["mode"],
                               luma_table=luma, chroma_table=chroma)
        task = optax.softmax_cross_entropy_with_integer_labels(classifier(decoded), yb).mean()
        rate = proxy_bits(dct_coefficients(xb, subsampling), luma, chroma, calibration).mean() / pixels
        return task + lam * rate, (task, rate)

    @jax.jit
    def step(theta, opt_state, xb, yb):
        grads, aux = jax.grad(loss_fn, has_aux=True)(theta, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state)
        theta = optax.apply_updates(theta, updates)
        theta = jax.tree_util.tree_map(lambda t: jnp.clip(t, 0.0, math.log(255.0)), theta)
        return theta, opt_state, aux

    rng = np.random.default_rng(s["seed"] + 1)
    for _ in range(int(s["steps"])):
        idx = rng.choice(len(x), min(s["batch_size"], len(x)), replace=False)
        theta, opt_state, (task, rate) = step(theta, opt_state, x[idx], y[idx])
    luma, chroma = (np.clip(np.round(np.exp(np.asarray(theta[k]))), 1, 255).astype(int) for k in ("luma", "chroma"))
    real = payload_bits(x, luma, chroma, subsampling)
    proxy = np.asarray(proxy_bits(dct_coefficients(x, subsampling), luma, chroma, calibration))
    return {
        "format": FORMAT, "luma": luma.tolist(), "chroma": chroma.tolist(), "lam": lam, "subsampling": subsampling,
        "spearman": float(stats.spearmanr(proxy, real)[0]), "payload_bpp": float(real.mean() / pixels),
        "proxy_bpp": float(proxy.mean() / pixels), "final_task_loss": float(task), "calibration": calibration,
        "classifier_train_accuracy": train_accuracy, "steps": int(s["steps"]),
        "classifier_accuracy": float(np.mean(np.argmax(np.asarray(classifier(jnp.asarray(x, jnp.float32))), -1) == y)),
        "seconds": round(time.perf_counter() - t0, 2), "settings": s, "data": digest,
    }


# ------------------------------------------------------------------------------------------- the quantizer


def fit(x_train: np.ndarray, y_train: np.ndarray, level, subsampling: str = "4:2:0", **settings) -> dict:
    """The registry's fit hook: the tables for lam = `level`, learned on the training split."""
    return learn_tables(x_train, y_train, level, subsampling=subsampling, **settings)


def _registry_compress(images: np.ndarray, level, subsampling: str = "4:2:0", fitted: Optional[dict] = None):
    """Registry entry `learned_jpeg`: real JPEG files with the tables fitted for lam = `level`."""
    if fitted is None:
        raise UserError("learned_jpeg needs tables learned on training data: pass fitted=learned_jpeg.fit(x_train, "
                        "y_train, lam) to registry.apply, or run it in a sweep (which fits on the train split)")
    if float(fitted.get("lam", float("nan"))) != float(level):
        raise UserError(f"learned_jpeg: tables fitted for lam={fitted.get('lam')} were given for level {level}")
    if fitted.get("subsampling", subsampling) != subsampling:
        raise UserError(f"learned_jpeg: tables fitted for subsampling {fitted.get('subsampling')} were given for "
                        f"{subsampling}")
    return compress_with_tables(images, fitted, subsampling)


register("learned_jpeg", _registry_compress, modality="image", level_name="lambda", level_range=LAM_RANGE,
         level_type="float", more_compression="higher", label="rate weight λ of learned JPEG tables", prefix="lam",
         step=None, fit=fit, version=f"2 (settings {json.dumps(SETTINGS, sort_keys=True)}; {pillow_jpeg.LIBRARY})",
         description="JPEG with luma and chroma tables learned on the training split for task loss + λ·rate "
                     "(real files through Pillow qtables=)")
