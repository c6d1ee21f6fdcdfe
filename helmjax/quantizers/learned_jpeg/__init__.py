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

The package: `files` (real JPEG files with the tables, and their JSON record), `rate` (the rate proxy and its
calibration), `classifiers` (the fixed classifiers a descent learns against, the fresh ones that pick a descent),
`rounding` (DC steps and rate met on the real codec), `learning` (the descent and `learn_tables`), and here the
quantizer's registration.
"""

import json
from typing import Optional

import numpy as np

from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg
from helmjax.quantizers.learned_jpeg.classifiers import (_train_classifier, compressed_copies,  # noqa: F401 (public)
                                                         fixed_classifier, fresh_score)
from helmjax.quantizers.learned_jpeg.files import (compress_with_tables, encode, load_tables,  # noqa: F401 (public)
                                                   payload_bits, save_tables)
from helmjax.quantizers.learned_jpeg.learning import (BPP_RANGE, CORRECT_EVERY, FORMAT, LAM_RANGE,  # noqa: F401
                                                      SETTINGS, check_bpp, data_digest, learn_tables)
from helmjax.quantizers.learned_jpeg.rate import (CALIBRATION_QUALITIES, DC_WEIGHT, ZIGZAG,  # noqa: F401 (public)
                                                  calibrate_rate, calibration_tables, dct_coefficients, proxy_bits,
                                                  proxy_spearman, random_tables, rate_features)
from helmjax.quantizers.learned_jpeg.rounding import DC_CANDIDATES, _rounded, choose_dc, meet_rate  # noqa: F401
from helmjax.quantizers.registry import register


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
