"""Analysis of synthetic sweeps with a known curve and known noise: the non-inferiority sweet spot, the knee, the
rates and the secondary claims must recover what went in, and partial, failed, flat, rising, single-seed and
single-level sweeps must give clear warnings, never a crash."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from helmjax.analysis import RAW, analyze
from helmjax.analysis import contrasts, curve, noninferiority
from helmjax.analysis.contrasts import Estimate, Group
from helmjax.analysis.convergence import epochs_to_reach
from helmjax.testing.synthetic_sweep import (CODEC, LOSSLESS_BPP, SyntheticSweep, bit_depth_rates, jpeg_like_rates,
                                        mp3_like_rates, write_sweep)
from helmjax.errors import UserError
from helmjax.reporting.report import summary_text
from helmjax.quantizers import registry
from helmjax.quantizers.jpeg_tables import LUMA_TABLE as LUMINANCE_TABLE, ijg_scale_factor, scaled_table
from helmjax.quantizers.pillow_jpeg import quantization_step as jpeg_step

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
    assert registry.get("pillow_jpeg").step_at(50) == jpeg_step(50)
    assert registry.get("jax_jpeg").step_at(50) == jpeg_step(50) and registry.get("jax_jpeg").label == "JPEG quality"
    assert registry.get("bitdepth").step_at(3) == {"step": 32.0}
    assert registry.get("mp3").step_at(32) is None and registry.get("bitdepth").step_at(RAW) is None


def test_log_fit_has_an_intercept_and_says_when_it_does_not_fit():
    levels = np.array([1, 5, 10, 20, 50, 100])
    fit = curve.fit_log(levels, 0.3 + 0.2 * np.log(levels))
    assert fit.a == pytest.approx(0.3, abs=1e-12) and fit.c == pytest.approx(0.2, abs=1e-12)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12) and fit.fits
    assert fit.c_se == pytest.approx(0.0, abs=1e-9) and fit.df == 4
    noisy = curve.fit_log(levels, 0.3 + 0.2 * np.log(levels) + np.array([0.01, -0.01, 0.0, 0.01, -0.01, 0.0]))
    low, high = curve.slope_interval(noisy, 0.95)
    assert low < noisy.c < high and high - low == pytest.approx(
        2 * stats.t.ppf(0.975, 4) * noisy.c_se) and noisy.c_se > 0
    step = np.where(levels >= 10, 0.8, 0.1)  # a cliff is no log curve
    zigzag = curve.fit_log(levels, np.array([0.8, 0.1, 0.8, 0.1, 0.8, 0.1]))
    assert zigzag.r2 < curve.LOG_FIT_MIN_R2 and not zigzag.fits
    assert curve.fit_log(levels, step).r2 < 1.0
    assert curve.fit_log([10, 20], [0.5, 0.6]) is None


def test_knee_is_the_interpolated_crossing_of_the_monotone_fit():
    levels = [1, 10, 100]
    fitted = curve.monotone_fit([0.5, 0.7, 0.8])
    np.testing.assert_allclose(fitted, [0.5, 0.7, 0.8])
    # plateau 0.8, margin 0.05: crosses 0.75 halfway (in ln q) between 10 and 100.
    assert curve.knee_level(levels, fitted, 0.05) == pytest.approx(math.sqrt(10 * 100))
    assert curve.knee_level(levels, curve.monotone_fit([0.79, 0.8, 0.8]), 0.05) is None
    # Non-monotone data are pooled first: 0.8, 0.6 -> 0.7, 0.7.
    np.testing.assert_allclose(curve.monotone_fit([0.8, 0.6, 0.9]), [0.7, 0.7, 0.9])


def test_knee_call_censors_a_flat_curve_and_brackets_a_real_knee():
    levels = [1, 5, 10, 20, 50, 100]
    rng = np.random.default_rng(0)
    truth = np.array([0.3, 0.55, 0.7, 0.8, 0.8, 0.8])
    replicates = truth + rng.normal(0, 0.005, (400, len(levels)))
    call = curve.knee_call(levels, truth, replicates, 0.01, 0.95)
    true_knee = curve.knee_level(levels, truth, 0.01)
    assert call.shape == "knee" and call.drop_share == 1.0
    assert call.knee == pytest.approx(true_knee)
    assert call.ci[0] <= true_knee <= call.ci[1] and call.ci[1] / call.ci[0] < 1.3
    assert call.bracket == (10, 20)  # the sampled levels the truth crosses plateau - δ between, nothing wider
    flat = np.full(len(levels), 0.8)
    flat_call = curve.knee_call(levels, flat, flat + rng.normal(0, 0.003, (400, len(levels))), 0.01, 0.95)
    assert flat_call.shape == "flat" and flat_call.knee is None and flat_call.drop_share < 0.05
    assert flat_call.ci[0] is None and flat_call.bracket[0] is None  # censored: at or below the lowest level


def _group(acc, seeds=None, resamples=200, noise=0.0, rng=None):
    acc = np.asarray(acc, float)
    rng = rng or np.random.default_rng(0)
    replicates = acc + rng.normal(0, noise, (resamples, len(acc))) if noise else np.tile(acc, (resamples, 1))
    return Group(seeds=tuple(seeds if seeds is not None else range(len(acc))), acc=acc, replicates=replicates)


def test_contrast_is_a_t_interval_with_pooled_seed_variance():
    a, b = _group([0.80, 0.82, 0.81]), _group([0.78, 0.80, 0.79])
    a.test_size = b.test_size = 100_000  # the floor of p(1 - p)/n per run stays far below (see the floor's test)
    pooled = contrasts.share_pooled_variance([a, b])
    # Quasi-binomial pooling: squared deviations over p(1 - p) at each level's mean, scaled back per level.
    scale_a, scale_b = 0.81 * 0.19, 0.79 * 0.21
    dispersion = (2e-4 / scale_a + 2e-4 / scale_b) / 4
    assert pooled.df == 4 and pooled.seed_dispersion == pytest.approx(dispersion)
    assert a.pooled_seed_var() == pytest.approx(dispersion * scale_a)
    estimate = contrasts.contrast([(1.0, a), (-1.0, b)])
    # Each level takes the larger of its own variance (1e-4, 2 df) and the pooled one at its accuracy (4 df).
    var_a, var_b = max(1e-4, dispersion * scale_a), max(1e-4, dispersion * scale_b)
    df_a = 2 if var_a == 1e-4 else 4
    df_b = 2 if var_b == 1e-4 else 4
    se = math.sqrt(var_a / 3 + var_b / 3)  # no example noise in these replicates
    df = se ** 4 / ((var_a / 3) ** 2 / df_a + (var_b / 3) ** 2 / df_b)  # Welch-Satterthwaite
    assert estimate.value == pytest.approx(0.02) and estimate.se == pytest.approx(se)
    assert estimate.df == pytest.approx(df) and estimate.seeds_covered
    assert estimate.lower(0.95) == pytest.approx(0.02 - stats.t.ppf(0.95, df) * se)
    assert estimate.interval(0.95)[1] == pytest.approx(0.02 + stats.t.ppf(0.975, df) * se)
    assert estimate.p_value() == pytest.approx(2 * stats.t.sf(0.02 / se, df))
    # One seed per group and nothing to borrow: test-example noise only, flagged.
    lone = contrasts.contrast([(1.0, _group([0.8], noise=0.01, rng=np.random.default_rng(1))),
                               (-1.0, _group([0.7], noise=0.01, rng=np.random.default_rng(2)))])
    assert not lone.seeds_covered and math.isinf(lone.df) and lone.se == pytest.approx(0.01 * math.sqrt(2), rel=0.15)
    # A one-seed level borrows the pooled variance.
    single = _group([0.75])
    single.pooled = pooled
    borrowed = contrasts.contrast([(1.0, single), (-1.0, a)])
    assert borrowed.seeds_covered and borrowed.se == pytest.approx(
        math.sqrt(dispersion * 0.75 * 0.25 + var_a / 3))


def test_pooled_seed_variance_shrinks_near_the_ceiling():
    """The noise ladder's runs: a 99.6% level spreads by tenths of a point, a 60% one by points; pooling them as one
    variance would make every comparison near the ceiling untestable."""
    top, low = _group([0.996, 0.999, 0.990]), _group([0.63, 0.57, 0.53])
    contrasts.share_pooled_variance([top, low])
    assert top.pooled_seed_var() / low.pooled_seed_var() == pytest.approx(
        top.binomial_scale / low.binomial_scale)
    assert top.pooled_seed_var() < float(np.var(low.acc, ddof=1)) / 10
    # A level whose own spread is larger than the pooled one at its accuracy keeps its own.
    assert low.seed_variance()[0] == pytest.approx(max(float(np.var(low.acc, ddof=1)), low.pooled_seed_var()))


def test_holm_adjusts_in_order():
    assert contrasts.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert contrasts.holm([0.5]) == [0.5]


def test_fixed_sequence_stops_at_the_first_failure():
    estimate = lambda value: Estimate(value=value, se=0.002, df=math.inf, seeds_covered=True)
    estimates = {100: estimate(0.0), 50: estimate(-0.002), 20: estimate(-0.05), 10: estimate(0.0)}
    q_star, tests = noninferiority.fixed_sequence([10, 20, 50, 100], estimates, margin=0.01, confidence=0.95)
    assert q_star == 50  # q=10 would pass on its own, but the sequence stopped at q=20
    assert [(t.level, t.tested, t.passed) for t in tests] == [(10, False, False), (20, True, False),
                                                                (50, True, True), (100, True, True)]
    assert noninferiority.fixed_sequence([50, 100], {50: estimate(0.0), 100: estimate(-0.05)}, 0.01, 0.95)[0] is None
    # Absence of evidence does not pass: a level with a tiny difference but a wide interval fails.
    wide = {100: Estimate(value=0.0, se=0.02, df=2.0, seeds_covered=True)}
    assert noninferiority.fixed_sequence([100], wide, 0.01, 0.95)[0] is None


def test_known_sweet_spot_knee_and_rates_are_recovered(tmp_path):
    # True curve: plateau from q=20 on, 4.3 points lower at q=15; 3 seeds, 0.4-point seed noise, 2000 test examples.
    analysis = _analyze(tmp_path)
    assert analysis.archs == ["A", "F"]  # ordered by parameter count
    assert not analysis.exploratory
    true_knee = curve.knee_level(analysis.levels[:-1], np.array(
        [SyntheticSweep().true_accuracy("A", q) for q in analysis.levels[:-1]]), 0.01)
    for arch, result in analysis.per_arch.items():
        assert result.reference == RAW and result.seeds_covered
        assert result.q_star == 20, (arch, result.tests)
        tests = {t["level"]: t for t in result.tests}
        assert tests[15]["tested"] and not tests[15]["passed"] and not tests[10]["tested"]
        assert all(tests[q]["passed"] and tests[q]["lower_bound"] > -0.01 for q in (20, 25, 50, 75, 100))
        assert result.q_star_tolerance == 20
        knee = result.knee
        assert knee["shape"] == "knee" and knee["ci"][0] <= true_knee <= knee["ci"][1]
        assert abs(math.log(knee["knee"]) - math.log(true_knee)) < 0.1
        payload = jpeg_like_rates(20)[0]
        assert result.rate_at_q_star["mean"] == pytest.approx(payload * np.mean(
            np.load(tmp_path / "sweep" / "rates" / "q20.npz")["payload"]) / (payload * 1024), rel=1e-9)
        low, high = result.bits_not_needed["ci"]
        assert low < LOSSLESS_BPP - payload < high
        assert result.n_approx_at_q_star == jpeg_step(20)
        assert result.n_approx_at_knee == [{"level": level, "n_approx": jpeg_step(level)} for level in knee["bracket"]]
        assert result.log_fit["fits"] is (result.log_fit["r2"] >= 0.5)
    assert analysis.lossless["codec"] == CODEC and analysis.storage_rate == 24.0
    header = next(r for r in analysis.rates if r["level"] == 20)["header"]["mean"]
    assert header == pytest.approx(jpeg_like_rates(20)[1])


def test_rates_without_per_item_bits_have_no_interval_and_say_so(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(5, 20, 50)))
    for path in (sweep / "rates").glob("*.npz"):
        path.unlink()
    analysis = analyze(sweep, resamples=RESAMPLES)
    row = next(r for r in analysis.rates if r["level"] == 20)
    assert row["payload"]["mean"] == pytest.approx(jpeg_like_rates(20)[0]) and row["payload"]["ci"] == (None, None)
    assert any("per-item bits are not saved" in w for w in analysis.warnings)
    result = analysis.per_arch["A"]
    assert result.bits_not_needed["ci"] == (None, None)


def test_one_seed_is_exploratory_and_reference_seeds_cover_training_noise(tmp_path):
    one = _analyze(tmp_path / "one", seeds=(0,))
    assert one.exploratory and not one.per_arch["A"].seeds_covered
    assert any("one seed per level" in w and "exploratory" in w for w in one.warnings)
    more = _analyze(tmp_path / "more", seeds=(0,), reference_seeds=(1, 2, 3))
    assert not more.exploratory and more.per_arch["A"].seeds_covered
    assert more.accuracy[-1]["level"] == RAW and more.accuracy[-1]["n"] == 4
    assert more.missing == []


def test_a_reference_above_the_calibrated_ceiling_makes_the_answer_exploratory(tmp_path):
    # 3 seeds everywhere (training noise covered): only the accuracy decides
    high = _analyze(tmp_path / "high", plateau={"A": 0.999}, archs={"A": 701_386})
    assert not high.per_arch["A"].calibrated and high.per_arch["A"].seeds_covered and high.exploratory
    assert "reference above 99.5%" in high.exploratory_reason and "one seed" not in high.exploratory_reason
    assert any("above 99.5% for A" in w and "exploratory" in w for w in high.warnings)
    assert "EXPLORATORY: reference above 99.5%" in summary_text(high)
    assert "That rate is not shown for A" in summary_text(high)
    usual = _analyze(tmp_path / "usual", plateau={"A": 0.99}, archs={"A": 701_386})
    assert usual.per_arch["A"].calibrated and not usual.exploratory and usual.exploratory_reason == ""


def test_a_failed_reference_run_is_flagged(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(10, 20, 50, 100)))
    rows = [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]
    for row in rows:
        if row["run"] == "raw-A-s1":
            row["test_acc"] = 0.60  # a bad reference run
            np.save(sweep / "runs" / "raw-A-s1" / "test_correct.npy", np.arange(2000) < 1200)
    (sweep / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (sweep / "results.csv").unlink()
    analysis = analyze(sweep, resamples=RESAMPLES)
    assert any("arch A: reference run seed 1" in w for w in analysis.warnings), analysis.warnings
    assert any("arch A: the reference" in w and "below its neighbouring levels" in w for w in analysis.warnings)
    assert not any("arch F: reference" in w or "arch F: the reference" in w for w in analysis.warnings)


def test_flat_curve_has_no_knee_and_the_lowest_level_is_the_sweet_spot(tmp_path):
    analysis = _analyze(tmp_path, slope=0.0)
    for result in analysis.per_arch.values():
        assert result.knee["shape"] == "flat" and result.knee["knee"] is None and result.knee["ci"][0] is None
        assert result.q_star == 1
    assert any("no drop larger than δ" in w for w in analysis.warnings)


def test_curve_rising_to_the_top_has_no_sweet_spot(tmp_path):
    analysis = _analyze(tmp_path, knee=1000.0, slope=0.05)
    for result in analysis.per_arch.values():
        assert result.q_star is None and result.rate_at_q_star is None and result.bits_not_needed is None
        assert result.knee["shape"] == "knee"
    assert any("no sweet spot" in w for w in analysis.warnings)


def test_logistic_truth_and_margin_from_the_config(tmp_path):
    spec = dict(shape="logistic", knee=8.0, width=0.4)
    strict = _analyze(tmp_path / "strict", **spec)
    sweep = write_sweep(tmp_path / "loose", SyntheticSweep(**spec))
    config = json.loads((sweep / "sweep.json").read_text())
    config["analysis"]["margin"] = 10.0
    (sweep / "sweep.json").write_text(json.dumps(config))
    loose = analyze(sweep, resamples=RESAMPLES)
    assert loose.settings["margin_points"] == 10.0
    for arch in ("A", "F"):
        assert float(loose.per_arch[arch].q_star) < float(strict.per_arch[arch].q_star)
    with pytest.raises(UserError, match="analysis.margin"):
        analyze(sweep, margin=-1.0)
    with pytest.raises(UserError, match="analysis.confidence"):
        analyze(sweep, confidence=1.5)


def test_single_level_with_and_without_raw(tmp_path):
    analysis = _analyze(tmp_path / "with_raw", levels=(20,))
    assert analysis.per_arch["A"].q_star == 20 and analysis.per_arch["A"].knee is None
    assert any("too few for a knee" in w for w in analysis.warnings)
    alone = _analyze(tmp_path / "alone", levels=(20,), include_raw=False)
    assert alone.per_arch["A"].q_star == 20 and alone.per_arch["A"].reference == 20
    assert any("single level and no lossless baseline" in w for w in alone.warnings)
    only_raw = _analyze(tmp_path / "only_raw", levels=())
    assert only_raw.per_arch == {}
    assert any("only the lossless baseline" in w for w in only_raw.warnings)


def test_no_raw_baseline_falls_back_to_the_highest_level(tmp_path):
    analysis = _analyze(tmp_path, include_raw=False)
    for result in analysis.per_arch.values():
        assert result.reference == 100 and result.q_star == 20
    assert analysis.storage_rate is None and analysis.lossless["mean"] == pytest.approx(LOSSLESS_BPP, rel=0.05)
    assert any("no lossless (raw) baseline" in w and "least compressed level is the reference" in w
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
    audio = _analyze(tmp_path / "audio", levels=(8, 16, 32, 64, 96, 128), knee=32.0, rates=mp3_like_rates,
                     quantizer="mp3", archs={"A": 101_164, "F": 3_715_212}, plateau={"A": 0.9, "F": 0.9})
    assert audio.rate_name == "bits_per_second" and audio.level_label == "MP3 bitrate (kbps)"
    result = audio.per_arch["A"]
    assert result.q_star == 32
    assert result.n_approx_at_q_star == {"bits_per_sample": 32000 / 22050, "sample_rate": 22050}
    assert result.bits_not_needed is None and audio.lossless is None  # no lossless rate measured
    assert any("no lossless rate was measured" in w for w in audio.warnings)
    bits = _analyze(tmp_path / "bits", levels=(1, 2, 3, 4, 5, 6, 7, 8), knee=4.0, rates=bit_depth_rates,
                    quantizer="bitdepth")
    for result in bits.per_arch.values():
        assert result.q_star == 4
        assert result.n_approx_at_q_star == {"step": 2.0 ** (8 - result.q_star)}
        assert result.rate_at_q_star["mean"] == pytest.approx(12.0, rel=0.05)


def test_model_size_is_a_difference_in_differences_with_holm(tmp_path):
    # A is 4 points below F everywhere: compression costs both the same, so no difference in differences.
    analysis = _analyze(tmp_path, plateau={"A": 0.76, "F": 0.80})
    size = analysis.model_size
    assert size["largest"] == "F" and size["level"] == 20
    [row] = size["comparisons"]
    assert row["arch"] == "A" and row["verdict"] == "no difference shown"
    assert row["ci"][0] < 0 < row["ci"][1] and row["gap"] == pytest.approx(-0.04, abs=0.01)
    assert row["p_holm"] == pytest.approx(row["p"])  # one model: Holm changes nothing
    # Built by hand: the small model loses 5 points at q=10 where the large one loses none.
    group = lambda acc: _group(acc, noise=0.002)
    groups = {("S", RAW): group([0.80, 0.81, 0.79]), ("S", 10): group([0.75, 0.76, 0.74]),
              ("L", RAW): group([0.85, 0.86, 0.84]), ("L", 10): group([0.85, 0.84, 0.86])}
    for arch in ("S", "L"):
        contrasts.share_pooled_variance([g for (a, _), g in groups.items() if a == arch])
    did = contrasts.contrast([(1, groups[("S", 10)]), (-1, groups[("L", 10)]), (-1, groups[("S", RAW)]),
                              (1, groups[("L", RAW)])])
    assert did.value == pytest.approx(-0.05) and did.interval(0.95)[1] < 0 and did.p_value() < 0.01


def test_convergence_is_epochs_to_a_share_of_the_raw_best():
    assert epochs_to_reach([0.1, 0.5, 0.9, 0.95], 0.9) == 3
    assert epochs_to_reach([0.1, 0.2, 0.2], 0.9) is None  # a collapsed run never converges
    assert epochs_to_reach([], 0.5) is None
    assert epochs_to_reach([0.1, math.nan, 0.6], 0.5) == 3


def test_convergence_rows_of_a_sweep(tmp_path):
    analysis = _analyze(tmp_path, levels=(1, 20, 100))
    rows = {(r["arch"], r["level"]): r for r in analysis.accuracy}
    assert rows[("A", 1)]["converged"] == 0 and rows[("A", 1)]["convergence_epochs"] is None  # 35% never reaches 76%
    assert rows[("A", 100)]["converged"] == 3 and rows[("A", 100)]["convergence_epochs"] is not None


def test_analysis_does_not_import_matplotlib():
    code = "import sys, helmjax.analysis; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tolerance_is_read_as_a_fraction_below_one_and_as_points_from_one():
    from helmjax.analysis.bootstrap import lowest_of_top_run
    from helmjax.analysis.findings import tolerance_fraction
    assert tolerance_fraction(0.03) == 0.03
    assert tolerance_fraction(2.0) == 0.02
    assert tolerance_fraction(None) == 0.01
    assert lowest_of_top_run([1, 5, 10, 20], [False, True, False, True]) == 20
    assert lowest_of_top_run([1, 5], [True, False]) is None


def test_codec_comparison_pairs_every_codec_with_jpeg_at_its_own_q_star():
    """Three codecs (a third once broke the comparison): bits saved against JPEG, file and payload, as differences
    and as shares of JPEG's, paired item by item; a codec without q* has no rate."""
    import types
    from helmjax.analysis import codec_comparison
    rng = np.random.default_rng(0)
    n = 200
    bits = {"jpeg": {18: {"file": rng.uniform(5.5, 5.9, n), "payload": rng.uniform(0.6, 1.0, n)}},
            "learned": {0.6: {"file": rng.uniform(5.3, 5.7, n), "payload": rng.uniform(0.4, 0.8, n)}},
            "other": {0.5: {"file": rng.uniform(5.0, 5.4, n), "payload": rng.uniform(0.3, 0.7, n)}},
            "none": {}}

    def facet(tag, quantizer, q_star):
        rates = [{"level": level, "file": {"mean": float(b["file"].mean())}} for level, b in bits[tag].items()]
        analysis = types.SimpleNamespace(quantizer=quantizer, per_arch={"A": types.SimpleNamespace(q_star=q_star)},
                                         settings={"confidence": 0.95}, rates=rates, level_text=str, accuracy=[])
        return {"tag": tag}, analysis

    facets = [facet("jpeg", "jax_jpeg", 18), facet("learned", "learned_jpeg", 0.6), facet("other", "webp", 0.5),
              facet("none", "avif", None)]
    rows = codec_comparison.compare_bits(facets, bits, resamples=200)
    assert [(r["setting"], r["reference"]) for r in rows] == [(tag, "jpeg") for tag in bits]
    assert rows[0]["saved"] is None and rows[3]["file"] is None and rows[3]["payload_saved_share"] is None
    ref = bits["jpeg"][18]
    for row, level in ((rows[1], 0.6), (rows[2], 0.5)):
        mine = bits[row["setting"]][level]
        saved = ref["payload"] - mine["payload"]
        assert row["payload_saved"]["mean"] == pytest.approx(saved.mean())
        assert row["payload_saved_share"]["mean"] == pytest.approx(saved.mean() / ref["payload"].mean())
        assert row["saved_share"]["mean"] == pytest.approx((ref["file"] - mine["file"]).mean() / ref["file"].mean())
        for key in ("saved", "saved_share", "payload_saved", "payload_saved_share"):
            low, high = row[key]["ci"]
            assert low < row[key]["mean"] < high, key


