"""Learned JPEG tables: learned on the training split through the sweep's fit hook, cached as JSON, written as real
JPEG files whose pixels equal the JAX codec's exact mode; the rate proxy ranks images like Pillow's payload bits."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from helmjax.data.camera import make_camera
from helmjax.errors import UserError
from helmjax.quantizers import jpeg, learned_jpeg, registry
from helmjax.sweeps import quantized_data

# Few images and steps (the whole file in well under 30 s on 2 cores); a large lr so 30 steps move the tables.
TINY = dict(subset=192, classifier_steps=40, steps=30, batch_size=32, lr=0.3)
LAMS = (0.0, 20.0)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """The camera set quantized at two lams through `quantize` (the sweep's path): {lam: (LevelData, state)}."""
    ds = make_camera(seed=0, n_train=192, n_test=64)
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for lam in LAMS:
        level = quantized_data.quantize(ds, lam, "learned_jpeg", dict(TINY, subsampling="4:2:0"), "both", cache)
        [path] = [p for p in (cache / "fitted").glob("*.json") if json.loads(p.read_text())["lam"] == lam]
        out[lam] = (level, learned_jpeg.load_tables(path))
    return ds, cache, out


def test_tables_are_integers_in_range_and_saved_as_json(learned):
    _, cache, out = learned
    assert len(list((cache / "fitted").glob("learned_jpeg-*.json"))) == len(LAMS)
    for lam, (_, state) in out.items():
        for key in ("luma", "chroma"):
            table = np.asarray(state[key])
            assert table.shape == (8, 8) and table.dtype.kind == "i"
            assert table.min() >= 1 and table.max() <= 255
        assert state["lam"] == lam and state["steps"] == TINY["steps"] and state["seconds"] > 0


def test_larger_lam_gives_fewer_payload_bits_on_held_out_images(learned):
    ds, _, out = learned
    n_train = len(ds.x_train)
    test_payload = {lam: level.bits[1, n_train:].mean() for lam, (level, _) in out.items()}
    assert test_payload[LAMS[1]] < 0.9 * test_payload[LAMS[0]], test_payload


def test_pixels_equal_the_jax_codec_exact_mode_with_the_same_tables(learned):
    ds, _, out = learned
    for level, state in out.values():
        expected = jpeg.compress(ds.x_test, 50, mode="exact", luma_table=np.asarray(state["luma"]),
                                 chroma_table=np.asarray(state["chroma"]))
        np.testing.assert_array_equal(level.x_test, np.asarray(expected))
        assert level.x_test.dtype == np.uint8


def test_files_decode_with_plain_pillow_and_carry_the_tables(learned):
    ds, _, out = learned
    level, state = out[LAMS[1]]
    data = learned_jpeg.encode(ds.x_test[0], state["luma"], state["chroma"])
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    np.testing.assert_array_equal(np.asarray(image), level.x_test[0])
    assert list(image.quantization[0]) == list(np.ravel(state["luma"]))
    assert list(image.quantization[1]) == list(np.ravel(state["chroma"]))
    assert level.bits[0, len(ds.x_train)] == 8 * len(data)  # file bits are the true file size


def test_fitted_state_is_reused_not_relearned(learned, monkeypatch):
    ds, cache, out = learned
    monkeypatch.setattr(learned_jpeg, "learn_tables", lambda *a, **k: pytest.fail("tables learned again"))
    again = quantized_data.quantize(ds, LAMS[1], "learned_jpeg", dict(TINY, subsampling="4:2:0"), "both", cache)
    np.testing.assert_array_equal(again.x_test, out[LAMS[1]][0].x_test)


def test_fit_hook_sees_the_training_split_only(tmp_path):
    ds = make_camera(seed=1, n_train=20, n_test=10)
    calls, seen = [], []

    def fit(x_train, y_train, level, **options):
        calls.append((x_train, y_train, level))
        return {"offset": 1}

    def fn(data, level, fitted=None):
        seen.append(fitted["offset"])
        return registry.Quantized(data, np.full(len(data), 8.0))

    registry.register("_test_fitted", fn, level_type="float", level_range=(0.0, 1.0), prefix="t", fit=fit,
                      overwrite=True)
    for _ in range(2):
        quantized_data.quantize(ds, 0.5, "_test_fitted", {}, "both", tmp_path)
    assert len(calls) == 1  # fitted once, then read from <cache>/fitted/*.json
    assert calls[0][0] is ds.x_train and calls[0][1] is ds.y_train and calls[0][2] == 0.5
    assert seen == [1, 1]  # train and test both got the state (the second call came from the cache)
    assert len(list((tmp_path / "fitted").glob("_test_fitted-0.5-*.json"))) == 1


@pytest.mark.parametrize("lam", [-1.0, float("nan"), 1e6, "high"])
def test_bad_lam_is_a_one_line_error(lam):
    x = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UserError) as e:
        learned_jpeg.learn_tables(x, np.zeros(2), lam)
    assert "\n" not in str(e.value) and "lam" in str(e.value)
    if not isinstance(lam, str):
        with pytest.raises(UserError, match="out of range"):
            registry.get("learned_jpeg").check(lam)


def test_quantizer_without_fitted_tables_is_a_one_line_error():
    with pytest.raises(UserError, match="learned on training data"):
        registry.apply("learned_jpeg", np.zeros((1, 8, 8, 3), np.uint8), 1.0)


def test_rate_proxy_ranks_images_like_pillow_payload_bits(learned):
    ds, _, out = learned
    for _, state in out.values():  # over the training subset, at the learned tables (measured 0.80-0.95)
        assert state["spearman"] > 0.6, state["spearman"]
    # and on held-out images at Annex K q20 (measured 0.85)
    calibration = out[LAMS[0]][1]["calibration"]
    luma, chroma = jpeg.scaled_table(jpeg.LUMA_TABLE, 20), jpeg.scaled_table(jpeg.CHROMA_TABLE, 20)
    assert learned_jpeg.proxy_spearman(ds.x_test, luma, chroma, calibration) > 0.6
    # over images and calibration tables together (Annex K ladder and random tables; measured 0.95 here, 0.98 on
    # the demo's 1000 images)
    assert calibration["spearman_pooled"] > 0.9, calibration["spearman_pooled"]
