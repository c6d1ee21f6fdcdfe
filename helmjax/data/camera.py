"""The embedded "camera" data set: procedural 32x32 RGB scenes through a sensor model, so `run.py` needs no files.

Ten classes = five object colours x two grating orientations. Each scene is a coloured disk on a tinted,
shaded background, seen through a fine luminance grating (period 2, 3 or 4 px, random phase and contrast, like a
screen in front of the lens) whose stripes run horizontally in one class of each colour pair and vertically in
the other. The two classes of a pair differ ONLY in that fine detail: their 8x8 block means agree to about half
a grey level. JPEG's physics does the rest: at quality >= 50 the grating's DCT coefficients survive quantization;
at quality 1 (every table entry 255) they are mostly rounded to zero and little more than the block means (and
16x16 chroma means) is left, so the colour survives and the orientation does not; in between, the finest
gratings go first. Accuracy therefore stays flat at high quality and falls towards half at low quality.

The sensor: scene radiance in [0, 1] becomes `photons * radiance` expected electrons (full well = `photons`),
Poisson shot noise, Gaussian read noise of `read_noise` electrons, then linear 8-bit quantization. Fewer photons
or more read noise means a noisier image. `photons=math.inf` is the noise-free camera: the exact radiance rounded
to 8 bits. `true_noise` computes what the sensor adds for a setting (its standard deviation and entropy given the
noise-free scene), the ground truth that noise estimates and knees are checked against.

Everything is drawn from `np.random.default_rng([seed, stream])` (stream 0 = train, 1 = test), so the same seed
gives the same bytes, and train and test are independent draws from the same distribution.
"""

import dataclasses
import math
from typing import Sequence, Tuple, Union

import numpy as np
from scipy import special, stats

from helmjax.data.dataset import ArrayDataset
from helmjax.errors import UserError

SIZE = 32
COLOURS = {  # linear RGB radiance of the disk before the brightness jitter; similar luminance, distinct hue
    "red": (0.80, 0.22, 0.18),
    "yellow": (0.70, 0.62, 0.12),
    "green": (0.22, 0.66, 0.24),
    "blue": (0.22, 0.36, 0.85),
    "magenta": (0.72, 0.22, 0.74),
}
ORIENTATIONS = ("horizontal", "vertical")  # stripes running along x (varying with y), or along y
CLASSES: Tuple[str, ...] = tuple(f"{colour}_{orientation}" for colour in COLOURS for orientation in ORIENTATIONS)
TRAIN_STREAM, TEST_STREAM = 0, 1
# Coarser gratings spread over fewer, lower DCT frequencies; these gains give every period about the same
# strongest 8x8 DCT coefficient (7.25, ~5.0 and ~4.0 per unit of amplitude for periods 2, 3, 4).
PERIOD_GAIN = {2.0: 1.0, 3.0: 1.45, 4.0: 1.8}
PERIODS = (2, 3, 4)  # the grating periods drawn by default (pixels)
SHOT_EXACT_BELOW = 50.0  # expected electrons under which shot noise is drawn as an exact Poisson


@dataclasses.dataclass(frozen=True)
class SceneParams:
    """Everything about a batch of scenes except the class: drawn once, renderable as any class (tests do)."""
    background: np.ndarray  # (N, 3) base radiance of the background
    gradient: np.ndarray  # (N, 2) background shading per pixel along (y, x)
    centre: np.ndarray  # (N, 2) disk centre in pixels (y, x)
    radius: np.ndarray  # (N,)
    brightness: np.ndarray  # (N,) gain on the disk colour
    period: np.ndarray  # (N,) grating period in pixels (2, 3 or 4)
    phase: np.ndarray  # (N,) grating phase in radians
    contrast: np.ndarray  # (N,) grating amplitude of a period-2 grating in radiance units (added to all three
    # channels: pure luma); coarser periods get PERIOD_GAIN times more