def test_codec_comparison_bounds_the_saving_by_the_grid_and_compares_accuracy_at_equal_rate():
    """The learned-table sweep's own numbers (BENCHMARKS.md): Annex K passes q=18 and fails q=16, the learned tables
    pass 0.6 bpp and fail 0.5. The payload saving at the two q* (26.5%) is one point of 1 - 0.600/0.710 = 15.5% to
    1 - 0.504/0.816 = 38.2%; at equal payload rate the learned q* (0.600) meets Annex K q=14 (0.613, the fewest bits
    not below 0.600)."""
    import types
    from helmjax.analysis import bounded, codec_comparison
    from helmjax.reporting import facets as facets_lib
    rng = np.random.default_rng(3)
    n = 300
    # level: (payload bpp, accuracy, its interval), fixed sequence from the least compressed level down
    annex = {20: (0.892, 0.999, (0.996, 1.0)), 18: (0.816, 0.997, (0.993, 1.0)), 16: (0.710, 0.979, (0.968, 0.990)),
             14: (0.613, 0.950, (0.933, 0.966))}
    learned = {0.7: (0.701, 0.995, (0.990, 1.0)), 0.6: (0.600, 0.996, (0.990, 1.0)),
               0.5: (0.504, 0.985, (0.976, 0.995)), 0.4: (0.401, 0.95, (0.93, 0.98))}
    header = 4.3

    def facet(tag, quantizer, levels, q_star, failed):
        rates = [{"level": level, "payload": {"mean": rate}, "file": {"mean": rate + header}}
                 for level, (rate, _, _) in levels.items()]
        accuracy = [{"arch": "A", "level": level, "mean": acc, "ci": ci} for level, (_, acc, ci) in levels.items()]
        order = list(levels)
        tests = [{"level": level, "tested": order.index(level) <= order.index(failed),
                  "passed": order.index(level) < order.index(failed)} for level in order]
        result = types.SimpleNamespace(q_star=q_star, tests=tests)
        analysis = types.SimpleNamespace(quantizer=quantizer, per_arch={"A": result}, settings={"confidence": 0.95},
                                         rates=rates, accuracy=accuracy, level_text=lambda level: f"q={level}")
        return {"tag": tag}, analysis

    def items(rate):
        payload = rate + rng.normal(0, 0.05, n)
        payload += rate - payload.mean()
        return {"file": payload + header, "payload": payload}

    facets = [facet("annex_k", "pillow_jpeg", annex, 18, 16), facet("learned", "learned_jpeg", learned, 0.6, 0.5)]
    bits = {"annex_k": {18: items(0.816)}, "learned": {0.6: items(0.600)}}
    reference, row = codec_comparison.compare_bits(facets, bits, resamples=200)
    assert reference["saved_range"] is None and reference["equal_rate"] is None
    assert row["payload_saved_share"]["mean"] == pytest.approx(1 - 0.600 / 0.816)
    assert row["payload_saved_range"] == pytest.approx({"low": 1 - 0.600 / 0.710, "high": 1 - 0.504 / 0.816})
    assert row["saved_range"] == pytest.approx({"low": 1 - 4.9 / 5.01, "high": 1 - 4.804 / 5.116})
    low, high = row["payload_saved_range"]["low"], row["payload_saved_range"]["high"]
    assert low < row["payload_saved_share"]["mean"] < high
    equal = row["equal_rate"]
    assert equal["kind"] == "payload" and equal["reference_level"] == 14 and equal["reference_rate"] == 0.613
    assert equal["diff"] == pytest.approx(0.996 - 0.950)
    assert equal["ci"] == pytest.approx(bounded.mover(0.996, (0.990, 1.0), 0.950, (0.933, 0.966)))
    assert 0 < equal["ci"][0] < equal["diff"] < equal["ci"][1]
    assert codec_comparison.rate_kind("webp", "pillow_jpeg") == "file"
    # Without a failed level the saving has no lower bound from the grid: the reference's threshold may be tiny.
    assert codec_comparison.saved_range({"low": 5.0, "high": 5.1}, {"low": None, "high": 5.5})["low"] is None
    text = "\n".join(facets_lib.saving_lines(row, "bpp", 0.95))
    assert "between 15% and 38%" in text and "q=14" in text
    spread = facets_lib.spread_lines([row, dict(row, setting="learned_s1", q_star_text="0.7",
                                                payload_saved_share={"mean": 0.14, "ci": (0.134, 0.146)})])
    assert spread and "from 14% to 26%" in spread[0]


