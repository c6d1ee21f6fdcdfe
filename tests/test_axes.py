"""Grid axes over any config key: settings typed like --set, tags in run names, --only on axes, one sweep per
setting with the axis as a results column, the side-by-side report; and runs that did not learn."""

import json
import types

import pytest

from helmjax import config as config_lib
from helmjax.analysis import chance
from helmjax.errors import UserError
from helmjax.reporting import facets
from helmjax.sweeps import axes, sweep
from helmjax.sweeps.plan import make_plan
from helmjax.layout import RAW

QUIET = dict(progress=False, log=lambda *_: None)


def demo(*overrides, axis=()):
    config = config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"), overrides)
    return axes.parse_axis_flags(config, axis)


def test_scalar_axis_is_typed_like_set_and_names_runs():
    config = demo(axis=["data.photons=25,100,inf"])
    settings = axes.settings(config)
    assert [s.tag for s in settings] == ["photons25", "photons100", "photonsinf"]
    assert [s.assignments for s in settings] == [(("data.photons", 25.0),), (("data.photons", 100.0),),
                                                 (("data.photons", float("inf")),)]
    assert settings[2].label == "data.photons=inf"
    assert config.name == "demo_q_sweep-by-photons"  # beside the plain demo's directory, never inside it
    part = axes.setting_config(config, settings[0])
    assert part.data.photons == 25.0 and part.grid.axes == [] and part.grid.setting == "photons25"
    assert make_plan(config).settings[0].runs[0].name == "photons25-raw-A-s0"
    assert config.data.photons == 400.0  # the base is untouched


def test_axis_flag_replaces_an_axis_of_the_same_key_and_combines_axes_in_grid_order():
    config = demo(axis=["data.photons=25", "train.lr=0.1,0.2", "data.photons=100,400"])
    tags = [s.tag for s in axes.settings(config)]
    assert tags == ["lr0.1_photons100", "lr0.1_photons400", "lr0.2_photons100", "lr0.2_photons400"]


def test_a_setting_of_several_keys_sets_them_together():
    config = demo()
    tree = config.to_dict()
    tree["grid"]["axes"] = [["codec", [{"quantizer.name": "pillow_jpeg", "grid.level": ["raw", 10]},
                                       {"quantizer.name": "bitdepth", "grid.level": ["raw", 4]}]]]
    config = config_lib.ml_collections.ConfigDict(tree)
    settings = axes.settings(config)
    assert [s.tag for s in settings] == ["codec-pillow_jpeg", "codec-bitdepth"]
    part = axes.setting_config(config, settings[1])
    assert part.quantizer.name == "bitdepth" and list(part.grid.level) == ["raw", 4]
    assert settings[1].columns == {"codec": "bitdepth"}


