"""The power planner (`helmjax.analysis.power`, `run.py --plan`): its formulas where they are exact, its searches,
the pilot it reads, the printed plan, and its predicted power against the share of simulated sweeps that the real
analysis (`per_arch.analyze_arch`) passes."""

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from scipy import integrate, stats

from benchmarks import calibrate_analysis
from helmjax import config as config_lib
from helmjax.analysis import bounded, findings, per_arch, power
from helmjax.analysis.levels import LevelScale
from helmjax.analysis.pilot import read_pilot
from helmjax.layout import RAW
from helmjax.quantizers import registry
from helmjax.reporting import plan_text
from helmjax.testing.synthetic_sweep import SyntheticSweep, write_sweep

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_power_is_the_noncentral_t_where_the_bound_is_the_t_bound():
    # One seed per level: every variance comes from the reference's spread (no group can use its own). At 50% and
    # a standard error worth ~10^5 examples the Wilson limits are the t limits. Then the integral is the noncentral
    # t power (up to the grid's quadrature error).
    design = power.Design(level_seeds=1, reference_seeds=4, levels=6, num_test=10 ** 6, confidence=0.95)
    noise = power.Noise(accuracy=0.5, train_sd=0.002, example_share=0.5)
    for margin in (0.002, 0.005, 0.01):
        assert power.power(design, noise, margin) == pytest.approx(power.noncentral_t_power(design, noise, margin),
                                                                    abs=2e-3)
    # One seed everywhere (exploratory): a normal bound on each run's own luck; training noise only in D.
    alone = power.Design(level_seeds=1, reference_seeds=1, levels=6, num_test=10 ** 6, confidence=0.95)
    assert not alone.seeds_covered
    assert power.power(alone, noise, 0.002) == pytest.approx(power.noncentral_t_power(alone, noise, 0.002), abs=1e-4)


def test_a_level_using_its_own_spread_costs_power_the_noncentral_t_misses():
    # With 2 seeds per level a level's own variance (1 df) exceeds the pooled one about a third of the time, and
    # then t has ~1 df (6.3 at 95%): the textbook power, which pools everything, is far too optimistic.
    design = power.Design(level_seeds=2, reference_seeds=5, levels=9, num_test=2000, confidence=0.95)
    noise = power.Noise(accuracy=0.95, train_sd=0.005, example_share=0.5)
    margin = power.smallest_margin(design, noise)
    assert power.power(design, noise, margin) == pytest.approx(power.TARGET_POWER, abs=1e-4)
    assert power.noncentral_t_power(design, noise, margin) > 0.99


def test_vectorised_bound_is_boundeds_square_and_add_of_wilson_limits():
    cases = [(0.95, 0.95, 6e-5, 2e-5, 5e-5, 2.92), (0.93, 0.95, 3e-5, 3e-5, 4e-5, 1.8),
             (0.6, 0.62, 1e-4, 5e-5, 1.2e-4, 1.645), (0.99, 0.995, 1e-5, 1e-5, 1.5e-5, 4.3)]
    for first, second, v1, v2, vd, critical in cases:  # accuracies, their variances, D's variance, t quantile
        limits = lambda p, v: bounded.wilson(p * (p * (1 - p) / v), p * (1 - p) / v, critical)
        r = (v1 + v2 - vd) / (2 * math.sqrt(v1 * v2))
        lower, _ = bounded.mover(first, limits(first, v1), second, limits(second, v2), r)
        offset = power._mover_offset(first, np.array([v1]), second, np.array([v2]), np.array([vd]),
                                     np.array([critical]), 10 ** 6)
        assert float(offset[0]) == pytest.approx((first - second) - lower, rel=1e-9)


def test_smallest_margin_and_needed_seeds_and_examples_are_the_boundaries():
    design = power.Design(level_seeds=3, reference_seeds=5, levels=5, num_test=1000, confidence=0.95)
    noise = power.Noise(accuracy=0.9, train_sd=0.004, example_share=0.6)
    for share in (0.0, 0.5):
        margin = power.smallest_margin(design, noise, share)
        assert power.power(design, noise, margin, share * margin) == pytest.approx(0.8, abs=1e-4)
    margin = 0.01
    seeds = power.seeds_needed(design, noise, margin)
    at = lambda s: power.power(power.Design(s, s + 2, 5, 1000, 0.95), noise, margin)
    assert at(seeds) >= 0.8 > at(seeds - 1)
    examples = power.examples_needed(design, noise, 0.02)
    assert power.power(power.Design(3, 5, 5, examples, 0.95), noise, 0.02) >= 0.8 > \
        power.power(power.Design(3, 5, 5, examples - 1, 0.95), noise, 0.02)
    # Training noise alone (an infinite test set) keeps 3 seeds below 80% at δ = 0.5 points: no test set is enough.
    assert power.examples_needed(design, noise, 0.005) is None


