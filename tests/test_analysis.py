"""Analysis of synthetic sweeps with a known knee and known noise: the fit and sweet spot must recover them,
and partial, failed, flat, rising and single-level sweeps must give clear warnings, never a crash."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from helmjax.analysis import RAW, analyze
from helmjax.analysis import bootstrap, curve
from helmjax.analysis.convergence import convergence_epoch
from helmjax.analysis.quantization_step import LUMINANCE_TABLE, ijg_scale_factor, jpeg_step, n_approx, scaled_table
from helmjax.analysis.synthetic import SyntheticSweep, _rate, write_sweep
from helmjax.errors import UserError

RESAMPLES = 300  # enough for stable 95% bounds here, and fast


def _analyze(tmp_path, **spec):
    return analyze(write_sweep(tmp_path / "sweep", SyntheticSweep(**spec)), resamples=RESAMPLES)


def test_ijg_scale_factor_and_tables_follow_libjpeg():
    assert [ijg_scale_factor(q) for q in (1, 10, 20, 49, 50, 75, 100)] == [5000, 500, 250, 102, 100, 50, 0]
    np.testing.assert_array_equal(scaled_table(LUMINANCE_TABLE, 50), LUMINANCE_TABLE)
    np.testing.assert_array_equal(scaled_table(LUMINANCE_TABLE, 100), np.ones((8, 8)))
    assert scaled_table(LUMINANCE_TABLE, 1).max() == 255  # baseline clamp
    assert scaled_table(LUMINANCE_TABLE, 75)[0, 0] == 8  # (16 * 50 + 50) // 100
    assert jpeg_step(50)["mean_luminance_step"] == LUMINANCE_TABLE.mean()
    assert n_approx("bits", 3) == {"step": 32.0}
    assert n_approx("kbps", 32, bits_per_second=32000.0, sample_rate=16000) == {"bits_per_sample": 2.0,
                                                                                "sample_rate": 16000}
    assert n_approx("quality", RAW) is None


def test_log_fit_is_exact_on_exact_data():
    levels = np.array([1, 5, 10, 20, 50, 100])
    fit = curve.fit_log(levels, 0.2 * np.log(levels))
    assert fit.c == pytest.approx(0.2, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert curve.fit_log([1, 1], [0.5, 0.6]) is None  # ln 1 = 0 says nothing about c


def test_hinge_fit_recovers_a_noise_free_knee_to_grid_resolution():
    levels = np.array([1, 5, 10, 15, 20, 25, 50, 75, 100])
    truth = curve.HingeFit(knee=17.0, plateau=0.8, slope=0.12, r2=1.0, drop=0.0, shape="knee")
    fit = curve.fit_hinge(levels, curve.hinge_curve(truth, levels))
    assert abs(math.log(fit.knee) - math.log(17.0)) < 0.03
    assert fit.plateau == pytest.approx(0.8, abs=2e-3)
    assert fit.slope == pytest.approx(0.12, abs=5e-3)
    assert fit.shape == "knee" and fit.r2 > 0.999
    assert curve.fit_hinge([10, 20], [0.5, 0.6]) is None  # 3 parameters need 3 levels


def test_hinge_fit_calls_flat_and_rising_curves_by_name():
    levels = np.array([1, 5, 10, 20, 50, 100])
    assert curve.fit_hinge(levels, np.full(6, 0.7)).shape == "flat"
    assert curve.fit_hinge(levels, 0.3 + 0.1 * np.log(levels)).shape == "rising"


def test_known_knee_and_sweet_spot_are_recovered(tmp_path):
    # True curve: plateau from q=20 on, 5 points lower at q=15; 3 seeds with 0.4-point noise, 2000 test examples.
    analysis = _analyze(tmp_path)
    assert analysis.archs == ["A", "F"]  # ordered by parameter count
    for arch, result in analysis.per_arch.items():
        assert result.reference == RAW
        # Stated tolerance: q* is the true knee or, by chance, the next level up.
        assert result.q_star in (20, 25), (arch, result.differences)
        low, high = result.q_star_ci
        assert low == 20 and high in (20, 25, 50, 75, 100, RAW)
        assert result.q_star_tolerance == 20
        # Stated tolerance: the knee within 15% of the truth, and inside its own interval.
        assert abs(math.log(result.hinge_fit["knee"]) - math.log(20.0)) < 0.15
        assert result.knee_ci[0] <= 20.0 <= result.knee_ci[1]
        assert result.hinge_fit["slope"] == pytest.approx(0.15, abs=0.02)
        assert result.hinge_fit["shape"] == "knee"
        bpp = _rate("quality", result.q_star)[0]
        assert result.rate_at_q_star == pytest.approx(bpp, rel=1e-12)
        assert result.noise_bits == pytest.approx(24.0 - bpp, rel=1e-12)
        assert result.n_approx_at_q_star == jpeg_step(result.q_star)
        assert result.log_fit["c"] > 0 and result.log_fit_below_knee is not None
        # Levels well below the knee are significantly below raw; the plateau is not.
        below = {d["level"]: d["not_below"] for d in result.differences}
        assert not any(below[level] for level in (1, 5, 10, 15))
    # With the raw runs' own seed noise, a plateau level can fail by chance: said, not hidden.
    assert all("above q*=20 are significantly below" in w for w in analysis.warnings)


def test_smaller_model_beating_the_largest_is_detected(tmp_path):
    analysis = _analyze(tmp_path, plateau={"A": 0.80, "F": 0.76})
    complexity = analysis.complexity
    assert complexity["largest"] == "F" and complexity["level"] in (20, 25)
    [row] = complexity["comparisons"]
    assert row["arch"] == "A" and row["verdict"] == "beats"
    assert row["diff"] == pytest.approx(0.04, abs=0.01)
    equal = _analyze(tmp_path / "equal", plateau={"A": 0.78, "F": 0.78}, rng_seed=1)
    assert equal.complexity["comparisons"][0]["verdict"] in ("matches", "beats")
    worse = _analyze(tmp_path / "worse", plateau={"A": 0.72, "F": 0.78})
    assert worse.complexity["comparisons"][0]["verdict"] == "worse"


def test_flat_curve_has_no_knee_and_the_lowest_level_is_the_sweet_spot(tmp_path):
    analysis = _analyze(tmp_path, slope=0.0)
    for result in analysis.per_arch.values():
        assert result.hinge_fit["shape"] == "flat"
        assert result.q_star == 1
    assert any("flat" in w for w in analysis.warnings)


def test_curve_rising_to_the_top_has_no_sweet_spot(tmp_path):
    analysis = _analyze(tmp_path, knee=1000.0, slope=0.05)
    for result in analysis.per_arch.values():
        assert result.q_star is None
        assert result.hinge_fit["shape"] == "rising"
        assert result.q_star_ci == (RAW, RAW)
    assert any("no sweet spot" in w for w in analysis.warnings)
    assert any("still rises" in w for w in analysis.warnings)


def test_single_level_with_and_without_raw(tmp_path):
    analysis = _analyze(tmp_path / "with_raw", levels=(20,))
    assert analysis.per_arch["A"].q_star == 20
    assert analysis.per_arch["A"].hinge_fit is None
    assert any("too few to fit" in w for w in analysis.warnings)
    alone = _analyze(tmp_path / "alone", levels=(20,), include_raw=False)
    assert alone.per_arch["A"].q_star == 20 and alone.per_arch["A"].reference == 20
    assert any("single level and no lossless baseline" in w for w in alone.warnings)
    only_raw = _analyze(tmp_path / "only_raw", levels=())
    assert only_raw.per_arch == {}
    assert any("only the lossless baseline" in w for w in only_raw.warnings)


def test_no_raw_baseline_falls_back_to_the_highest_level(tmp_path):
    analysis = _analyze(tmp_path, include_raw=False)
    for result in analysis.per_arch.values():
        assert result.reference == 100
        assert result.q_star == 20
    assert analysis.raw_rate == 24.0  # 8 bits x 3 channels, from the example images
    assert any("no lossless (raw) baseline" in w and "highest level is the reference" in w
               for w in analysis.warnings)


def test_missing_and_failed_runs_are_listed_with_reasons(tmp_path):
    analysis = _analyze(tmp_path, missing=[(50, "A", 1), (RAW, "F", 0)], failed=[(20, "F", 2)])
    assert analysis.missing == [{"level": 50, "arch": "A", "seed": 1, "run": "q50-A-s1"},
                                {"level": RAW, "arch": "F", "seed": 0, "run": "raw-F-s0"}]
    assert analysis.failed == [{"run": "q20-F-s2", "level": 20, "arch": "F", "seed": 2,
                                "error": "NaN loss at step 120: lower the learning rate"}]
    assert analysis.runs == {"results": 58, "done": 57, "failed": 1, "missing": 2, "expected": 60}
    assert any("2 run(s) of the grid have no result" in w for w in analysis.warnings)
    assert any("1 run(s) failed" in w and "q20-F-s2" in w for w in analysis.warnings)
    assert analysis.per_arch["F"].q_star == 20  # two seeds left there still decide it
    json.dumps(analysis.to_dict(), allow_nan=False)


def test_a_level_whose_runs_all_failed_is_left_out(tmp_path):
    failed = [(20, arch, seed) for arch in ("A", "F") for seed in (0, 1, 2)]
    analysis = _analyze(tmp_path, failed=failed)
    assert 20 not in analysis.per_arch["A"].levels
    assert analysis.per_arch["A"].q_star == 25
    assert len(analysis.failed) == 6


def test_results_csv_gives_the_same_answer_as_jsonl(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep())
    from_jsonl = analyze(sweep, resamples=RESAMPLES).to_dict()
    (sweep / "results.jsonl").unlink()
    from_csv = analyze(sweep, resamples=RESAMPLES).to_dict()
    assert from_csv["accuracy"] == from_jsonl["accuracy"]
    assert from_csv["per_arch"] == from_jsonl["per_arch"]


def test_bad_input_gives_warnings_or_one_clear_error(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(10, 20, 50)))
    with (sweep / "results.jsonl").open("a") as f:
        f.write('{"run": "q99-A-s0", "level": "ninety"}\n{"run": truncated\n')
    (sweep / "runs" / "q20-A-s0" / "test_correct.npy").unlink()
    analysis = analyze(sweep, resamples=RESAMPLES)
    assert any("not valid JSON" in w for w in analysis.warnings)
    assert any("unreadable level" in w for w in analysis.warnings)
    assert any("test_correct.npy is missing for 1 run(s)" in w for w in analysis.warnings)
    assert analysis.per_arch["A"].q_star == 20
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "results.jsonl").write_text("")
    assert "the results hold no runs yet" in analyze(empty).warnings
    with pytest.raises(UserError, match="no results.jsonl or results.csv"):
        analyze(tmp_path / "nowhere")


def test_analysis_is_reproducible_and_json_serialisable(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(5, 20, 50)))
    first = analyze(sweep, resamples=RESAMPLES).to_dict()
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert analyze(sweep, resamples=RESAMPLES).to_dict() == first
    assert analyze(sweep, resamples=RESAMPLES, seed=1).to_dict()["per_arch"] != first["per_arch"]


def test_audio_and_bit_depth_sweeps_use_their_own_units(tmp_path):
    audio = _analyze(tmp_path / "audio", levels=(8, 16, 32, 64, 96, 128), knee=32.0, level_name="kbps",
                     quantizer="mp3", archs={"A": 101_164, "F": 3_715_212}, plateau={"A": 0.9, "F": 0.9})
    assert audio.rate_name == "bits_per_second" and audio.level_label == "MP3 bitrate (kbit/s)"
    result = audio.per_arch["A"]
    assert result.q_star == 32
    assert result.n_approx_at_q_star == {"bits_per_sample": 32000 / 22050, "sample_rate": 22050}
    assert result.noise_bits == pytest.approx(16 * 8000 - 32000)
    bits = _analyze(tmp_path / "bits", levels=(1, 2, 3, 4, 5, 6, 7, 8), knee=4.0, level_name="bits",
                    quantizer="bitdepth")
    for result in bits.per_arch.values():
        assert result.q_star in (4, 5)  # the true knee or, by chance, the next level up
        assert result.n_approx_at_q_star == {"step": 2.0 ** (8 - result.q_star)}
        assert abs(math.log(result.hinge_fit["knee"]) - math.log(4.0)) < 0.15


def test_convergence_epoch_follows_the_original_rule():
    assert convergence_epoch([0.1] * 5 + [0.5] * 20) == 6  # first window entirely on the plateau
    assert convergence_epoch([0.5] * 10) == 1
    # A window half on the ramp: mean(0.4*5 + 0.5*5) = 0.45 < 0.495, so epoch 6.
    assert convergence_epoch([0.4] * 5 + [0.5] * 10) == 6
    assert convergence_epoch([]) is None
    assert convergence_epoch([0.1, math.nan]) is None


def test_bootstrap_building_blocks():
    rng = np.random.default_rng(0)
    counts = bootstrap.example_counts(rng, 50, 20)
    np.testing.assert_array_equal(counts.sum(axis=1), np.full(20, 50))
    correct = np.zeros((2, 50), bool)
    correct[0, :25] = True
    correct[1] = True
    accuracies = bootstrap.run_replicates(correct, np.ones((1, 50), np.float32))
    np.testing.assert_array_equal(accuracies, [[0.5, 1.0]])
    assert bootstrap.lowest_passing([1, 5, 10], [False, True, False]) == 5
    assert bootstrap.lowest_passing([1, 5], [False, False]) is None
    # Seed resampling keeps the centre and undoes the (S-1)/S variance shrinkage of the plain bootstrap.
    per_seed = np.tile(np.array([0.70, 0.72, 0.74]), (20000, 1))
    means = bootstrap.seed_resample(rng, per_seed)
    assert means.mean() == pytest.approx(0.72, abs=5e-4)
    assert means.var() == pytest.approx(np.var([0.70, 0.72, 0.74], ddof=1) / 3, rel=0.05)


def test_analysis_does_not_import_matplotlib():
    code = "import sys, helmjax.analysis; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tolerance_is_read_as_a_fraction_below_one_and_as_points_from_one():
    from helmjax.analysis.findings import tolerance_fraction
    assert tolerance_fraction(0.03) == 0.03
    assert tolerance_fraction(2.0) == 0.02
    assert tolerance_fraction(None) == 0.01
    assert bootstrap.lowest_of_top_run([1, 5, 10, 20], [False, True, False, True]) == 20
    assert bootstrap.lowest_of_top_run([1, 5], [True, False]) is None
