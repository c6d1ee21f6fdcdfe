"""The noise ladder without training: on camera data at photons 25 ... 6400 and noise-free (seed 0, 200 test
images each), the sensor's true noise falls with photons, the classifier-free estimate tracks it, the
noise-matched quality q_N rises as the noise falls, and an orientation oracle shows how noise and JPEG interact.
Plus the pure logic of q_N on made-up MSE curves and the estimator on synthetic noise."""

import math

import numpy as np
import pytest

from helmjax.data import camera, noise
from helmjax.errors import UserError
from helmjax.quantizers import pillow_jpeg
from tests.test_camera import orientation_oracle

LADDER = (25.0, 100.0, 400.0, 1600.0, 6400.0, math.inf)  # the noise ladder's photons, noisiest first
N = 200


@pytest.fixture(scope="module")
def ladder():
    """Per photons: the test images, their labels and the sensor's true noise over the same scenes."""
    out = {}
    for photons in LADDER:
        ds = camera.make_camera(seed=0, n_train=1, n_test=N, photons=photons)
        out[photons] = (ds.x_test, ds.y_test, camera.true_noise(seed=0, n=N, photons=photons))
    return out


def test_true_noise_falls_with_photons_and_is_zero_without_noise(ladder):
    sigma = [ladder[p][2].sigma_mean for p in LADDER]
    entropy = [ladder[p][2].entropy_bits_per_pixel for p in LADDER]
    assert all(a > b for a, b in zip(sigma, sigma[1:])) and all(a > b for a, b in zip(entropy, entropy[1:]))
    assert sigma[-1] == 0.0 and entropy[-1] == 0.0
    # 1600 -> 6400 photons is shot-noise dominated (read noise 4 e- against ~20-45 e- of shot noise): the sd halves.
    assert sigma[3] / sigma[4] == pytest.approx(2.0, rel=0.03)


def test_estimated_sigma_tracks_true_sigma(ladder):
    """Measured (seeds 0-4): estimate / truth = 0.95-0.97 at photons 25-400 (the MAD of a mix of pixels with
    different shot noise, and clipping, read low), 1.00-1.01 at 1600, 1.07 at 6400 (the grating and disk edges leak
    into the finest wavelet band, plus 8-bit rounding), and 0.31-0.34 grey levels noise-free (rounding,
    1/sqrt(12) = 0.29, plus texture). Tolerance: within 12% wherever the true sd is >= 1 grey level; noise-free,
    between 0.2 and 0.5 grey levels; and the estimate ranks the settings as the truth does."""
    estimates = [noise.estimate_sigma(ladder[p][0]) for p in LADDER]
    for photons, estimate in zip(LADDER[:-1], estimates):
        assert estimate == pytest.approx(ladder[photons][2].sigma_mean, rel=0.12), photons
    assert 0.2 < estimates[-1] < 0.5
    assert all(a > b for a, b in zip(estimates, estimates[1:]))


@pytest.mark.slow
def test_noise_matched_quality_rises_as_noise_falls(ladder):
    """Measured (seeds 0-4, 24-32 images, estimated sigma): at 4:4:4, q_N = 17-20, 66-69, 88-89, 94.6, 97.4 and above
    100 noise-free. At 4:2:0, 39-51, 87-89, then above 100 from photons 400 on: chroma subsampling alone costs ~39
    grey levels^2 on these coloured scenes and also averages away ~60% of the noise variance, so q=100 already
    removes more than sigma^2 wherever sigma < ~10 grey levels."""
    matched = {sub: [noise.noise_matched_quality(ladder[p][0], noise.estimate_sigma(ladder[p][0]), sub, sample=24)
                     for p in LADDER] for sub in ("4:4:4", "4:2:0")}
    full = [m.quality for m in matched["4:4:4"]]
    assert all(q is not None for q in full[:-1]) and matched["4:4:4"][-1].beyond == "above 100"
    assert all(a < b for a, b in zip(full[:-1], full[1:-1]))
    assert full[0] < 30 and full[-2] > 95
    sub = matched["4:2:0"]
    assert sub[0].quality is not None and sub[1].quality is not None and sub[0].quality < sub[1].quality
    assert all(m.beyond == "above 100" for m in sub[2:])
    assert all(m.mse[-1] > 30 for m in sub)  # the 4:2:0 floor at q=100, even noise-free


