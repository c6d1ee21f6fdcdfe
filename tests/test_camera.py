"""The procedural camera data set: determinism, shapes, the sensor's noise knobs (noise-free included), the true
noise computed from the sensor's distributions against the sensor's own draws, and that the fine-detail class
pairs differ only in detail JPEG removes at low quality (real Pillow)."""

import math

import numpy as np
import pytest

from helmjax.data import camera, catalog
from helmjax.errors import UserError
from helmjax.quantizers import registry


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = camera.make_camera(seed=3, n_train=40, n_test=20)
    b = camera.make_camera(seed=3, n_train=40, n_test=20)
    c = camera.make_camera(seed=4, n_train=40, n_test=20)
    assert a.x_train.tobytes() == b.x_train.tobytes() and a.x_test.tobytes() == b.x_test.tobytes()
    assert np.array_equal(a.y_train, b.y_train) and np.array_equal(a.y_test, b.y_test)
    assert a.x_train.tobytes() != c.x_train.tobytes()
    # Train and test come from different streams: not the same images.
    assert not np.array_equal(a.x_train[:20], a.x_test)


def test_shapes_dtypes_balanced_labels():
    ds = camera.make_camera(seed=0, n_train=100, n_test=25)
    assert ds.x_train.shape == (100, 32, 32, 3) and ds.x_test.shape == (25, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.classes == camera.CLASSES and len(set(ds.classes)) == 10 == ds.num_classes
    assert np.array_equal(np.bincount(ds.y_train, minlength=10), np.full(10, 10))
    assert set(np.bincount(ds.y_test, minlength=10)) == {2, 3}
    assert ds.name == "camera"


def test_catalog_builds_camera_by_name():
    ds = catalog.load("camera", seed=1, n_train=20, n_test=10)
    assert ds.x_train.tobytes() == camera.make_camera(seed=1, n_train=20, n_test=10).x_train.tobytes()


def flat_field_std(radiance: float, photons: float, read_noise: float) -> float:
    field = np.full((40, 32, 32, 3), radiance, np.float32)
    return float(camera.expose(field, np.random.default_rng(0), photons, read_noise).std())


def test_noise_grows_with_read_noise_and_fewer_photons():
    # Expected std in grey levels: 255 / photons * sqrt(photons * radiance + read_noise^2), plus rounding (1/12).
    for photons, read_noise in [(400, 0), (400, 20), (100, 4), (400, 4)]:
        electrons_var = photons * 0.5 + read_noise ** 2
        expected = np.sqrt((255 / photons) ** 2 * electrons_var + 1 / 12)
        assert flat_field_std(0.5, photons, read_noise) == pytest.approx(expected, rel=0.03)
    assert flat_field_std(0.5, 400, 20) > 1.5 * flat_field_std(0.5, 400, 0)
    assert flat_field_std(0.5, 100, 4) > 1.8 * flat_field_std(0.5, 400, 4)


def test_dark_pixels_get_exact_poisson_shot_noise():
    # 0.05 * 400 = 20 expected electrons, under SHOT_EXACT_BELOW: Poisson counts scaled to grey levels.
    field = np.full((40, 32, 32, 3), 0.05, np.float32)
    x = camera.expose(field, np.random.default_rng(0), 400.0, 0.0).astype(np.float64)
    assert x.mean() == pytest.approx(0.05 * 255, rel=0.02)
    assert x.std() == pytest.approx(np.sqrt((255 / 400) ** 2 * 20 + 1 / 12), rel=0.03)


def test_make_camera_noise_knob_changes_images_not_scenes():
    quiet = camera.make_camera(seed=2, n_train=50, n_test=10, read_noise=0.0).x_train.astype(np.float64)
    loud = camera.make_camera(seed=2, n_train=50, n_test=10, read_noise=30.0).x_train.astype(np.float64)
    # Same scenes (the means agree) but more noise: the pixel-to-pixel difference grows.
    assert abs(quiet.mean() - loud.mean()) < 1.0
    assert np.std(loud - quiet) > 10.0


def block_means(images: np.ndarray, block: int = 8) -> np.ndarray:
    n, h, w, c = images.shape
    return images.reshape(n, h // block, block, w // block, block, c).mean(axis=(2, 4))


def test_orientation_pairs_differ_only_in_fine_detail():
    rng = np.random.default_rng(5)
    params = camera.draw_scene_params(rng, 300)
    horizontal = rng.integers(0, 5, 300) * 2  # even labels: horizontal stripes; +1: the same colour, vertical
    a = camera.render(params, horizontal) * 255
    b = camera.render(params, horizontal + 1) * 255
    other_colour = camera.render(params, (horizontal + 2) % 10) * 255
    assert np.abs(a - b).mean() > 10.0  # raw, the pair is far apart ...
    assert np.abs(block_means(a) - block_means(b)).mean() < 1.0  # ... but not after an 8x8 block mean
    assert np.abs(block_means(a) - block_means(other_colour)).mean() > 15.0  # colours stay apart


def orientation_oracle(images: np.ndarray) -> np.ndarray:
    """Predicts 1 (vertical stripes) where luma power at fine horizontal frequencies beats fine vertical ones."""
    luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    power = np.abs(np.fft.fft2(luma - luma.mean(axis=(1, 2), keepdims=True))) ** 2
    k = np.abs(np.fft.fftfreq(32) * 32)
    fine, flat = k >= 7, k <= 1
    along_y = power[:, fine][:, :, flat].sum(axis=(1, 2))
    along_x = power[:, flat][:, :, fine].sum(axis=(1, 2))
    return (along_x > along_y).astype(int)


def test_jpeg_keeps_orientation_at_high_quality_and_erases_it_at_quality_1():
    ds = camera.make_camera(seed=0, n_train=1, n_test=400)
    vertical = ds.y_test % 2

    def accuracy(level):
        x = ds.x_test if level == "raw" else registry.apply("pillow_jpeg", ds.x_test, level).data
        return float(np.mean(orientation_oracle(x) == vertical))

    assert accuracy("raw") > 0.95
    assert accuracy(50) > 0.93
    assert accuracy(1) < 0.75


def test_noise_free_camera_is_the_radiance_rounded_to_8_bits():
    a = camera.make_camera(seed=2, n_train=30, n_test=20, photons=math.inf)
    b = camera.make_camera(seed=2, n_train=30, n_test=20, photons=float("inf"), read_noise=50.0)
    assert a.x_train.tobytes() == b.x_train.tobytes()  # read noise is nothing against an infinite full well
    # The scenes of the test split are what true_noise measures: stream TEST_STREAM, n = n_test.
    radiance, labels = camera.split_scenes(np.random.default_rng([2, camera.TEST_STREAM]), 20, (0.045, 0.06))
    assert np.array_equal(a.x_test, np.rint(radiance * np.float32(255)).astype(np.uint8))
    assert np.array_equal(a.y_test, labels)
    # Same scenes as a noisy camera of the same seed: only the sensor differs.
    noisy = camera.make_camera(seed=2, n_train=30, n_test=20, photons=6400.0)
    assert 1.0 < np.std(noisy.x_test.astype(np.float64) - a.x_test) < 3.0
    assert camera.true_noise(seed=2, n=20, photons=math.inf) == camera.SensorNoise((0.0,) * 3, (0.0,) * 3)


def stripe_spectrum(ds) -> np.ndarray:
    """Power of the test images' green channel along the axis across their stripes, per frequency (cycles/32 px)."""
    green = ds.x_test[..., 1].astype(np.float64)
    vertical = (ds.y_test % 2 == 1)[:, None]
    across = np.where(vertical, green.mean(axis=1), green.mean(axis=2))  # vertical stripes vary along x
    return np.abs(np.fft.rfft(across - across.mean(axis=1, keepdims=True), axis=1)) ** 2


def test_periods_option_sets_the_grating_period():
    default = camera.make_camera(seed=1, n_train=10, n_test=10)
    explicit = camera.make_camera(seed=1, n_train=10, n_test=10, periods=(2, 3, 4))
    assert default.x_train.tobytes() == explicit.x_train.tobytes()
    # The strongest fine frequency across the stripes: 16 cycles (period 2 px) or 8 cycles (period 4 px).
    two = stripe_spectrum(camera.make_camera(seed=1, n_train=1, n_test=40, photons=math.inf, periods=2))
    assert np.all(np.argmax(two[:, 6:], axis=1) + 6 == 16)
    four = stripe_spectrum(camera.make_camera(seed=1, n_train=1, n_test=40, photons=math.inf, periods=[4]))
    assert np.all(np.argmax(four[:, 6:], axis=1) + 6 == 8)


@pytest.mark.parametrize("photons, read_noise, radiance", [
    (400.0, 0.0, 0.05),  # Poisson branch (20 electrons), no read noise: output a function of the count
    (400.0, 4.0, 0.05),  # Poisson branch with read noise
    (25.0, 4.0, 0.3),  # Poisson branch, heavy noise, clipped at 0
    (400.0, 4.0, 0.5),  # normal branch
    (6400.0, 0.0, 0.3),  # normal branch, noise of ~1.8 grey levels
    (6400.0, 0.0, 0.004),  # Poisson branch, 26 electrons = 1 grey level: rounding dominates
    (100.0, 0.0, 0.995),  # normal branch, clipped at 255
])
def test_true_noise_matches_the_sensors_draws(photons, read_noise, radiance):
    # A flat field: every pixel has the same output distribution, so the 122880 draws of `expose` estimate its
    # sd (to ~0.3%) and entropy (plug-in estimate, biased low by < 0.003 bits here) directly.
    field = np.full((40, 32, 32, 3), radiance, np.float32)
    draws = camera.expose(field, np.random.default_rng(1), photons, read_noise)
    frequency = np.bincount(draws.ravel(), minlength=256) / draws.size
    frequency = frequency[frequency > 0]
    truth = camera.sensor_noise(field[:1], photons, read_noise)
    assert truth.sigma[0] == pytest.approx(draws.astype(np.float64).std(), rel=0.015)
    assert truth.entropy_bits[0] == pytest.approx(-np.sum(frequency * np.log2(frequency)), abs=0.015)
    assert truth.sigma[0] == truth.sigma[2] and truth.entropy_bits[0] == truth.entropy_bits[2]


@pytest.mark.parametrize("photons, read_noise", [(25.0, 4.0), (400.0, 4.0), (6400.0, 0.0), (1e5, 0.0)])
def test_true_noise_grid_agrees_with_each_pixels_exact_value(photons, read_noise):
    # sensor_noise evaluates the exact distributions on a grid of radiance and interpolates; here every pixel's
    # own exact distribution is computed instead.
    radiance, _ = camera.split_scenes(np.random.default_rng(3), 12, (0.045, 0.06))
    truth = camera.sensor_noise(radiance, photons, read_noise)
    for c in range(3):
        lam = radiance[..., c].astype(np.float64).ravel() * photons
        dark = lam < camera.SHOT_EXACT_BELOW
        var, ent = np.zeros_like(lam), np.zeros_like(lam)
        if dark.any():
            var[dark], ent[dark] = camera._dark_stats(lam[dark], photons, read_noise)
        if (~dark).any():
            var[~dark], ent[~dark] = camera._bright_stats(lam[~dark], photons, read_noise)
        assert truth.sigma[c] == pytest.approx(np.sqrt(var.mean()), rel=1e-4)
        assert truth.entropy_bits[c] == pytest.approx(ent.mean(), rel=1e-4)


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="n_train"):
        camera.make_camera(n_train=0)
    with pytest.raises(UserError, match="photons"):
        camera.make_camera(photons=0)
    with pytest.raises(UserError, match="photons"):
        camera.make_camera(photons=float("nan"))
    with pytest.raises(UserError, match="read_noise"):
        camera.true_noise(read_noise=-1.0)
    with pytest.raises(UserError, match="contrast"):
        camera.make_camera(contrast_low=0.1, contrast_high=0.05)
    with pytest.raises(UserError, match="periods"):
        camera.make_camera(periods=(2, 5))
    with pytest.raises(UserError, match="periods"):
        camera.make_camera(periods=())
