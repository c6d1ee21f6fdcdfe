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
