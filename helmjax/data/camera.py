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
or more read noise means a noisier image; that noise is what compression removes first.

Everything is drawn from `np.random.default_rng([seed, stream])` (stream 0 = train, 1 = test), so the same seed
gives the same bytes, and train and test are independent draws from the same distribution.
"""

import dataclasses
from typing import Tuple

import numpy as np

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
                      periods: Tuple[int, ...] = (2, 3, 4)) -> SceneParams:
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
    indistinguishable after 8-bit quantization (Poisson's skewness there is under 0.15).
    """
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


def make_split(seed: int, stream: int, n: int, photons: float, read_noise: float,
               contrast: Tuple[float, float]) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, stream])
    labels = balanced_labels(rng, n)
    params = draw_scene_params(rng, n, contrast)
    return expose(render(params, labels), rng, photons, read_noise), labels


def make_camera(seed: int = 0, n_train: int = 3000, n_test: int = 2000, photons: float = 400.0,
                read_noise: float = 4.0, contrast_low: float = 0.045, contrast_high: float = 0.06) -> ArrayDataset:
    """The camera data set: uint8 (N, 32, 32, 3) images, int32 labels, deterministic from `seed`.

    `photons`: electrons at full scale (fewer = more shot noise); `read_noise`: read noise in electrons;
    `contrast_low`/`contrast_high`: the range of the grating's amplitude (radiance units, 0.05 ~ 13 grey levels),
    which sets where along the quality axis the orientation classes are erased.
    """
    if n_train < 1 or n_test < 1:
        raise UserError(f"camera needs n_train >= 1 and n_test >= 1, got {n_train} and {n_test}")
    if photons <= 0 or read_noise < 0:
        raise UserError(f"camera needs photons > 0 and read_noise >= 0, got {photons} and {read_noise}")
    if not 0 <= contrast_low <= contrast_high:
        raise UserError(f"camera needs 0 <= contrast_low <= contrast_high, got {contrast_low} and {contrast_high}")
    contrast = (float(contrast_low), float(contrast_high))
    x_train, y_train = make_split(seed, TRAIN_STREAM, n_train, photons, read_noise, contrast)
    x_test, y_test = make_split(seed, TEST_STREAM, n_test, photons, read_noise, contrast)
    return ArrayDataset("camera", x_train, y_train, x_test, y_test, CLASSES)
