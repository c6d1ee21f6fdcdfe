"""Quantizers describe themselves: a user's quantizer with float levels, its own step and unit runs through run
names, sweep.json's record and the analysis without inheriting anything from a built-in that shares its level
name; bad levels are one line; the cache key of quantized data follows the quantizer's version."""

import json
import math

import numpy as np
import pytest

from helmjax.data import level_store
from helmjax.analysis import RAW, analyze, findings, per_arch
from helmjax.analysis.levels import LevelScale
from helmjax.testing.synthetic_sweep import SyntheticSweep, bit_depth_rates, jpeg_like_rates, write_sweep
from helmjax.errors import UserError
from helmjax.quantizers import Quantized, registry
from helmjax.reporting.report import summary_text
from helmjax.sweeps.run_names import level_tag, run_name
from tests.test_analysis import _group

RESAMPLES = 200


def effective_bits(images, bits):
    """Uniform quantization of each channel to round(2^bits) values: a bit depth that need not be an integer."""
    values = max(2, int(round(2.0 ** bits)))
    step = 255.0 / (values - 1)
    out = (np.round(np.asarray(images, np.float64) / step) * step).round().clip(0, 255).astype(np.uint8)
    return Quantized(out, np.full(len(images), bits * np.prod(np.shape(images)[1:])))


def effective_step(bits):
    return 255.0 / (max(2, int(round(2.0 ** bits))) - 1)


@pytest.fixture
def ebits():
    spec = registry.register("test_ebits", effective_bits, level_name="ebits", level_type="float",
                             level_range=(0.5, 8.0), label="effective bit depth", unit="ebits", prefix="eb",
                             step=effective_step, version="1", overwrite=True)
    yield spec
    registry._REGISTRY.pop("test_ebits", None)


@pytest.fixture
def webp_like():
    """A WebP-like codec whose level is also called "quality": it has no step of its own."""
    spec = registry.register("test_webp", lambda images, quality: Quantized(images, None), level_name="quality",
                             level_range=(0, 100), label="WebP quality", prefix="w", overwrite=True)
    yield spec
    registry._REGISTRY.pop("test_webp", None)


def test_float_levels_have_stable_run_names_and_a_one_line_error(ebits):
    assert run_name(ebits, 2.5, "A", 0) == "eb2.5-A-s0" and level_tag(ebits, RAW) == "raw"
    assert level_tag(ebits, 1.0) == level_tag(ebits, 1) == "eb1"  # 1 and 1.0 are one level, one name
    assert registry.level_text(1e-05) == "0.00001" and registry.level_text(0.1 + 0.2) == "0.30000000000000004"
    assert ebits.check(2) == 2.0 and isinstance(ebits.check(2), float)
    for bad in (9.0, 0.25, "high", True, math.nan):
        with pytest.raises(UserError) as error:
            ebits.check(bad)
        assert str(error.value).count("\n") == 0 and "a number in [0.5, 8]" in str(error.value), bad
    with pytest.raises(UserError, match=r"an integer in \[1, 100\]"):
        registry.get("pillow_jpeg").check(20.5)


def test_named_levels_are_ordered_by_the_spec_and_checked():
    spec = registry.register("test_presets", lambda x, preset: Quantized(x, None), level_name="preset",
                             level_type="named", level_range=("small", "medium", "large"), prefix="p_", overwrite=True)
    try:
        record = spec.describe(["large", "raw", "small"])
        assert [entry["tag"] for entry in record["levels"]] == ["p_small", "p_large"]  # most compression first
        scale = LevelScale(record)
        assert scale.ordered(["large", RAW, "medium", "small"]) == ["small", "medium", "large", RAW]
        assert scale.level_of_tag("p_large") == "large" and scale.parse("medium") == "medium"
        assert scale.parse("huge") is None and scale.level_at(2.5) is None
        with pytest.raises(UserError, match="one of small, medium, large"):
            spec.check("huge")
    finally:
        registry._REGISTRY.pop("test_presets", None)
    with pytest.raises(UserError, match="distinct plain names"):
        registry.register("test_bad", lambda x, level: None, level_type="named", level_range=("raw", "b"))
    with pytest.raises(UserError, match="level_type"):
        registry.register("test_bad", lambda x, level: None, level_type="complex")
    assert "test_bad" not in registry._REGISTRY


def test_a_user_float_quantizer_runs_from_its_sweep_record_to_the_report(tmp_path, ebits):
    levels = (0.5, 1.0, 1.5, 2.5, 4.0, 6.0)
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=levels, knee=2.0, quantizer="test_ebits",
                                                           rates=bit_depth_rates, missing=[(4.0, "A", 1)]))
    record = json.loads((sweep / "sweep.json").read_text())["quantizer_spec"]
    assert record["version"] == "1" and record["unit"] == "ebits" and record["level_type"] == "float"
    assert [e["step"] for e in record["levels"]] == [{"step": effective_step(b)} for b in levels]
    assert (sweep / "runs" / "eb2.5-A-s0").is_dir() and (sweep / "rates" / "eb2.5.npz").exists()
    registry._REGISTRY.pop("test_ebits")  # the analysis needs no code of the quantizer: the record says it all

    analysis = analyze(sweep, resamples=RESAMPLES)
    assert not any("quantizer record" in w for w in analysis.warnings), analysis.warnings
    assert analysis.level_label == "effective bit depth (ebits)" and analysis.rate_name == "bpp"
    assert analysis.levels == list(levels[:2]) + [1.5, 2.5, 4, 6, RAW] and analysis.missing[0]["run"] == "eb4-A-s1"
    for result in analysis.per_arch.values():
        assert result.q_star == 2.5
        assert result.n_approx_at_q_star == {"step": effective_step(2.5)}
        assert result.knee["shape"] == "knee" and result.knee["bracket"] == (1.5, 2.5)
        assert result.n_approx_at_knee == [{"level": 1.5, "n_approx": {"step": effective_step(1.5)}},
                                           {"level": 2.5, "n_approx": {"step": effective_step(2.5)}}]
    assert [row["n_approx"] for row in analysis.rates] == [{"step": effective_step(b)} for b in levels]
    assert "  A: q* = 2.5 ebits, " in summary_text(analysis)