@pytest.mark.parametrize("axis, message", [
    ("data.photonz=1,2", "grid axis data.photonz: unknown key"),
    ("data.n_train=1.5", "grid axis data.n_train=1.5: expected a int"),
    ("grid.level=10,20", "grid axis grid.level: already a grid axis"),
    ("data.photons=25,25.0", "grid axis data.photons has a value twice"),
    ("photons", "--axis 'photons' is not of the form key=v1,v2"),
])
def test_bad_axes_are_one_line_errors(axis, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as info:
        demo(axis=[axis])
    assert "\n" not in str(info.value)


def test_only_filters_axes_by_key_or_last_part():
    config = demo(axis=["data.photons=25,100,inf"])
    names = [name for name, _ in axes.raw_axes(config)]
    only = config_lib.parse_filters(["photons=inf,25", "arch=A"], names)
    chosen = make_plan(config).choose(only)
    assert [setting.tag for setting, _ in chosen] == ["photons25", "photonsinf"]
    assert {run.arch for _, runs in chosen for run in runs} == {"A"}
    with pytest.raises(UserError, match="unknown grid axis 'photon'"):
        config_lib.parse_filters(["photon=25"], names)


@pytest.mark.slow
def test_sweep_over_an_axis_trains_each_setting_as_its_own_sweep(tmp_path):
    config = config_lib.apply_overrides(config_lib.load_experiment("cifar_q_sweep_small"), [
        "data.name=stripes", "quantizer.name=pillow_jpeg", "grid.level=raw,10", "train.epochs=1",
        "train.batch_size=32", "train.eval_batch_size=64"])
    tree = config.to_dict()
    tree["grid"]["axes"] = [["codec", [{"quantizer.name": "pillow_jpeg", "grid.level": ["raw", 10]},
                                       {"quantizer.name": "bitdepth", "grid.level": ["raw", 2]}]]]
    config = config_lib.ml_collections.ConfigDict(tree)
    out = sweep.run_sweep(config, tmp_path, **QUIET)
    # The raw run is the data as is: trained once, copied to the other codec's setting under its own name.
    assert out.trained == ["codec-pillow_jpeg-raw-A-s0", "codec-pillow_jpeg-q10-A-s0", "codec-bitdepth-b2-A-s0"]
    sweep_dir = tmp_path / config.name
    original = sweep_dir / "settings" / "codec-pillow_jpeg" / "runs" / "codec-pillow_jpeg-raw-A-s0"
    copy = sweep_dir / "settings" / "codec-bitdepth" / "runs" / "codec-bitdepth-raw-A-s0"
    shared = json.loads((copy / "result.json").read_text())
    assert shared["shared_from"] == str(original) and shared["quantizer"] == "bitdepth" and shared["bits"] == "raw"
    assert "quality" not in shared and shared["test_acc"] == json.loads((original / "result.json").read_text())["test_acc"]
    assert (copy / "test_correct.npy").read_bytes() == (original / "test_correct.npy").read_bytes()
    assert json.loads((copy / "config.json").read_text())["config"]["quantizer"]["name"] == "bitdepth"
    rows = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert [(r["codec"], r["setting"], r["quantizer"]) for r in rows] == [
        ("pillow_jpeg", "codec-pillow_jpeg", "pillow_jpeg")] * 2 + [("bitdepth", "codec-bitdepth", "bitdepth")] * 2
    assert "codec" in (sweep_dir / "results.csv").read_text().splitlines()[0].split(",")
    for tag in ("codec-pillow_jpeg", "codec-bitdepth"):
        assert (sweep_dir / "settings" / tag / "sweep.json").exists()
        assert (sweep_dir / "settings" / tag / "runs" / f"{tag}-raw-A-s0" / "result.json").exists()
    # Data sets are cached once for the workdir, not per setting.
    assert not (sweep_dir / "settings" / "cache").exists()

    again = sweep.run_sweep(config, tmp_path, only={"codec": {"bitdepth"}}, **QUIET)
    assert again.trained == [] and again.skipped == ["codec-bitdepth-raw-A-s0", "codec-bitdepth-b2-A-s0"]
    assert sweep.collect_results(make_plan(config, sweep_dir)) == out.rows

    assert facets.has_settings(sweep_dir)
    path, text = facets.write_facet_report(sweep_dir, resamples=50)
    report = path.read_text()
    assert "[codec-bitdepth](settings/codec-bitdepth/report/report.md)" in report
    assert (sweep_dir / "settings" / "codec-bitdepth" / "report" / "report.md").exists()
    table = json.loads((sweep_dir / "report" / "facets.json").read_text())
    assert [(r["setting"], r["codec"], r["quantizer"]) for r in table] == [
        ("codec-pillow_jpeg", "pillow_jpeg", "pillow_jpeg"), ("codec-bitdepth", "bitdepth", "bitdepth")]
    # Two quantizers: no shared level axis, but bits per pixel is common to both.
    assert (sweep_dir / "report" / "accuracy_vs_rate_by_setting.png").exists()
    assert not (sweep_dir / "report" / "accuracy_vs_level_by_setting.png").exists()
    assert "[codec=bitdepth]" in text
    # Two quantizers: the codec table, paired item by item against JPEG at each codec's own q*.
    codecs = json.loads((sweep_dir / "report" / "codecs.json").read_text())
    assert [(r["setting"], r["reference"]) for r in codecs] == [("codec-pillow_jpeg", "codec-pillow_jpeg"),
                                                               ("codec-bitdepth", "codec-pillow_jpeg")]
    assert "## Codecs at equal accuracy" in report
    jpeg, bits = codecs
    if jpeg["q_star"] is not None and bits["q_star"] is not None:
        assert bits["saved"]["mean"] == pytest.approx(jpeg["file"]["mean"] - bits["file"]["mean"])
        assert bits["saved"]["ci"][0] <= bits["saved"]["mean"] <= bits["saved"]["ci"][1]


def _run(name, level, seed, acc, classes=4, num_test=400, arch="A"):
    return types.SimpleNamespace(name=name, level=level, arch=arch, seed=seed, test_acc=acc,
                                 row={"num_classes": classes, "num_test": num_test})


def test_runs_at_chance_tell_a_failed_optimisation_from_a_level_that_erased_the_classes():
    runs = [_run("raw-s0", RAW, 0, 0.95), _run("raw-s1", RAW, 1, 0.26),  # chance 0.25: raw-s1 failed
            _run("q5-s0", 5, 0, 0.90), _run("q5-s1", 5, 1, 0.24),  # its peer learned: failed
            _run("q1-s0", 1, 0, 0.25), _run("q1-s1", 1, 1, 0.27),  # every seed at chance
            _run("q2-s0", 2, 0, 0.30)]  # 120 of 400 against 100 expected: above chance (p < 0.05)
    found = {r["run"]: r["verdict"] for r in chance.runs_at_chance(runs, 0.95)}
    assert found == {"raw-s1": "failed optimisation", "q5-s1": "failed optimisation",
                     "q1-s0": "every seed at chance", "q1-s1": "every seed at chance"}
    assert chance.above_chance(0.30, 400, 4, 0.95) and not chance.above_chance(0.27, 400, 4, 0.95)
