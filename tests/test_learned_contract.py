"""The learned-quantizer contract as a user adding their own meets it (README, "Your own quantizer"): `fit` sees the
training split only and only the options it takes; a state of arrays is saved as .npz beside a JSON header and
reloaded equal; a variable-rate quantizer is fitted once for all levels; an option no quantizer takes is one error
line before anything is written."""

import json

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.data.camera import make_camera
from helmjax.errors import UserError
from helmjax.quantizers import registry
from helmjax.sweeps import quantized_data, sweep
from helmjax.sweeps.plan import make_plan


def _register_mean_step(calls: list, variable_rate: bool):
    """Quantizes each pixel's offset from the training split's mean image in steps of `level` grey levels."""

    def fit(x_train, y_train, level):  # no **options: it must get none of the sweep's (e.g. subsampling)
        calls.append((len(x_train), len(y_train), level))
        return {"mean": x_train.astype(np.float32).mean(axis=0), "images": int(len(x_train))}

    def fn(data, level, fitted=None):
        mean = np.asarray(fitted["mean"], np.float32)
        steps = np.round((data.astype(np.float32) - mean) / level)
        out = np.clip(steps * level + mean, 0, 255).astype(np.uint8)
        bits = np.full(len(data), data[0].size * np.log2(256.0 / level))  # a fixed-length code of the steps
        return registry.Quantized(out, bits)

    return registry.register("_test_mean_step", fn, level_range=(1, 128), more_compression="higher", prefix="step",
                             label="step", fit=fit, variable_rate=variable_rate, overwrite=True)


def _config(*overrides):
    return config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"), [
        "data.n_train=120", "data.n_test=60", "train.epochs=1", "grid.level=raw,8,32", "grid.reference_seed=[0]",
        "quantizer.name=_test_mean_step", *overrides])


@pytest.mark.slow
def test_a_user_learned_quantizer_runs_in_a_sweep_fitted_once_for_all_levels(tmp_path):
    calls = []
    _register_mean_step(calls, variable_rate=True)
    try:
        out = sweep.run_sweep(_config(), tmp_path, progress=False, log=lambda *_: None)
        assert [r["level"] for r in out.rows] == ["raw", 8, 32]
        assert all(r["status"] == "done" for r in out.rows)
        assert calls == [(120, 120, None)]  # the training split (test: 60 images), once for both levels
        [header_path] = (out.sweep_dir / "cache" / "fitted").glob("_test_mean_step-all-*.json")
        header = json.loads(header_path.read_text())
        assert header["arrays"] == ["mean"] and header["images"] == 120 and "mean" not in header
        with np.load(header_path.with_suffix(".npz")) as arrays:
            assert arrays["mean"].shape == (32, 32, 3) and arrays["mean"].dtype == np.float32
        # reloaded, not refitted, and equal to what was fitted
        ds = make_camera(seed=0, n_train=120, n_test=60, photons=400.0, read_noise=4.0, contrast_low=0.045,
                         contrast_high=0.06)
        spec = registry.get("_test_mean_step")
        state = quantized_data.fitted_state(ds, spec, 32, {"subsampling": "4:2:0"}, out.sweep_dir / "cache")
        assert calls == [(120, 120, None)]
        np.testing.assert_array_equal(state["mean"], ds.x_train.astype(np.float32).mean(axis=0))
    finally:
        registry._REGISTRY.pop("_test_mean_step")


def test_a_fixed_rate_learned_quantizer_is_fitted_per_level(tmp_path):
    calls = []
    spec = _register_mean_step(calls, variable_rate=False)
    try:
        ds = make_camera(seed=0, n_train=40, n_test=20)
        for level in (8, 32, 8):
            quantized_data.quantize(ds, level, spec, {}, "both", tmp_path)
        assert calls == [(40, 40, 8), (40, 40, 32)]
        assert len(list((tmp_path / "fitted").glob("_test_mean_step-*.npz"))) == 2
    finally:
        registry._REGISTRY.pop("_test_mean_step")


def test_an_option_no_quantizer_takes_is_one_error_line():
    config = config_lib.load_experiment("demo_q_sweep")
    with config.unlocked():
        config.quantizer.strenght = 3  # a typo in an experiment file
    with pytest.raises(UserError) as e:
        make_plan(config)
    assert "'strenght' is taken by no quantizer of this sweep (jax_jpeg)" in str(e.value)
    assert "\n" not in str(e.value)
    # an option another quantizer takes is fine (the sweep's subsampling, with bit depth: the noise record's)
    make_plan(config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"),
                                         ["quantizer.name=bitdepth", "grid.level=raw,2,4"]))
