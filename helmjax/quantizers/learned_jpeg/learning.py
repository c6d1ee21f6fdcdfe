"""Learning the tables: `learn_tables` and the descent on the log tables it runs once per restart.

The steps (the package docstring says why each is there): cut the split (`split_for_tables`), make what every
descent shares (`plan_descents`), run each descent and settle its DC steps and rate on the real codec (`descend`),
score the descents with fresh classifiers (`fresh_score`) and record the best (`tables_state`).
"""

import dataclasses
import functools
import math
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from helmjax.digests import content_digest
from helmjax.errors import UserError
from helmjax.quantizers.jpeg import compress as jax_compress
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, scaled_table
from helmjax.quantizers.learned_jpeg.classifiers import Split, _memo, fixed_classifier, fresh_score, split_for_tables
from helmjax.quantizers.learned_jpeg.files import payload_bits
from helmjax.quantizers.learned_jpeg.rate import calibrate_rate, dct_coefficients, proxy_bits
from helmjax.quantizers.learned_jpeg.rounding import _rounded, choose_dc, meet_rate

FORMAT = 2  # of the tables' JSON record
BPP_RANGE = (0.02, 16.0)  # the level: target payload bits per pixel
LAM_RANGE = (1e-4, 1e3)  # where dual ascent may take lam (task-loss nats per payload bit per pixel)
CORRECT_EVERY = 20  # steps between measurements of the real payload during the descent
RATE_SAMPLE = 256  # the tables' images the proxy is rescaled to Pillow's payload on
# How the tables are learned; part of the fitted state's key, so changing one relearns.
SETTINGS = dict(subset=1000, classifier_steps=600, augment=2, steps=300, batch_size=64, lr=0.05, dual_lr=0.05,
                init_lam=0.1, init_quality="flat", mode="exact", surrogate="cubic", symmetric=True, dc_search=True,
                restarts=6, fresh_steps=170, fresh_seeds=2, arch="A", width=0.25, seed=0)


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """Content hash of the images and labels the tables are learned from (the project's one rule)."""
    return content_digest((images, labels))


def check_bpp(bpp) -> float:
    low, high = BPP_RANGE
    if isinstance(bpp, bool) or not isinstance(bpp, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(bpp)) or not low <= float(bpp) <= high:
        raise UserError(f"learned_jpeg: target {bpp!r} must be a number of payload bits per pixel in "
                        f"[{low:g}, {high:g}] (lower compresses more)")
    return float(bpp)


