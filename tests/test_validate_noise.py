"""The validation command's statistics: Spearman with its bootstrap interval and exact permutation p, and how the
report's numbers are read from a ladder's facet rows (censored knees, no q*, q_N beyond the quality range)."""

import math

import numpy as np

from benchmarks import validate_noise


def test_spearman_of_a_monotone_ladder_is_one_with_the_exact_permutation_p():
    truth = [0.0, 1.2, 2.5, 5.0, 10.0, 20.0]
    result = validate_noise.spearman(truth, np.exp(truth), resamples=200, confidence=0.95)
    assert result["rho"] == 1.0 and result["n"] == 6
    assert math.isclose(result["p"], 2 / math.factorial(6))  # two-sided: only the two extreme pairings
    assert result["ci"][1] == 1.0 and result["ci"][0] <= 1.0
    flipped = validate_noise.spearman(truth, [-t for t in truth], resamples=200, confidence=0.95)
    assert flipped["rho"] == -1.0


def test_spearman_refuses_constant_or_too_few_points():
    assert validate_noise.spearman([1, 2, 3], [5, 5, 5], 100, 0.95)["note"] == "constant"
    assert validate_noise.spearman([1, 2, None], [1, 2, 3], 100, 0.95)["note"] == "too few points"


def test_quantities_read_censored_knees_missing_q_star_and_q_n_beyond_the_range():
    row = {"accuracy": [{"level": "raw"}, {"level": 5}, {"level": 50}], "knee_shape": "censored", "knee": None,
           "q_star": None, "q_star_position": None, "n_approx_at_q_star": None, "bits_not_needed": None,
           "sigma_estimate": 1.5, "q_n": [{"subsampling": "4:2:0", "quality": "above 100"},
                                          {"subsampling": "4:4:4", "quality": 87.0}]}
    read = {key: reader(row) for key, (_, reader) in validate_noise.QUANTITIES.items()}
    assert read == {"knee": 5.0, "q_star": 51.0, "n_approx": None, "bits_not_needed": None, "lossless": None,
                    "sigma_estimate": 1.5,
                    "q_n": 101.0, "q_n_444": 87.0}


def test_factorial_elasticities_recover_a_known_power_law_and_the_verdicts_follow_the_equivalence_bound():
    from benchmarks import validate_factorial as vf
    sigma = np.repeat([18.0, 7.8, 1.9], 3)
    contrast = np.tile([0.0315, 0.045, 0.063], 3)
    knees = np.exp(1.5 - 0.3 * np.log(sigma) + 0.8 * np.log(contrast))
    fit = vf.elasticities(np.log(sigma), np.log(contrast), np.log(np.stack([knees, knees * 1.1])))
    assert fit.shape == (2, 3)
    assert np.allclose(fit[0], [1.5, -0.3, 0.8]) and np.allclose(fit[1], [1.5 + np.log(1.1), -0.3, 0.8])
    bound = vf.EQUIVALENCE
    assert vf.equivalence((-bound / 2, bound / 2)).startswith("within")
    assert vf.equivalence((bound, 2 * bound)).startswith("outside")
    assert vf.equivalence((-2 * bound, -bound)).startswith("outside")
    assert vf.equivalence((-bound / 2, 2 * bound)).startswith("crosses")


def test_the_papers_prediction_per_setting_reads_q_n_against_the_knee_or_against_q_star():
    from benchmarks import validate_factorial as vf
    row = lambda q_n, q_star: {"q_n": [{"subsampling": "4:2:0", "quality": q_n}], "q_star": q_star}
    assert vf.prediction(row(18.0, 30), (12.0, 25.0), 50.0).startswith("consistent")
    assert vf.prediction(row(88.0, 30), (12.0, 25.0), 50.0).startswith("contradicted")
    # q_N above the grid: the prediction needs the least compressed level to fail against raw
    assert vf.prediction(row("above 100", 20), (12.0, 25.0), 50.0).startswith("contradicted")
    assert vf.prediction(row("above 100", None), (12.0, 25.0), 50.0).startswith("consistent")
    assert vf.prediction({"q_n": None, "q_star": 20}, (12.0, 25.0), 50.0) == "no q_N"