def test_a_level_at_n_of_n_reports_intervals_inside_0_and_100_percent(tmp_path):
    """Plateau above 1: raw and the levels from the knee up score 2000/2000 at every seed, while the noisy levels
    below give the pooled seed variance something to scale. A symmetric t interval reached past 100% there."""
    analysis = _analyze(tmp_path, plateau={"A": 1.05, "F": 1.05}, seed_noise=0.01)
    perfect = [row for row in analysis.accuracy if row["mean"] == 1.0]
    assert {row["level"] for row in perfect} >= {RAW, 50, 100}
    for row in analysis.accuracy:
        low, high = row["ci"]
        assert 0.0 <= low <= row["mean"] <= high <= 1.0, row
    assert all(row["ci"][1] == 1.0 and row["ci"][0] < 1.0 for row in perfect)
    margin = analysis.settings["margin"]
    for result in analysis.per_arch.values():
        for test in result.tests:
            low, high = test["ci"]
            assert -1.0 <= low <= test["lower_bound"] <= test["diff"] <= high <= 1.0, test
            if test["tested"]:  # the bound the report prints is the one that decides
                assert test["passed"] == (test["lower_bound"] > -margin)
        assert result.q_star not in (None, RAW)
    for row in analysis.model_size["per_level"]:
        assert -1.0 <= row["gap_ci"][0] <= row["gap"] <= row["gap_ci"][1] <= 1.0