def draw_scene_params(rng: np.random.Generator, n: int, contrast: Tuple[float, float] = (0.045, 0.06),
                      periods: Tuple[int, ...] = PERIODS) -> SceneParams:
    """Random nuisance parameters of `n` scenes. The ranges keep the task easy to learn (a first attempt with
    random shapes, poses and strong gradients did not train in a CPU budget) while the grating amplitude stays
    under JPEG quality 1's rounding threshold and well above quality 50's."""
    grey = rng.uniform(0.15, 0.40, (n, 1))
    tint = rng.uniform(-0.04, 0.04, (n, 3))
    period = rng.choice(np.asarray(periods, np.float64), n)
    # A period-2 grating sampled at phase pi/2 is all zeros: its phase is 0 or pi. Coarser periods have the same
    # energy at every phase.
    phase = np.where(period == 2, np.pi * rng.integers(0, 2, n), rng.uniform(0, 2 * np.pi, n))
    return SceneParams(
        background=grey + tint,
        gradient=rng.uniform(-0.004, 0.004, (n, 2)),
        centre=rng.uniform(SIZE / 2 - 3.5, SIZE / 2 + 3.5, (n, 2)) - 0.5,
        radius=rng.uniform(10.0, 13.0, n),
        brightness=rng.uniform(0.8, 1.1, n),
        period=period,
        phase=phase,
        contrast=rng.uniform(contrast[0], contrast[1], n),
    )


def render(params: SceneParams, labels: np.ndarray) -> np.ndarray:
    """Noise-free radiance (N, 32, 32, 3) float32 in [0, 1] of the scenes as classes `labels`."""
    labels = np.asarray(labels)
    colour_index, vertical = labels // len(ORIENTATIONS), (labels % len(ORIENTATIONS)) == 1
    f32 = np.float32
    colours = (np.asarray(list(COLOURS.values()), f32)[colour_index] * params.brightness[:, None].astype(f32))
    axis = np.arange(SIZE, dtype=f32) - f32(SIZE / 2)
    shading = (params.gradient[:, 0, None, None].astype(f32) * axis[None, :, None]
               + params.gradient[:, 1, None, None].astype(f32) * axis[None, None, :])
    background = params.background[:, None, None, :].astype(f32) + shading[..., None]
    # Anti-aliased disk: coverage ramps over one pixel at the rim.
    dy = axis[None, :] + f32(SIZE / 2) - params.centre[:, 0, None].astype(f32)
    dx = axis[None, :] + f32(SIZE / 2) - params.centre[:, 1, None].astype(f32)
    dist = np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2)
    cover = np.clip(params.radius[:, None, None].astype(f32) - dist + f32(0.5), 0, 1)[..., None]
    # A 1-D wave along y (horizontal stripes) or x (vertical stripes), broadcast over the other axis.
    amplitude = params.contrast * np.vectorize(PERIOD_GAIN.get)(params.period)
    wave = (amplitude[:, None] * np.cos(2 * np.pi * np.arange(SIZE)[None, :] / params.period[:, None]
                                              + params.phase[:, None])).astype(f32)
    grating = np.where(vertical[:, None, None], wave[:, None, :], wave[:, :, None])
    scene = background + cover * (colours[:, None, None, :] - background)
    return np.clip(scene + grating[..., None], 0, 1)


def expose(radiance: np.ndarray, rng: np.random.Generator, photons: float, read_noise: float) -> np.ndarray:
    """The sensor: shot noise on `photons * radiance` electrons, Gaussian read noise, linear 8-bit output.

    Shot noise is Poisson where fewer than SHOT_EXACT_BELOW electrons are expected; above that it is drawn, with
    the read noise, as one normal of the same mean and variance (lambda + read_noise^2), which is 5x faster and
    indistinguishable after 8-bit quantization (Poisson's skewness there is under 0.15). `photons=inf` is a
    noise-free sensor: no shot noise, and read noise of any finite number of electrons is nothing against an
    infinite full well; `rng` is not used.
    """
    if math.isinf(photons):
        return np.clip(np.rint(radiance * np.float32(255.0)), 0, 255).astype(np.uint8)
    expected = radiance * np.float32(photons)
    dark = expected < SHOT_EXACT_BELOW
    electrons = expected + np.sqrt(expected + np.float32(read_noise ** 2)) * rng.standard_normal(
        expected.shape, dtype=np.float32)
    if dark.any():
        lam = expected[dark]
        electrons[dark] = rng.poisson(lam) + np.float32(read_noise) * rng.standard_normal(lam.shape, np.float32)
    return np.clip(np.rint(electrons * np.float32(255.0 / photons)), 0, 255).astype(np.uint8)


