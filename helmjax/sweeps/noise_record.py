"""The data's noise measured without a classifier, kept beside a sweep (`noise.json`) for the report.

The classifier's answer (q*, the knee) says how much compression a task tolerates; whether that is "noise" is a
separate claim. This record puts a classifier-free measurement beside it: the noise σ estimated from the raw
images alone (scikit-image's wavelet estimator, `helmjax.data.noise`) with a bootstrap interval over images,
and q_N, the JPEG quality whose mean squared error against the images equals σ² (at the sweep's chroma
subsampling and at 4:4:4, since 4:2:0 alone removes more than small noise). When the data is the camera
simulation, its true noise (σ and the noise entropy in bits per pixel, `camera.true_noise`) is recorded too, so
the estimate can be checked against the truth.
"""

import inspect
import math
import pathlib
from typing import Optional

import numpy as np

from helmjax import atomic_io
from helmjax.data.dataset import ArrayDataset
from helmjax.layout import NOISE_FILE, read_json

SAMPLE = 256  # images for σ (each gives one estimate; the bootstrap is over them)
MSE_SAMPLE = 64  # images for JPEG's MSE at each quality (about 1.4 s per subsampling at 32x32)
RESAMPLES = 1000


def _per_image_sigma(images: np.ndarray) -> np.ndarray:
    from helmjax.data import noise
    return np.array([noise.estimate_sigma(image[None], sample=1) for image in noise._sample(images, SAMPLE)])


def _rms_interval(per_image: np.ndarray, confidence: float, seed: int = 0) -> tuple:
    """Root mean square of per-image σ (what `estimate_sigma` returns) and its percentile bootstrap interval."""
    rng = np.random.default_rng(seed)
    variances = np.square(per_image)
    draws = np.sqrt(variances[rng.integers(0, len(variances), (RESAMPLES, len(variances)))].mean(axis=1))
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(np.sqrt(variances.mean())), (float(low), float(high))


def _matched(mse: np.ndarray, sigma: float, ci: tuple, subsampling: str) -> dict:
    """q_N at σ and at the ends of σ's interval (a larger σ is matched at a lower quality)."""
    from helmjax.data import noise
    at = lambda s: noise.match_quality(mse, s, subsampling)
    point, low_sigma, high_sigma = at(sigma), at(ci[0]), at(ci[1])
    text = lambda m: m.quality if m.quality is not None else m.beyond
    return {"subsampling": subsampling, "quality": text(point), "ci": (text(high_sigma), text(low_sigma)),
            "crossings": list(point.crossings)}


def measure(ds: ArrayDataset, subsampling: str = "4:2:0", camera_options: Optional[dict] = None,
            confidence: float = 0.95) -> Optional[dict]:
    """σ with its interval, q_N at the sweep's JPEG subsampling and 4:4:4, and, when the data is the camera
    simulation (`camera_options`: the options it was made with), its true noise; None for data that is not 8-bit
    RGB or grey images."""
    from helmjax.data import noise
    x = ds.x_train  # an array or lazy items: only the sampled images are read
    if np.dtype(x.dtype) != np.uint8 or x.ndim not in (3, 4):
        return None
    sample = lambda count: np.asarray(noise._sample(x, count))
    per_image = _per_image_sigma(sample(SAMPLE))
    sigma, ci = _rms_interval(per_image, confidence)
    record = {"estimator": "skimage.restoration.estimate_sigma (wavelet MAD), RMS over images and channels",
              "images": int(len(per_image)), "sigma": sigma, "sigma_ci": ci, "confidence": confidence,
              "q_n": []}
    for mode in dict.fromkeys([subsampling, "4:4:4"]):
        record["q_n"].append(_matched(noise.jpeg_mse(sample(MSE_SAMPLE), mode, MSE_SAMPLE), sigma, ci, mode))
    if camera_options is not None:
        from helmjax.data import camera
        accepted = inspect.signature(camera.true_noise).parameters
        options = {k: v for k, v in camera_options.items() if k in accepted}
        truth = camera.true_noise(**options, n=min(len(ds.x_test), 1000))
        record["true"] = {"sigma": truth.sigma_mean, "sigma_per_channel": list(truth.sigma),
                          "entropy_bits_per_pixel": truth.entropy_bits_per_pixel,
                          "source": "the camera's sensor model, exact (helmjax.data.camera.true_noise)"}
    return record


def write(sweep_dir: pathlib.Path, record: Optional[dict]):
    if record is not None:
        atomic_io.write_json(pathlib.Path(sweep_dir) / NOISE_FILE, _finite(record))


def read(sweep_dir: pathlib.Path) -> Optional[dict]:
    return read_json(pathlib.Path(sweep_dir) / NOISE_FILE)


def _finite(value):
    """JSON has no infinity: an infinite number (a noise-free camera's photons) is written as the text "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