def test_a_webp_like_quantizer_named_quality_does_not_inherit_jpeg_steps(tmp_path, webp_like):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(5, 20, 50, 100), quantizer="test_webp",
                                                           rates=jpeg_like_rates))
    assert (sweep / "runs" / "w20-A-s0").is_dir()
    analysis = analyze(sweep, resamples=RESAMPLES)
    assert analysis.level_label == "WebP quality" and analysis.level_text(20) == "w=20"
    assert all(row["n_approx"] is None for row in analysis.rates)
    assert all(result.n_approx_at_q_star is None for result in analysis.per_arch.values())
    # A sweep.json from before the record: described by the registry under its own name, still not as JPEG.
    config = json.loads((sweep / "sweep.json").read_text())
    del config["quantizer_spec"]
    (sweep / "sweep.json").write_text(json.dumps(config))
    old = analyze(sweep, resamples=RESAMPLES)
    assert any("no quantizer record" in w and "'test_webp'" in w for w in old.warnings)
    assert old.quantizer_spec == webp_like.describe([5, 20, 50, 100])
    assert all(row["n_approx"] is None for row in old.rates)


def test_a_sweep_json_without_a_record_is_described_from_the_registry(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(5, 20, 50)))
    new = analyze(sweep, resamples=RESAMPLES)
    config = json.loads((sweep / "sweep.json").read_text())
    del config["quantizer_spec"]
    (sweep / "sweep.json").write_text(json.dumps(config))
    old = analyze(sweep, resamples=RESAMPLES)
    assert old.quantizer_spec == new.quantizer_spec and old.rates == new.rates
    assert old.per_arch["A"].q_star == new.per_arch["A"].q_star


def test_levels_that_compress_more_when_higher_are_tested_from_the_least_compressed(webp_like):
    # A quantization step: higher compresses more. Accuracy holds up to step 4 and drops beyond it.
    spec = registry.register("test_step", lambda x, step: Quantized(x, None), level_name="step",
                             level_type="float", level_range=(1, 64), more_compression="higher", unit="px",
                             step=lambda step: step, overwrite=True)
    try:
        scale = LevelScale(spec.describe([1, 2, 4, 8, 16]))
        truth = {1: 0.80, 2: 0.80, 4: 0.80, 8: 0.70, 16: 0.50, RAW: 0.80}
        groups = {("A", level): _group([acc - 0.001, acc, acc + 0.001]) for level, acc in truth.items()}
        settings = findings.make_settings({}, RESAMPLES, 0.95, 1.0, 0)
        result = per_arch.analyze_arch("A", None, groups, scale, [], None, settings, np.random.default_rng(0), [])
        assert result.levels == [16, 8, 4, 2, 1] and result.q_star == 4
        assert [t["level"] for t in result.tests] == [16, 8, 4, 2, 1] and not result.tests[1]["passed"]
        assert result.knee["bracket"] == (8, 4) and 4 < result.knee["knee"] < 8
        assert scale.text(4) == "4 px" and scale.step(4) == {"step": 4.0}
    finally:
        registry._REGISTRY.pop("test_step", None)


def test_a_new_quantizer_version_gets_a_new_level_store(tmp_path):
    calls = []

    def halve(images, level):
        calls.append(len(images))
        return Quantized(images // 2, None)

    x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    y = np.array([0, 1])
    digests = {}
    try:
        for version, expected_calls in (("1", 1), ("1", 1), ("2", 2)):  # built once per version, then read
            spec = registry.register("test_halve", halve, level_range=(1, 10), version=version, overwrite=True)
            digests[version] = level_store.build(tmp_path / f"v{version}", x, y, spec.name, 3)["digest"]
            assert len(calls) == expected_calls, version
        with pytest.raises(UserError, match="holds another level store"):  # never served the old version's output
            level_store.build(tmp_path / "v1", x, y, "test_halve", 3)
    finally:
        registry._REGISTRY.pop("test_halve")
    assert digests["1"] != digests["2"]
    store = level_store.LevelStore(tmp_path / "v2")
    np.testing.assert_array_equal(np.stack([store.decode(i) for i in range(2)]), x // 2)
    assert np.isnan(store.level_bits).all()  # the quantizer counts no bits; the PNG copy's size is not its rate


def test_weights_digest_changes_with_any_weight():
    weights = {"conv": {"kernel": np.ones((3, 3), np.float32)}, "bias": [np.zeros(2, np.float32)]}
    same = {"bias": [np.zeros(2, np.float32)], "conv": {"kernel": np.ones((3, 3), np.float32)}}
    changed = {"conv": {"kernel": np.ones((3, 3), np.float32)}, "bias": [np.array([0, 1e-7], np.float32)]}
    assert registry.weights_digest(weights) == registry.weights_digest(same)
    assert registry.weights_digest(weights) != registry.weights_digest(changed)
    assert registry.weights_digest(weights) != registry.weights_digest({"conv": {"kernel": np.ones((9,), np.float32)},
                                                                        "bias": [np.zeros(2, np.float32)]})