def test_pilot_reads_the_seed_spread_the_analysis_pools(tmp_path):
    # A flat truth (every level at its arch's plateau), 5 seeds, training noise 1 point: the synthetic runs' test
    # accuracy is the drawn accuracy rounded to an example, so the seed spread is the training noise.
    spec = SyntheticSweep(levels=(10, 50, 100), archs={"A": 1000}, plateau={"A": 0.9}, slope=0.0,
                          seeds=(0, 1, 2, 3, 4), seed_noise=0.01, num_test=2000, rng_seed=3)
    sweep = write_sweep(tmp_path / "pilot", spec)
    pilot = read_pilot(sweep)
    assert pilot.runs == 20 and pilot.num_test == 2000 and pilot.df == 16
    rows = [json.loads(line) for line in (sweep / "results.jsonl").read_text().splitlines()]
    groups = {}
    for row in rows:
        groups.setdefault(row["level"], []).append(row["test_acc"])
    # The analysis' quasi-binomial pooling: each level's squares over p(1 - p) at its mean, back at the reference's.
    scale = lambda p: p * (1.0 - p)
    dispersion = sum(np.sum((np.array(a) - np.mean(a)) ** 2) / scale(np.mean(a)) for a in groups.values()) / 16
    assert pilot.accuracy == pytest.approx(np.mean(groups[RAW]))
    assert pilot.run_var == pytest.approx(dispersion * scale(pilot.accuracy), rel=1e-9)
    assert stats.chi2.ppf(0.001, 16) / 16 < pilot.run_var / 0.01 ** 2 < stats.chi2.ppf(0.999, 16) / 16
    assert 0.0 <= pilot.example_share <= 1.0  # measured from the runs' test_correct.npy
    assert read_pilot(tmp_path / "nothing") is None


def test_plan_of_the_demo_states_its_design_and_assumptions_and_writes_nothing(tmp_path):
    config = config_lib.load_experiment("demo_q_sweep")
    sections = plan_text.plan_sections(config, tmp_path)
    assert [s.title for s in sections] == ["Power plan", "Design (per arch: A)", "Noise",
                                           "Power (per level, against the reference)",
                                           "Needed for δ = 1 point with 80% power (a level that loses nothing)",
                                           "What the model holds"]
    inputs = plan_text.resolve_inputs(config.to_dict(), None)
    assert inputs.design == power.Design(level_seeds=1, reference_seeds=3, levels=7, num_test=2000, confidence=0.95)
    assert inputs.noise == plan_text.DEFAULT_NOISE and inputs.margin == pytest.approx(0.01)
    text = plan_text.format_sections(sections)
    assert f"{plan_text.in_points(power.smallest_margin(inputs.design, inputs.noise))} if the level loses nothing" \
        in text.replace("\n    ", " ")
    assert "assumed" in text and "2 degrees of freedom" in text
    assert list(tmp_path.iterdir()) == []


def test_plan_takes_noise_and_accuracy_from_a_pilot_in_the_workdir(tmp_path):
    config = config_lib.load_experiment("demo_q_sweep")
    spec = SyntheticSweep(levels=(10, 50, 100), archs={"A": 1000}, plateau={"A": 0.95}, slope=0.0,
                          seeds=(0, 1, 2), seed_noise=0.006, num_test=2000, rng_seed=1)
    pilot = read_pilot(write_sweep(tmp_path / config.name, spec))
    inputs = plan_text.resolve_inputs(config.to_dict(), pilot)
    assert inputs.noise.accuracy == pilot.accuracy and inputs.noise.example_share == pilot.example_share
    assert inputs.noise.run_var(pilot.num_test) == pytest.approx(pilot.run_var)
    text = plan_text.format_sections(plan_text.plan_sections(config, tmp_path))
    assert "measured" in text and f"pilot {tmp_path / config.name}" in text.replace("\n    ", " ")