def balanced_labels(rng: np.random.Generator, n: int, num_classes: int = len(CLASSES)) -> np.ndarray:
    """n labels as equal as possible per class, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int32)


def split_scenes(rng: np.random.Generator, n: int, contrast: Tuple[float, float],
                 periods: Tuple[int, ...] = PERIODS) -> Tuple[np.ndarray, np.ndarray]:
    """The noise-free radiance (N, 32, 32, 3) and labels of a split, drawn from `rng` (which `expose` then uses)."""
    labels = balanced_labels(rng, n)
    return render(draw_scene_params(rng, n, contrast, periods), labels), labels


def make_split(seed: int, stream: int, n: int, photons: float, read_noise: float,
               contrast: Tuple[float, float], periods: Tuple[int, ...] = PERIODS) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, stream])
    radiance, labels = split_scenes(rng, n, contrast, periods)
    return expose(radiance, rng, photons, read_noise), labels


def _check_sensor(photons: float, read_noise: float) -> None:
    if not photons > 0 or not 0 <= read_noise < math.inf:  # `not` so that NaN is refused too
        raise UserError(f"camera needs photons > 0 (inf = noise-free) and 0 <= read_noise < inf, "
                        f"got {photons} and {read_noise}")


def _check_scenes(contrast_low: float, contrast_high: float,
                  periods: Union[int, Sequence[int]]) -> Tuple[Tuple[float, float], Tuple[int, ...]]:
    if not 0 <= contrast_low <= contrast_high:
        raise UserError(f"camera needs 0 <= contrast_low <= contrast_high, got {contrast_low} and {contrast_high}")
    periods = (periods,) if np.ndim(periods) == 0 else tuple(periods)
    if not periods or any(float(p) not in PERIOD_GAIN for p in periods):
        raise UserError(f"camera grating periods must be a non-empty subset of {sorted(int(p) for p in PERIOD_GAIN)} "
                        f"pixels, got {periods}")
    return (float(contrast_low), float(contrast_high)), tuple(int(p) for p in periods)


def make_camera(seed: int = 0, n_train: int = 3000, n_test: int = 2000, photons: float = 400.0,
                read_noise: float = 4.0, contrast_low: float = 0.045, contrast_high: float = 0.06,
                periods: Union[int, Sequence[int]] = PERIODS) -> ArrayDataset:
    """The camera data set: uint8 (N, 32, 32, 3) images, int32 labels, deterministic from `seed`.

    `photons`: electrons at full scale (fewer = more shot noise; `math.inf` = noise-free, the radiance rounded to
    8 bits); `read_noise`: read noise in electrons; `contrast_low`/`contrast_high`: the range of the grating's
    amplitude (radiance units, 0.05 ~ 13 grey levels), which sets where along the quality axis the orientation
    classes are erased; `periods`: the grating periods in pixels (a subset of 2, 3, 4), drawn uniformly. The
    scenes depend only on `seed` and the scene options, so a photons or read-noise ladder photographs the same
    scenes.
    """
    if n_train < 1 or n_test < 1:
        raise UserError(f"camera needs n_train >= 1 and n_test >= 1, got {n_train} and {n_test}")
    _check_sensor(photons, read_noise)
    contrast, periods = _check_scenes(contrast_low, contrast_high, periods)
    x_train, y_train = make_split(seed, TRAIN_STREAM, n_train, photons, read_noise, contrast, periods)
    x_test, y_test = make_split(seed, TEST_STREAM, n_test, photons, read_noise, contrast, periods)
    return ArrayDataset("camera", x_train, y_train, x_test, y_test, CLASSES)


@dataclasses.dataclass(frozen=True)
class SensorNoise:
    """What the sensor adds to the noise-free scene, measured in its 8-bit output (rounding and clipping included).

    `sigma`: per channel (R, G, B), the root of the mean over pixels of Var(output | scene), in grey levels.
    `entropy_bits`: per channel, the mean over pixels of H(output | scene), in bits. The channels' noise is
    independent given the scene, so a pixel's noise entropy is their sum (`entropy_bits_per_pixel`)."""
    sigma: Tuple[float, float, float]
    entropy_bits: Tuple[float, float, float]

    @property
    def sigma_mean(self) -> float:
        """One number for the three channels: the root of their mean variance (what a mean squared error over RGB
        is compared with)."""
        return float(np.sqrt(np.mean(np.square(self.sigma))))

    @property
    def entropy_bits_per_pixel(self) -> float:
        return float(np.sum(self.entropy_bits))


