"""From a descent's log tables to integer tables, on the real codec: the DC steps and the rate.

The descent's proxy and soft rounding settle neither: the DC steps are chosen by the classifier's loss on Pillow's
pixels (`choose_dc`), and the tables are rounded to integers in [1, 255] and scaled together until Pillow's payload
meets the target (`meet_rate`), so that a level is a true rate.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np
import optax

from helmjax.errors import UserError
from helmjax.quantizers.learned_jpeg.files import compress_with_tables, payload_bits

DC_CANDIDATES = (4, 16, 64)  # DC steps tried on the real codec (luma x chroma), besides the descent's own


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