def test_run_py_plan_prints_the_plan_and_trains_nothing(tmp_path):
    done = subprocess.run([sys.executable, "run.py", "--experiment=demo_q_sweep", "--plan", f"--workdir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "smallest δ shown with 80% power" in done.stdout and list(tmp_path.iterdir()) == []


# Simulated sweeps: calibrate_analysis' model (a latent difficulty per test example shared by every run, a run's
# population accuracy = truth + training noise, quasi-binomial), 9 JPEG levels and raw at 95%; the top level (100,
# tested first) is `drop` below raw, the others at raw's accuracy. Given to the planner: the simulation's own
# training sd and κ (the latent model's own luck of a run over p(1 - p), what a pilot would measure).
SWEEPS = 600
RESAMPLES = 100
MODEL_ALLOWANCE = 0.02  # the planner's approximations: the Wilson skew at the expected accuracies, the measured
# shared test-set part taken as 0, the quadrature grid (1500-3000-sweep runs agreed within 0.01)
ACCURACY, TRAIN_SD = 0.95, 0.005


def latent_example_share(p: float) -> float:
    """κ of calibrate_analysis' runs: E[π(1 - π)] / p(1 - p) with π = Φ(θ - a z) the chance of example z."""
    a = calibrate_analysis.LATENT_WEIGHT
    theta = stats.norm.ppf(p) * math.sqrt(a * a + 1.0)
    own = integrate.quad(lambda z: stats.norm.cdf(theta - a * z) * stats.norm.sf(theta - a * z) * stats.norm.pdf(z),
                         -10, 10)[0]
    return own / (p * (1.0 - p))


def simulated_pass_share(monkeypatch, design: power.Design, margin: float, drop: float, seed: int) -> float:
    monkeypatch.setattr(calibrate_analysis, "PLATEAU", ACCURACY)
    monkeypatch.setitem(calibrate_analysis.TRUTHS, "planner", lambda q: ACCURACY - drop if q == 100 else ACCURACY)
    config = calibrate_analysis.Config("planner", design.level_seeds, TRAIN_SD,
                                       reference_seeds=design.reference_seeds - design.level_seeds,
                                       num_test=design.num_test, seed_model="binomial")
    settings = findings.make_settings({}, RESAMPLES, design.confidence, 100.0 * margin, seed)
    scale = LevelScale(registry.get("pillow_jpeg").describe(calibrate_analysis.LEVELS))
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(SWEEPS):
        groups = calibrate_analysis.simulate_groups(rng, config, RESAMPLES)
        result = per_arch.analyze_arch("A", None, groups, scale, [], None, settings, rng, [])
        passed += next(t for t in result.tests if t["level"] == 100)["passed"]
    return passed / SWEEPS


@pytest.mark.slow
@pytest.mark.parametrize("level_seeds, reference_seeds, num_test, drop_share, textbook_far, seed", [
    (1, 3, 2000, 0.0, False, 1),  # the demo's shape: one seed per level, three at raw
    (3, 3, 1000, 0.0, True, 2),
    (3, 3, 1000, 0.5, True, 3),  # a level that loses half the margin
    (2, 5, 2000, 0.0, True, 4),  # two seeds per level: a level's own 1-df spread often wins the max rule
])  # (3+3 and 2+5: the noncentral t says 0.94-0.999 at these δ; 600-3000-sweep runs agreed with the planner)
def test_planned_power_matches_the_share_of_simulated_sweeps_the_analysis_passes(
        monkeypatch, level_seeds, reference_seeds, num_test, drop_share, textbook_far, seed):
    design = power.Design(level_seeds, reference_seeds, len(calibrate_analysis.LEVELS), num_test, 0.95)
    noise = power.Noise(ACCURACY, TRAIN_SD, latent_example_share(ACCURACY))
    margin = power.smallest_margin(design, noise, drop_share)  # the δ `--plan` prints: 80% power
    drop = drop_share * margin
    predicted = power.power(design, noise, margin, drop)
    textbook = power.noncentral_t_power(design, noise, margin, drop)
    simulated = simulated_pass_share(monkeypatch, design, margin, drop, seed)
    tolerance = 3.0 * math.sqrt(predicted * (1.0 - predicted) / SWEEPS) + MODEL_ALLOWANCE
    print(f"\n{level_seeds}+{reference_seeds} seeds, {num_test} test, δ = {100 * margin:.2f} points, drop "
          f"{100 * drop:.2f}: planner {predicted:.3f}, simulated {simulated:.3f} ({SWEEPS} sweeps), "
          f"noncentral t {textbook:.3f}, tolerance ±{tolerance:.3f}")
    assert abs(simulated - predicted) <= tolerance
    if textbook_far:  # the test can tell: the textbook formula, without the max rule, is further off
        assert abs(simulated - predicted) < abs(simulated - textbook)
