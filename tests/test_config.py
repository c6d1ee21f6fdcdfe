"""Typed `--set` overrides and their one-line errors; experiments load and validate."""

import pytest

from helmjax import config as config_lib
from helmjax.errors import UserError


def _demo():
    return config_lib.load_experiment("cifar_q_sweep_small")


def test_overrides_are_typed():
    c = config_lib.apply_overrides(_demo(), ["train.epochs=3", "train.lr=1", "grid.level=raw,5,50",
                                             "grid.seed=[0, 1]", "train.augment=False", "quantizer.subsampling=4:4:4"])
    assert c.train.epochs == 3 and isinstance(c.train.epochs, int)
    assert c.train.lr == 1.0 and isinstance(c.train.lr, float)
    assert list(c.grid.level) == ["raw", 5, 50]
    assert list(c.grid.seed) == [0, 1]
    assert c.train.augment is False
    assert c.quantizer.subsampling == "4:4:4"
    assert config_lib.apply_overrides(c, ["train.lr=inf"]).train.lr == float("inf")


def test_override_leaves_the_original_untouched():
    original = _demo()
    config_lib.apply_overrides(original, ["train.epochs=1"])
    assert original.train.epochs == 8


@pytest.mark.parametrize("item, message", [
    ("train.epoch=3", "unknown key"),
    ("trian.epochs=3", "unknown key 'trian'"),
    ("train.epochs=three", "expected a int"),
    ("train.epochs=2.5", "expected a int"),
    ("train.augment=1", "expected a bool"),
    ("train=3", "is a group"),
    ("train.epochs", "not of the form key=value"),
])
def test_bad_overrides_are_one_line_user_errors(item, message):
    with pytest.raises(UserError, match=message) as info:
        config_lib.apply_overrides(_demo(), [item])
    assert "\n" not in str(info.value)


def test_unknown_experiment_lists_the_available_ones():
    with pytest.raises(UserError, match="cifar_q_sweep_small"):
        config_lib.load_experiment("no_such_experiment")


def test_every_experiment_file_loads_locked():
    for name in config_lib.experiment_names():
        c = config_lib.load_experiment(name)
        with pytest.raises(AttributeError):
            c.not_a_field = 1
        assert {"name", "data", "quantizer", "model", "train", "grid", "tolerance"} <= set(c.keys())


def test_filters_parse_values():
    assert config_lib.parse_filters(["level=raw,20", "arch=A"]) == {"level": {"raw", 20}, "arch": {"A"}}
    with pytest.raises(UserError, match="unknown grid axis"):
        config_lib.parse_filters(["quality=20"])


def test_reference_seeds_add_runs_to_the_lossless_level_only():
    from helmjax.sweeps.plan import make_plan
    from helmjax.errors import UserError
    c = config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"),
                                   ["grid.level=raw,10", "grid.seed=[0]", "grid.reference_seed=[0,1,2]"])
    assert c.analysis.margin == 1.0
    plan = make_plan(c)
    assert [r.name for r in plan.settings[0].runs] == ["raw-A-s0", "raw-A-s1", "raw-A-s2", "q10-A-s0"]
    assert [r.name for _, runs in plan.choose({"seed": {2}}) for r in runs] == ["raw-A-s2"]
    no_raw = config_lib.apply_overrides(c, ["grid.level=10,20"])
    with pytest.raises(UserError, match="grid.reference_seed adds seeds to the lossless level"):
        make_plan(no_raw)
