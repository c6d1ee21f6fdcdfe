"""How much noise an image set carries, from the images alone (no classifier, no knowledge of the sensor).

`estimate_sigma`: the noise standard deviation in grey levels, by scikit-image's wavelet estimator (the median
absolute deviation of the finest diagonal detail coefficients, Donoho & Johnstone 1994). `noise_matched_quality`:
q_N, the JPEG quality at which JPEG's mean squared error against its input equals that noise variance, so that a
report can say "the images carry about sigma grey levels of noise; JPEG removes that much at q_N". Both are pure
functions of uint8 (N, H, W, C) arrays and read a deterministic, evenly spaced sample of the images.
"""

import dataclasses
import math
import warnings
from typing import Optional, Tuple

import numpy as np

from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg

QUALITIES = tuple(range(1, 101))  # every quality libjpeg accepts: MSE is searched at each one, not bisected


def _images(images: np.ndarray, who: str) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise UserError(f"{who} needs uint8 images, got {images.dtype}; convert with np.uint8 first")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise UserError(f"{who} needs a non-empty (N,H,W), (N,H,W,1) or (N,H,W,3) batch, got shape {images.shape}")
    return images


def _sample(images: np.ndarray, sample: int) -> np.ndarray:
    """An evenly spaced, deterministic subset of at most `sample` images (all of them when fewer)."""
    if sample < 1:
        raise UserError(f"sample must be >= 1, got {sample}")
    if len(images) <= sample:
        return images
    return images[np.linspace(0, len(images) - 1, sample).round().astype(np.int64)]


def estimate_sigma(images: np.ndarray, sample: int = 256) -> float:
    """The noise standard deviation of uint8 images in grey levels, estimated from the images alone.

    scikit-image's `restoration.estimate_sigma` (wavelet MAD, db2) per image and channel, combined as the root of
    the mean variance over images and channels (the same mean a squared error over RGB takes). The estimator sees
    the noise relative to the smooth scene, so 8-bit rounding counts as noise: a noise-free 8-bit image still gives
    about 1/sqrt(12) ~ 0.3 grey levels. Images whose finest detail coefficients are all zero (flat) give no
    estimate and are skipped; if all are, the result is 0."""
    from skimage import restoration  # scikit-image (and PyWavelets, which it needs here) load only when used

    images = _sample(_images(images, "estimate_sigma"), sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the median of no coefficients (a flat image) is NaN
        per_image = np.array([restoration.estimate_sigma(image, channel_axis=-1) for image in images], np.float64)
    variances = np.square(per_image[np.isfinite(per_image)])
    return float(np.sqrt(variances.mean())) if variances.size else 0.0


@dataclasses.dataclass(frozen=True)
class NoiseMatchedQuality:
    """Where JPEG's mean squared error against its input crosses a noise variance sigma^2.

    `quality`: q_N, the highest quality at which the MSE curve crosses sigma^2 (interpolated in ln q between the
    bracketing integer qualities, linearly in MSE): at every quality above it JPEG removes less than the noise.
    None when there is no crossing, and `beyond` says which side: "above 100" (even q=100 removes more than
    sigma^2, as 4:2:0 chroma subsampling alone does on coloured scenes) or "below 1" (even q=1 removes less).
    `crossings`: every crossing, ascending; more than one means the MSE is not monotone in quality near sigma^2 and
    the match is ambiguous over that range. `mse`: the MSE at qualities 1..100, grey levels^2."""
    sigma: float
    subsampling: str
    quality: Optional[float]
    beyond: Optional[str]
    crossings: Tuple[float, ...]
    mse: Tuple[float, ...]

    def describe(self) -> str:
        if self.quality is None:
            return f"q_N {self.beyond}"
        spread = f" (MSE crosses sigma^2 {len(self.crossings)} times, q {self.crossings[0]:.1f}-" \
                 f"{self.crossings[-1]:.1f})" if len(self.crossings) > 1 else ""
        return f"q_N = {self.quality:.1f}{spread}"


def jpeg_mse(images: np.ndarray, subsampling: str = "4:2:0", sample: int = 64) -> np.ndarray:
    """JPEG's mean squared error against its input at each quality 1..100, in grey levels^2, averaged over a
    sample of the images and their channels (Pillow/libjpeg-turbo, the `pillow_jpeg` quantizer's codec)."""
    images = _sample(_images(images, "jpeg_mse"), sample)
    mse = np.zeros(len(QUALITIES))
    for i, quality in enumerate(QUALITIES):
        for image in images:
            out = pillow_jpeg.decode(pillow_jpeg.encode(image, quality, subsampling), image)
            mse[i] += np.mean(np.square(out.astype(np.float64) - image))
    return mse / len(images)


def match_quality(mse: np.ndarray, sigma: float, subsampling: str = "4:2:0") -> NoiseMatchedQuality:
    """The quality at which an MSE curve over qualities 1..100 (`jpeg_mse`) equals sigma^2; see
    NoiseMatchedQuality."""
    mse = np.asarray(mse, np.float64)
    assert mse.shape == (len(QUALITIES),), mse.shape
    if not sigma >= 0 or math.isinf(sigma):
        raise UserError(f"the noise sigma must be a finite number >= 0, got {sigma}")
    above = mse > sigma ** 2  # JPEG removes more than the noise at this quality
    log_q = np.log(np.asarray(QUALITIES, np.float64))
    crossings = []
    for i in np.flatnonzero(above[:-1] != above[1:]):
        t = (mse[i] - sigma ** 2) / (mse[i] - mse[i + 1])
        crossings.append(float(np.exp(log_q[i] + t * (log_q[i + 1] - log_q[i]))))
    if above[-1]:
        quality, beyond = None, "above 100"
    elif not crossings:
        quality, beyond = None, "below 1"
    else:
        quality, beyond = crossings[-1], None
    return NoiseMatchedQuality(float(sigma), subsampling, quality, beyond, tuple(crossings),
                               tuple(float(m) for m in mse))


def noise_matched_quality(images: np.ndarray, sigma: float, subsampling: str = "4:2:0",
                          sample: int = 64) -> NoiseMatchedQuality:
    """q_N of uint8 images for noise sigma (grey levels, e.g. `estimate_sigma(images)`): where JPEG's mean squared
    error against the images equals sigma^2. The MSE is measured at every quality 1..100 on an evenly spaced
    sample of `sample` images (about 1.4 s for 64 images of 32x32 on one core); see NoiseMatchedQuality."""
    return match_quality(jpeg_mse(images, subsampling, sample), sigma, subsampling)