def _checked_settings(settings: dict) -> dict:
    """`SETTINGS` with the caller's overrides; an unknown name is a user's typo, refused before any work."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise UserError(f"learn_tables: unknown settings {sorted(unknown)}; use {sorted(SETTINGS)}")
    return dict(SETTINGS, **settings)


def _checked_data(images, labels) -> tuple:
    """uint8 RGB images and int32 labels, one each, or a one-line error naming what came instead."""
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int32)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) != len(labels):
        raise UserError(f"learn_tables needs uint8 RGB images (N,H,W,3) and one label each, got "
                        f"{images.shape} {images.dtype} and {labels.shape}")
    return images, labels


def start_tables(kind, images: np.ndarray, bpp: float, subsampling: str) -> tuple:
    """(kind, log tables) a descent starts from (see `init_quality`): "flat" or "target" scaled to the rate of
    `bpp` on `images`, or the Annex K tables at quality `kind`."""
    if kind == "flat":  # every entry equal: no frequency starts in the dead zone of the rounding
        tables = [np.full((8, 8), math.log(16.0), np.float32)] * 2
    else:
        tables = [np.log(scaled_table(base, 50 if kind == "target" else int(kind))).astype(np.float32)
                  for base in (LUMA_TABLE, CHROMA_TABLE)]
    if kind in ("flat", "target"):  # that shape, scaled to the target rate
        tables = [np.log(t).astype(np.float32) for t in meet_rate(images, *tables, bpp, subsampling)[:2]]
    return kind, tables


@dataclasses.dataclass(frozen=True)
class Descent:
    """What the descents of one `learn_tables` call share: settings `s`, target `bpp`, the split, the fixed
    classifiers' network function (`apply`: only their variables differ), the proxy's calibration, the starts
    taken in turn, the optimizer, and the sample (with its DCT) the proxy is rescaled to the real payload on."""
    s: dict
    bpp: float
    subsampling: str
    num_classes: int
    split: Split
    apply: Callable
    calibration: dict
    starts: list
    optimizer: optax.GradientTransformation
    sample: np.ndarray
    sample_coefs: list

    @property
    def pixels(self) -> float:
        return float(self.split.x.shape[1] * self.split.x.shape[2])


def plan_descents(split: Split, num_classes: int, s: dict, bpp: float, subsampling: str) -> Descent:
    """The shared parts, made once: the first fixed classifier (for its network function) and the calibration come
    from the memo when another level of this dataset made them."""
    apply = fixed_classifier(split, num_classes, s, subsampling, 0)[0]
    calibration = _memo(("calibration", subsampling) + split.key,
                        functools.partial(calibrate_rate, split.x, subsampling))
    kinds = s["init_quality"] if isinstance(s["init_quality"], (list, tuple)) else [s["init_quality"]]
    starts = [start_tables(kind, split.x, bpp, subsampling) for kind in kinds]
    optimizer = optax.adam(s["lr"])
    sample = split.x[:RATE_SAMPLE]
    return Descent(s, bpp, subsampling, num_classes, split, apply, calibration, starts, optimizer, sample,
                   dct_coefficients(sample, subsampling))


def descent_loss(plan: Descent, theta, lam, variables, scale, xb, yb):
    """Task loss + lam * rate at tables exp(theta): the fixed classifier's cross-entropy on the codec's pixels
    (exact forward, soft gradient: `mode`, `surrogate`), the proxy's bits per pixel rescaled by `scale` to the
    real payload; (loss, (task, rate))."""
    luma, chroma = jnp.exp(theta["luma"]), jnp.exp(theta["chroma"])
    classifier = functools.partial(plan.apply, variables)
    decoded = jax_compress(xb.astype(jnp.float32), 50.0, subsampling=plan.subsampling, mode=plan.s["mode"],
                           luma_table=luma, chroma_table=chroma, surrogate=plan.s["surrogate"])
    task = optax.softmax_cross_entropy_with_integer_labels(classifier(decoded), yb).mean()
    rate = scale * proxy_bits(dct_coefficients(xb, plan.subsampling), luma, chroma,
                              plan.calibration).mean() / plan.pixels
    return task + lam * rate, (task, rate)


def descent_step(plan: Descent, theta, opt_state, log_lam, variables, scale, xb, yb):
    """One Adam step on the log tables, projected back into [1, 255] (and onto symmetric tables), and one dual
    ascent step on log lam, so that the rate is pushed towards the target from either side."""
    grads, (task, rate) = jax.grad(functools.partial(descent_loss, plan), has_aux=True)(
        theta, jnp.exp(log_lam), variables, scale, xb, yb)
    updates, opt_state = plan.optimizer.update(grads, opt_state)
    theta = optax.apply_updates(theta, updates)
    theta = jax.tree_util.tree_map(lambda t: jnp.clip(t, 0.0, math.log(255.0)), theta)
    if plan.s["symmetric"]:  # projected: entry (u, v) = entry (v, u)
        theta = jax.tree_util.tree_map(lambda t: 0.5 * (t + t.T), theta)
    # dual ascent: lam grows while the proxy rate is above target, shrinks below it
    log_lam = jnp.clip(log_lam + plan.s["dual_lr"] * (rate / plan.bpp - 1.0), *(math.log(v) for v in LAM_RANGE))
    return theta, opt_state, log_lam, (task, rate)


def rate_scale(plan: Descent, theta):
    """Real payload per proxy bit on the sample at the current (rounded) tables: the proxy gives the direction,
    the real coder the level, so lam trades real bits."""
    tables = _rounded(theta["luma"], theta["chroma"])
    real = payload_bits(plan.sample, *tables, plan.subsampling).mean()
    return jnp.float32(real / float(np.mean(proxy_bits(plan.sample_coefs, *tables, plan.calibration))))


def run_descent(plan: Descent, step: Callable, init: list, variables, seed: int) -> tuple:
    """`steps` jitted `step`s from log tables `init` on batches drawn by `seed`, the rate rescaled every
    `CORRECT_EVERY`; (log tables, log lam, task loss of the last batch)."""
    x, y = plan.split.x, plan.split.y
    theta = {"luma": jnp.asarray(init[0]), "chroma": jnp.asarray(init[1])}
    opt_state = plan.optimizer.init(theta)
    rng = np.random.default_rng(seed)
    log_lam = jnp.asarray(math.log(plan.s["init_lam"]), jnp.float32)
    for i in range(int(plan.s["steps"])):
        if i % CORRECT_EVERY == 0:
            scale = rate_scale(plan, theta)
        idx = rng.choice(len(x), min(plan.s["batch_size"], len(x)), replace=False)
        theta, opt_state, log_lam, (task, rate) = step(theta, opt_state, log_lam, variables, scale, x[idx], y[idx])
    return theta, log_lam, task


def descend(plan: Descent, step: Callable, restart: int) -> dict:
    """One candidate: a descent from its start against its own fixed classifier (seed `seed + restart`), then
    its DC steps chosen and its rate met on the real codec."""
    x, y, s = plan.split.x, plan.split.y, plan.s
    kind, init = plan.starts[restart % len(plan.starts)]
    _, variables, train_accuracy, accuracy = fixed_classifier(plan.split, plan.num_classes, s, plan.subsampling,
                                                              restart)
    theta, log_lam, task = run_descent(plan, step, init, variables, s["seed"] + 1 + restart)
    log_luma, log_chroma = np.asarray(theta["luma"]), np.asarray(theta["chroma"])
    dc_choices = []
    if s["dc_search"]:
        log_luma, log_chroma, dc_choices = choose_dc(x, y, functools.partial(plan.apply, variables), log_luma,
                                                     log_chroma, plan.bpp, plan.subsampling)
    luma, chroma, offset, payload_bpp = meet_rate(x, log_luma, log_chroma, plan.bpp, plan.subsampling)
    return dict(init=kind, luma=luma, chroma=chroma, offset=float(offset), payload_bpp=float(payload_bpp),
                lam=float(jnp.exp(log_lam)), final_task_loss=float(task), dc_choices=dc_choices,
                classifier_seed=s["seed"] + restart, classifier_train_accuracy=float(train_accuracy),
                classifier_accuracy=float(accuracy))


def tables_state(plan: Descent, candidates: list, best: dict, digest: str, t0: float) -> dict:
    """The JSON-able record of the kept candidate `best` (see `learn_tables`), with every candidate's summary and
    the proxy's rank correlation with the real payload at the kept tables."""
    x, luma, chroma = plan.split.x, best["luma"], best["chroma"]
    real = payload_bits(x, luma, chroma, plan.subsampling)
    proxy = np.asarray(proxy_bits(dct_coefficients(x, plan.subsampling), luma, chroma, plan.calibration))
    return {
        "format": FORMAT, "luma": luma.tolist(), "chroma": chroma.tolist(), "bpp": plan.bpp,
        "subsampling": plan.subsampling, "payload_bpp": best["payload_bpp"], "lam": best["lam"],
        "offset": best["offset"], "spearman": float(stats.spearmanr(proxy, real)[0]),
        "proxy_bpp": float(proxy.mean() / plan.pixels), "final_task_loss": best["final_task_loss"],
        "calibration": plan.calibration, "dc_choices": best["dc_choices"],
        "restarts": [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in c.items() if k != "dc_choices"}
                     for c in candidates],
        "classifier_seed": best["classifier_seed"], "classifier_train_accuracy": best["classifier_train_accuracy"],
        "classifier_accuracy": best["classifier_accuracy"], "steps": int(plan.s["steps"]),
        "seconds": round(time.perf_counter() - t0, 2), "settings": plan.s, "data": digest,
    }


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
    s = _checked_settings(settings)
    images, labels = _checked_data(images, labels)
    t0 = time.perf_counter()
    num_classes = int(num_classes or labels.max() + 1)
    digest = data_digest(images, labels)
    split = split_for_tables(images, labels, digest, s["subset"], s["seed"])
    plan = plan_descents(split, num_classes, s, bpp, subsampling)
    step = jax.jit(functools.partial(descent_step, plan))  # compiled once for every descent of this call
    candidates = [descend(plan, step, r) for r in range(max(1, int(s["restarts"])))]
    if len(candidates) > 1:
        for candidate in candidates:
            tables = {"luma": candidate["luma"], "chroma": candidate["chroma"]}
            candidate.update(fresh_score(tables, split, num_classes, s, subsampling))
    best = min(candidates, key=lambda c: c.get("fresh_loss", 0.0))
    return tables_state(plan, candidates, best, digest, t0)
