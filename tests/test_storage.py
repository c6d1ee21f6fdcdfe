"""The storage question: nested training-set sizes, the storage law fit, budget answers, and the report sections
(storage and matched/mismatched compression) on a real tiny sweep."""

import json

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.analysis import storage_law
from helmjax.errors import UserError
from helmjax.reporting import facets, storage
from helmjax.sweeps import identity, sweep
from helmjax.sweeps.level_data import nested_subset, split_validation
from helmjax.sweeps.plan import make_plan

TRUE = dict(E=0.02, A=3.0, alpha=0.6, B=100.0, beta=1.2)
SIZES = [170, 340, 675, 1350, 2700]
LEVELS = [("raw", 12000.0), (100, 6000.0), (50, 1500.0), (20, 900.0), (10, 600.0), (5, 400.0)]


def simulated_points(seed=0, seeds=3, m=2000, true=TRUE):
    """Grid points whose errors are drawn from a known law: per-example Bernoulli errors, shared test set size."""
    rng = np.random.default_rng(seed)
    points = []
    for n in SIZES:
        for level, bits in LEVELS:
            p = true["E"] + true["A"] * n ** -true["alpha"] + true["B"] * bits ** -true["beta"]
            correct = rng.random((seeds, m)) > p
            points.append(storage_law.GridPoint(n, level, bits, bits / 8 + 300, 1 - correct.mean(1), correct, m))
    return points


def test_nested_subsets_are_nested_class_balanced_and_disjoint_from_validation():
    from helmjax.data.dataset import ArrayDataset
    y = np.repeat(np.arange(10), [40] * 9 + [16]).astype(np.int32)
    ds = ArrayDataset("t", np.zeros((len(y), 2, 2, 3), np.uint8), y, np.zeros((4, 2, 2, 3), np.uint8),
                      y[:4], tuple("abcdefghij"))
    train, val = split_validation(ds, 0.1, seed=0)
    subsets = [nested_subset(y, train, f, seed=0) for f in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)]
    for small, large in zip(subsets, subsets[1:]):
        assert set(small) < set(large)
    assert np.array_equal(subsets[-1], train) and not set(subsets[-1]) & set(val)
    for fraction, subset in zip((1 / 4, 1 / 2), subsets[2:4]):
        assert len(subset) == round(fraction * len(train))
        per_class = np.bincount(y[subset], minlength=10) / np.bincount(y[train], minlength=10)
        assert np.all(np.abs(per_class - fraction) <= 1.0 / np.bincount(y[train]).min() + 1e-9)
    # the same seed, the same subset; another seed, another one
    assert np.array_equal(nested_subset(y, train, 0.25, 0), subsets[2])
    assert not np.array_equal(nested_subset(y, train, 0.25, 1), subsets[2])


def test_train_fraction_is_validated_and_keeps_old_digests():
    c = config_lib.load_experiment("demo_q_sweep")
    assert c.data.train_fraction == 1.0
    assert "data.train_fraction" not in identity.shaping(c)  # sweeps from before the key keep their digest
    half = config_lib.apply_overrides(c, ["data.train_fraction=0.5"])
    assert identity.shaping(half)["data.train_fraction"] == 0.5
    assert identity.config_digest(half) != identity.config_digest(c)
    assert make_plan(half).settings[0].data.train_fraction == 0.5
    with pytest.raises(UserError, match="data.train_fraction=0.0 must be in"):
        make_plan(config_lib.apply_overrides(c, ["data.train_fraction=0"]))


def test_parse_bytes():
    assert storage.parse_bytes("300kB") == 300e3
    assert storage.parse_bytes("1.5GB") == 1.5e9
    assert storage.parse_bytes("2GiB") == 2 * 2 ** 30
    assert storage.parse_bytes("2e6") == 2e6 and storage.parse_bytes(512) == 512.0
    with pytest.raises(UserError, match="not a size"):
        storage.parse_bytes("lots")
    with pytest.raises(UserError, match="positive"):
        storage.parse_bytes("0kB")


def test_the_fit_recovers_a_known_law_with_intervals_that_cover_it():
    law = storage_law.fit_law(simulated_points(), resamples=100)
    for name, true in (("alpha", TRUE["alpha"]), ("beta", TRUE["beta"])):
        estimate = law.parameter(name)
        assert estimate["ci"][0] <= true <= estimate["ci"][1], (name, estimate)
        assert estimate["ci"][1] - estimate["ci"][0] < 0.5
    assert law.describes_data
    ratio = law.optimal_bits_exponent
    assert ratio["ci"][0] <= 0.6 / 1.8 <= ratio["ci"][1]


def test_a_law_that_does_not_hold_is_refused():
    """Error rising with the number of images: no law of the form describes it."""
    points = simulated_points()
    bent = [storage_law.GridPoint(p.n, p.level, p.payload_bits, p.file_bytes,
                                  p.errors + (0.3 if p.n in (340, 1350) else 0.0), None, p.num_test) for p in points]
    law = storage_law.fit_law(bent, resamples=20)
    assert not law.describes_data and law.loo_rms > 2 * law.noise_rms