def _output_stats(p: np.ndarray, first_bin: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Variance (grey levels^2) and entropy (bits) of distributions `p` (points, K) over bins first_bin + 0..K-1."""
    bins = np.arange(p.shape[1], dtype=np.float64)  # relative to first_bin: the variance does not depend on it
    mean = p @ bins
    var = np.einsum("pk,pk->p", p, np.square(bins[None, :] - mean[:, None]))
    return var, -special.xlogy(p, p).sum(axis=1) / np.log(2.0)


def _bright_stats(lam: np.ndarray, photons: float, read_noise: float) -> Tuple[np.ndarray, np.ndarray]:
    """The normal branch of `expose` at expected electrons `lam`: exact output distribution by CDF differences
    over the 8-bit bins (the clipped end bins take the tails)."""
    scale = 255.0 / photons
    mean, sd = lam * scale, np.sqrt(lam + read_noise ** 2) * scale
    half = int(np.ceil(8 * sd.max())) + 1  # bins beyond 8 sd hold < 1e-15: lumped into the window's end bins
    k = min(256, 2 * half + 1)
    first = np.clip(np.floor(mean).astype(np.int64) - half, 0, 256 - k)
    edges = (first[:, None] + np.arange(k + 1)[None, :] - 0.5).astype(np.float64)
    edges[:, 0], edges[:, -1] = -np.inf, np.inf
    p = np.diff(special.ndtr((edges - mean[:, None]) / sd[:, None]), axis=1)
    return _output_stats(p, first)


def _dark_stats(lam: np.ndarray, photons: float, read_noise: float) -> Tuple[np.ndarray, np.ndarray]:
    """The Poisson branch of `expose` at expected electrons `lam`: exact, as a Poisson mixture over electron
    counts k of the binned output of k + read noise (counts past lam + 12 sqrt(lam) + 12 carry < 1e-15)."""
    scale = 255.0 / photons
    counts = np.arange(int(np.ceil(lam.max() + 12 * np.sqrt(lam.max()) + 12)) + 1)
    if read_noise > 0:
        edges = (np.arange(257) - 0.5) / scale
        edges[0], edges[-1] = -np.inf, np.inf
        given_count = np.diff(special.ndtr((edges[None, :] - counts[:, None]) / read_noise), axis=1)
    else:  # the output is a function of the count, rounded as `expose` rounds (float32)
        out = np.clip(np.rint(counts.astype(np.float32) * np.float32(scale)), 0, 255).astype(np.int64)
        given_count = np.zeros((len(counts), 256))
        given_count[np.arange(len(counts)), out] = 1.0
    p = stats.poisson.pmf(counts[None, :], lam[:, None]) @ given_count
    return _output_stats(p, np.zeros(len(lam), np.int64))


def _branch_means(lam: np.ndarray, stats_fn, photons: float, read_noise: float,
                  smallest_sd: float) -> Tuple[float, float]:
    """Means over pixels of the output variance and entropy, computed exactly at a grid of expected electrons
    fine enough to resolve the 8-bit rounding (step <= 1/16 grey level and <= a quarter of the smallest noise sd)
    and interpolated linearly to each pixel; at the pixels themselves when they are fewer than the grid points."""
    if lam.size == 0:
        return 0.0, 0.0
    step = min(1 / 16, smallest_sd / 4) * photons / 255.0  # electrons
    lo, hi = float(lam.min()), float(lam.max())
    points = int(np.ceil((hi - lo) / step)) + 1
    if points >= lam.size:
        at = lam
    else:
        at = np.linspace(lo, hi, max(points, 2))
    var, ent = [], []
    for chunk in np.array_split(at, max(1, len(at) // 8192)):
        v, h = stats_fn(chunk, photons, read_noise)
        var.append(v)
        ent.append(h)
    var, ent = np.concatenate(var), np.concatenate(ent)
    if at is not lam:
        var, ent = np.interp(lam, at, var), np.interp(lam, at, ent)
    return float(var.sum()), float(ent.sum())


def sensor_noise(radiance: np.ndarray, photons: float, read_noise: float) -> SensorNoise:
    """The noise `expose(radiance, ...)` adds, from the distribution it draws from rather than from draws.

    Every pixel's 8-bit output given its radiance has a known distribution, computed exactly: by CDF differences
    of the normal over the 256 output bins where `expose` uses its normal branch, and as a Poisson mixture of
    binned read noise where it draws an exact Poisson (dark pixels); no Monte Carlo. The exact values are taken
    on a fine grid of radiance and interpolated to each pixel (the test checks this against the per-pixel values
    and against `expose`'s own draws). `photons=inf` is noise-free: zero and zero. A few hundred scenes take well
    under a second."""
    _check_sensor(photons, read_noise)
    radiance = np.asarray(radiance)
    assert radiance.ndim == 4 and radiance.shape[-1] == 3, radiance.shape
    if math.isinf(photons):
        return SensorNoise((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    lam = radiance.astype(np.float64) * photons
    scale = 255.0 / photons
    sigma, entropy = [], []
    for c in range(3):
        channel = lam[..., c].ravel()
        dark = channel < SHOT_EXACT_BELOW
        # The normal branch's smallest sd is at its darkest pixel; the dark branch is smooth in lam (a Poisson
        # mixture), so the 1/16 grey-level step resolves it.
        bright_lam = channel[~dark]
        bright_sd = np.sqrt(bright_lam.min() + read_noise ** 2) * scale if bright_lam.size else 1.0
        v_bright, h_bright = _branch_means(bright_lam, _bright_stats, photons, read_noise, bright_sd)
        v_dark, h_dark = _branch_means(channel[dark], _dark_stats, photons, read_noise, 1.0)
        sigma.append(float(np.sqrt((v_bright + v_dark) / channel.size)))
        entropy.append(float((h_bright + h_dark) / channel.size))
    return SensorNoise(tuple(sigma), tuple(entropy))


def true_noise(seed: int = 0, n: int = 200, photons: float = 400.0, read_noise: float = 4.0,
               contrast_low: float = 0.045, contrast_high: float = 0.06,
               periods: Union[int, Sequence[int]] = PERIODS, stream: int = TEST_STREAM) -> SensorNoise:
    """The camera's true noise for a setting (`make_camera`'s options), over the noise-free scenes of a split: with
    n = n_test (stream TEST_STREAM) these are exactly the scenes of `make_camera(...).x_test`."""
    _check_sensor(photons, read_noise)
    contrast, periods = _check_scenes(contrast_low, contrast_high, periods)
    radiance, _ = split_scenes(np.random.default_rng([seed, stream]), n, contrast, periods)
    return sensor_noise(radiance, photons, read_noise)
