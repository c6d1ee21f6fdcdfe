"""The procedural camera data set: determinism, shapes, the sensor's noise knobs, and that the fine-detail class
pairs differ only in detail JPEG removes at low quality (real Pillow)."""

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


def test_bad_arguments_are_user_errors():
    with pytest.raises(UserError, match="n_train"):
        camera.make_camera(n_train=0)
    with pytest.raises(UserError, match="photons"):
        camera.make_camera(photons=0)
    with pytest.raises(UserError, match="contrast"):
        camera.make_camera(contrast_low=0.1, contrast_high=0.05)