def test_budget_answers_respect_the_budget_and_beat_the_naive_choices():
    law = storage_law.fit_law(simulated_points(), resamples=100)
    for budget in (1e5, 3e5, 1e6):
        answer = storage_law.answer_budget(law, budget, available=2700, q_star=50)
        best = answer["best"]
        assert best.stored_bytes <= budget and best.n <= 2700
        for naive in answer["naive"]:
            assert naive.stored_bytes <= budget
            assert law.predict(best.n, best.payload_bits) <= law.predict(naive.n, naive.payload_bits) + 1e-12
        # the optimum is the argmin over every measured level
        for level, point in storage_law.level_costs(law).items():
            n = min(2700, int(budget // point.file_bytes))
            if n >= 1:
                assert law.predict(best.n, best.payload_bits) <= law.predict(n, point.payload_bits) + 1e-12
    # at a small budget, storing losslessly leaves few images: the law prefers more images at fewer bits
    answer = storage_law.answer_budget(law, 1e5, available=2700, q_star=50)
    assert answer["best"].level != "raw" and answer["best"].n > answer["naive"][0].n
    gain = answer["gain"][0]["diff"]
    assert gain["mean"] > 0 and gain["ci"][0] > 0
    assert storage_law.answer_budget(law, 10, available=2700)["best"] is None  # not one image fits


@pytest.mark.slow
def test_storage_and_mismatch_sections_on_a_real_tiny_sweep(tmp_path):
    """Two training-set sizes x three levels, and apply_to as an axis: both report sections come out of real runs."""
    c = config_lib.load_experiment("storage_cifar_small")
    c = config_lib.apply_overrides(c, ["data.name=stripes", "quantizer.name=pillow_jpeg", "grid.level=raw,10,90",
                                       "grid.seed=0", "train.batch_size=32", "train.eval_batch_size=64"])
    tree = c.to_dict()
    tree["grid"]["axes"] = [["n", [{"data.train_fraction": 0.5, "train.epochs": 2},
                                   {"data.train_fraction": 1.0, "train.epochs": 1}]]]
    import ml_collections
    c = ml_collections.ConfigDict(tree)
    out = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    assert len(out.trained) == 6 and not out.failed
    sizes = sorted({r["n_train"] for r in out.rows})
    assert len(sizes) == 2 and sizes[0] == round(0.5 * sizes[1])
    path, _ = facets.write_facet_report(tmp_path / c.name, budgets=[20e3, 60e3], resamples=20)
    text = path.read_text()
    assert "## Storage budget" in text
    saved = json.loads((path.parent / "storage.json").read_text())[0]
    assert saved["arch"] == "A" and saved["alpha"]["ci"][0] <= saved["alpha"]["mean"] <= saved["alpha"]["ci"][1]
    assert len(saved["points"]) == 6 and {p["n"] for p in saved["points"]} == set(sizes)
    # either a budget answer per budget, or the reason it is withheld, in the report
    assert (len(saved["answers"]) == 2 and all(a["best"]["stored_bytes"] <= a["budget_bytes"]
                                               for a in saved["answers"])) or saved["why_no_answer"] in text

    mixed = ml_collections.ConfigDict(dict(tree, name="mismatch"))
    mixed.grid.axes = [["quantizer.apply_to", ["both", "train", "test"]]]
    mixed.train.epochs = 1  # the storage axis set the epochs per size; this axis does not
    out = sweep.run_sweep(mixed, tmp_path, progress=False, log=lambda *_: None)
    assert not out.failed
    path, _ = facets.write_facet_report(tmp_path / "mismatch")
    text = path.read_text()
    assert "## Matched and mismatched compression" in text
    assert "only train compressed (tested on raw)" in text and "only test compressed (trained on raw)" in text
    # the raw level is the same training in the three settings: shared, not retrained
    assert len(out.trained) == 1 + 3 * 2


def test_the_confirmation_picks_a_budget_where_the_law_beats_both_naive_choices():
    from benchmarks import confirm_storage
    law = storage_law.fit_law(simulated_points(), resamples=50)
    answer = confirm_storage.pick_budget(law, available=2700, q_star=50)
    best = answer["best"]
    assert not best.extrapolated and best.level not in {c.level for c in answer["naive"]}
    assert all(g["diff"]["ci"][0] > 0 for g in answer["gain"])  # the simulated law has budgets that show a gain
    assert best.n > answer["naive"][0].n
    config, names = confirm_storage.confirmation_config(answer, 2700, [10, 11])
    settings = make_plan(config).settings
    assert [s.levels for s in settings] == [(best.level,), ("raw",), (50,)]
    assert settings[0].data.train_fraction == best.n / 2700 and list(config.grid.seed) == [10, 11]
