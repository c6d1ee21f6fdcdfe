"""The data's noise beside the classifier's answer: measured from the raw images (with the camera's truth), written
with the sweep, and reported in words that keep "noise" for the measured quantity."""

import pytest

from helmjax import config as config_lib
from helmjax.analysis import analyze
from helmjax.testing.synthetic_sweep import SyntheticSweep, write_sweep
from helmjax.data import camera
from helmjax.reporting.report import summary_text, write_report
from helmjax.sweeps import noise_record
from helmjax.sweeps.plan import make_plan


def _camera(photons: float):
    """The demo's camera data at `photons`, as a sweep's plan would measure it: (data, subsampling, options)."""
    config = config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"),
                                        ["data.n_train=300", "data.n_test=200", f"data.photons={photons}"])
    setting = make_plan(config).settings[0]
    ds = camera.make_camera(seed=0, n_train=300, n_test=200, photons=photons)
    return ds, setting.quantizer.subsampling, setting.data.options


@pytest.mark.slow
def test_the_record_brackets_the_estimate_and_holds_the_truth():
    record = noise_record.measure(*_camera(100.0))
    low, high = record["sigma_ci"]
    assert low < record["sigma"] < high and high - low < 0.2 * record["sigma"]
    truth = camera.true_noise(seed=0, n=200, photons=100.0)
    assert record["true"]["sigma"] == truth.sigma_mean
    assert abs(record["sigma"] - truth.sigma_mean) < 0.12 * truth.sigma_mean  # the tolerance test_noise states
    by_mode = {q["subsampling"]: q for q in record["q_n"]}
    assert set(by_mode) == {"4:2:0", "4:4:4"}
    q444 = by_mode["4:4:4"]
    assert isinstance(q444["quality"], float) and q444["ci"][0] <= q444["quality"] <= q444["ci"][1]
    quieter = noise_record.measure(*_camera(1600.0))
    assert quieter["sigma"] < record["sigma"] / 2
    assert {q["subsampling"]: q for q in quieter["q_n"]}["4:4:4"]["quality"] > q444["quality"]  # less noise: higher q_N


@pytest.mark.slow
def test_the_report_puts_the_measured_noise_beside_the_classifier(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(seeds=(0, 1, 2)))
    noise_record.write(sweep, noise_record.measure(*_camera(400.0)))
    analysis = analyze(sweep, resamples=100)
    assert analysis.noise["true"]["entropy_bits_per_pixel"] > 10
    text = write_report(sweep, analysis=analysis).read_text()
    assert "## Noise in the data, without a classifier" in text and "grey levels of noise" in text
    assert "JPEG 4:2:0 removes that much (mean squared error = σ²) only above q=100" in text
    assert "q* says which compression this task tolerates, not how much noise the data hold" in text
    assert "noise, without a classifier: σ = " in summary_text(analysis)
    no_record = analyze(write_sweep(tmp_path / "bare", SyntheticSweep(seeds=(0, 1))), resamples=100)
    assert no_record.noise is None and "without a classifier" not in summary_text(no_record)
