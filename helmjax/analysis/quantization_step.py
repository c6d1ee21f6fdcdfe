"""N_approx: how coarse the quantizer is at a level, in the quantizer's own units.

For JPEG (level_name "quality") it is the IJG quality scale factor and the mean entry of the scaled Annex K
luminance and chrominance tables, computed exactly as libjpeg's `jpeg_quality_scaling` and
`jpeg_add_quant_table` (force_baseline) do. For bit depth it is the step 2^(8 - bits). For MP3 ("kbps") the
codec has no single step; the bits per sample (bits per second / sample rate) stand in for it.
"""

from typing import Optional

import numpy as np

from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, ijg_scale_factor, scaled_table  # noqa: F401

# Kept under these names for the analysis' callers.
LUMINANCE_TABLE, CHROMINANCE_TABLE = LUMA_TABLE, CHROMA_TABLE


def jpeg_step(quality: int) -> dict:
    return {
        "scale_percent": ijg_scale_factor(quality),
        "mean_luminance_step": float(scaled_table(LUMINANCE_TABLE, quality).mean()),
        "mean_chrominance_step": float(scaled_table(CHROMINANCE_TABLE, quality).mean()),
    }


def n_approx(level_name: str, level, *, bits_per_second: Optional[float] = None,
             sample_rate: Optional[float] = None) -> Optional[dict]:
    """N_approx at a numeric level as a small dict of named figures, or None when it is not defined."""
    if level is None or isinstance(level, str):
        return None
    if level_name == "quality":
        return jpeg_step(int(round(level)))
    if level_name == "bits":
        return {"step": float(2.0 ** (8 - float(level)))}
    if level_name == "kbps":
        rate = bits_per_second if bits_per_second is not None and np.isfinite(bits_per_second) else 1000.0 * level
        if sample_rate:
            return {"bits_per_sample": float(rate) / float(sample_rate), "sample_rate": int(sample_rate)}
        return None
    return None