def test_orientation_oracle_keeps_more_at_low_quality_with_more_noise(ladder):
    """The intuition 'less noise, at least as much detail survives a given quality' is false here. Measured (seeds
    0-4, 200 images): the oracle's orientation accuracy at q=1/5/10 is 0.92-0.94/0.94-0.98/0.96-0.99 at photons 25,
    0.66-0.76/0.78-0.86/0.95-0.99 at 100, and 0.58-0.64/0.72-0.75/0.89-0.93 noise-free: noise dithers JPEG's
    rounding, pushing sub-threshold grating coefficients over the threshold more often on the side of their sign.
    From 400 photons on the settings agree within sampling error. At q >= 20 every setting keeps it (>= 0.99)."""
    def accuracy(photons, quality):
        images, labels, _ = ladder[photons]
        return float(np.mean(orientation_oracle(pillow_jpeg.compress(images, quality).data) == labels % 2))

    low = {p: np.mean([accuracy(p, q) for q in (1, 5, 10)]) for p in LADDER}
    assert low[25.0] > low[100.0] + 0.05 and low[100.0] > low[math.inf] + 0.04
    assert all(low[p] >= low[math.inf] - 0.03 for p in LADDER)  # no noisier setting does worse than noise-free
    assert all(accuracy(p, 20) >= 0.98 for p in (25.0, math.inf))


def test_match_quality_on_made_up_curves():
    q = np.arange(1, 101, dtype=np.float64)
    falling = 1000.0 / q  # crosses 100 at q = 10 exactly, 10 at q = 100
    at = noise.match_quality(falling, 10.0)
    assert at.quality == pytest.approx(10.0) and at.crossings == (at.quality,) and at.beyond is None
    # Between two integer qualities: linear in MSE, geometric in q.
    between = noise.match_quality(falling, math.sqrt((1000 / 20 + 1000 / 21) / 2))
    assert 20 < between.quality < 21
    assert between.quality == pytest.approx(math.exp((math.log(20) + math.log(21)) / 2))
    assert noise.match_quality(falling, 3.0).beyond == "above 100" and noise.match_quality(falling, 3.0).quality is None
    assert noise.match_quality(falling, 0.0).beyond == "above 100"
    assert noise.match_quality(falling, 40.0).beyond == "below 1"
    # Not monotone: MSE dips under sigma^2 = 100 at q 5-6, back over at 7, under from 12 on. q_N is the last
    # crossing (every higher quality removes less than the noise); all crossings are listed.
    bumpy = falling.copy()
    bumpy[4:6] = 90.0
    bumpy[6:11] = 110.0
    m = noise.match_quality(bumpy, 10.0)
    assert len(m.crossings) == 3 and 11 < m.quality < 12 and m.quality == m.crossings[-1]
    assert "3 times" in m.describe()
    with pytest.raises(UserError, match="sigma"):
        noise.match_quality(falling, float("nan"))


def test_estimate_sigma_on_white_gaussian_noise():
    rng = np.random.default_rng(0)
    images = np.clip(np.rint(128 + 5.0 * rng.standard_normal((100, 32, 32, 3))), 0, 255).astype(np.uint8)
    # True sd of the rounded noise: sqrt(25 + 1/12); the MAD estimate over 100 x 3 x 256 coefficients is within 3%.
    assert noise.estimate_sigma(images) == pytest.approx(math.sqrt(25 + 1 / 12), rel=0.03)
    assert noise.estimate_sigma(np.full((4, 32, 32, 3), 77, np.uint8)) < 1e-12  # flat: db2 leaves only round-off
    assert noise.estimate_sigma(np.zeros((4, 32, 32, 3), np.uint8)) == 0.0  # no nonzero coefficient to judge
    assert noise.estimate_sigma(images[:, :, :, :1]) == pytest.approx(5.0, rel=0.05)  # one channel


def test_bad_inputs_are_user_errors():
    with pytest.raises(UserError, match="uint8"):
        noise.estimate_sigma(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(UserError, match="shape"):
        noise.noise_matched_quality(np.zeros((2, 32, 32, 2), np.uint8), 1.0)
    with pytest.raises(UserError, match="sample"):
        noise.estimate_sigma(np.zeros((2, 32, 32, 3), np.uint8), sample=0)
