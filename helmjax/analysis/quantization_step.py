"""N_approx: how coarse the quantizer is at a level, in the quantizer's own units.

For JPEG (level_name "quality") it is the IJG quality scale factor and the mean entry of the scaled Annex K
luminance and chrominance tables, computed exactly as libjpeg's `jpeg_quality_scaling` and
`jpeg_add_quant_table` (force_baseline) do. For bit depth it is the step 2^(8 - bits). For MP3 ("kbps") the
codec has no single step; the bits per sample (bits per second / sample rate) stand in for it.
"""

from typing import Optional

import numpy as np

# ITU-T T.81 Annex K tables K.1 (luminance) and K.2 (chrominance), row-major natural order.
LUMINANCE_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99], np.int64).reshape(8, 8)
CHROMINANCE_TABLE = np.array([
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99], np.int64).reshape(8, 8)


def ijg_scale_factor(quality: int) -> int:
    """libjpeg's quality -> table scale in percent (integer division, q clamped to [1, 100])."""
    quality = min(max(int(quality), 1), 100)
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled_table(base: np.ndarray, quality: int) -> np.ndarray:
    """The quantization table libjpeg writes at `quality` (baseline: entries clamped to [1, 255])."""
    scale = ijg_scale_factor(quality)
    return np.clip((base * scale + 50) // 100, 1, 255)


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
