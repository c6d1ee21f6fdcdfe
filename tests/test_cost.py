"""What a sweep costs (`helmjax.sweeps.cost`, printed by `run.py --plan`): store sizes from a sample really encoded,
hours from a throughput, and nothing written."""

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.data import level_store
from helmjax.reporting import plan_text
from helmjax.sweeps import cost as cost_lib
from helmjax.sweeps.plan import make_plan
from tests.conftest import make_stripes


def tiny_config(*extra):
    c = config_lib.load_experiment("cifar_q_sweep_small")
    return config_lib.apply_overrides(c, ["data.name=stripes", "quantizer.name=pillow_jpeg", "grid.level=raw,10,90",
                                          "train.epochs=2", "train.batch_size=32", "grid.arch=A", *extra])


def test_a_sample_of_every_item_gives_the_stores_exact_size(tmp_path):
    ds = make_stripes()
    setting = make_plan(tiny_config(), None, workdir=tmp_path).settings[0]
    levels = cost_lib.level_costs(ds, setting.quantizer, ["raw", 10], sample=len(ds.x_train))
    for level, estimate in zip(["raw", 10], levels):
        stores = [level_store.build(tmp_path / f"{level}-{split}", x, y, "pillow_jpeg", level, workers=1)
                  for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test))]
        assert estimate.bytes_per_item.value == stores[0]["record_bytes"] / len(ds.x_train)
        # the test split is estimated from the training items' mean
        assert estimate.store_bytes.value == pytest.approx(
            estimate.bytes_per_item.value * (len(ds.x_train) + len(ds.x_test)))
        assert estimate.bytes_per_item.low < estimate.bytes_per_item.value < estimate.bytes_per_item.high
    assert levels[1].bytes_per_item.value < levels[0].bytes_per_item.value


def test_setting_cost_counts_runs_images_and_hours_and_writes_nothing(tmp_path):
    config = tiny_config("grid.seed=0,1")
    setting = make_plan(config, None, workdir=tmp_path).settings[0]
    cost = cost_lib.setting_cost(setting, measure_cpu=True, sample=8)
    assert cost.runs == 6 and cost.runs_per_arch == {"A": 6}
    assert cost.n_train + cost.n_val == 256 and cost.n_test == 128
    assert cost.images_per_run == 2 * (cost.n_train // 32) * 32
    assert cost.evaluated_per_run == 2 * cost.n_val + cost.n_test
    rate = cost.cpu_images_per_s["A"]
    assert rate > 0
    want = 6 * (cost.images_per_run + cost_lib.EVAL_COST * cost.evaluated_per_run) / rate / 3600
    assert cost_lib.hours(cost, rate) == pytest.approx(want)
    assert list(tmp_path.iterdir()) == []


def test_cost_text_names_stores_hours_and_data_it_cannot_load(tmp_path):
    text = plan_text.format_sections(plan_text.cost_sections(tiny_config(), tmp_path, measure_cpu=False))
    assert "store of raw:" in text and "store of q10" in text.replace("\n    ", " ")
    assert "`benchmarks/gpu_check.py` on one measures it" in text.replace("\n    ", " ")
    missing = config_lib.apply_overrides(config_lib.load_experiment("image_folder_q_sweep"),
                                         [f"data.root={tmp_path / 'nowhere'}", "grid.level=raw,50"])
    text = plan_text.format_sections(plan_text.cost_sections(missing, tmp_path, measure_cpu=False))
    assert "not estimated:" in text and "nowhere" in text.replace("\n    ", " ")
    assert list(tmp_path.iterdir()) == []


def test_resnet50_at_224_gets_the_published_accelerator_rate():
    assert cost_lib.PUBLISHED["arch"] == "resnet50" and cost_lib.PUBLISHED["size"] == 224
    cost = cost_lib.SettingCost("", 2, {"resnet50": 2}, 1, 1000, 0, 0, 1000, 0, (), {}, (224, 224, 3))
    assert cost_lib.hours(cost, 938.0) == pytest.approx(2 * 1000 / 938.0 / 3600)
    assert np.isfinite(cost_lib.hours(cost, cost_lib.PUBLISHED["rates"]["A100 80GB, TF32"]))


def test_a_large_set_not_on_this_machine_is_costed_from_its_published_sizes(tmp_path, shared_data):
    config = config_lib.apply_overrides(config_lib.load_experiment("imagenet64_q_sweep"), [
        f"data.tfds_data_dir={tmp_path / 'no_tfds'}", "grid.level=raw,50"])
    setting = make_plan(config, None, workdir=tmp_path).settings[0]
    cost = cost_lib.setting_cost(setting, measure_cpu=False)
    train, test, size, classes = cost_lib.KNOWN_SETS["imagenet_resized/64x64"]
    assert "published split sizes" in cost.stand_in and cost.item_shape == (size, size, 3)
    assert cost.n_train + cost.n_val == train and cost.n_test == test and cost.sample_size == 24
    for level in cost.levels:
        assert level.store_bytes.value == pytest.approx(level.bytes_per_item.value * (train + test))
    assert cost.levels[1].bytes_per_item.value < cost.levels[0].bytes_per_item.value
    text = plan_text.format_sections(plan_text.cost_sections(config, tmp_path, measure_cpu=False))
    assert "estimated with stand-ins" in text and "1,281,167" in text.replace("\n    ", " ")


def test_resnet50_at_224_is_costed_at_the_published_a100_rates(tmp_path, shared_data):
    config = config_lib.apply_overrides(config_lib.load_experiment("imagenet_q_sweep"), [
        f"data.root={tmp_path / 'no_ilsvrc'}", "grid.level=raw,50"])
    text = plan_text.format_sections(plan_text.cost_sections(config, tmp_path, measure_cpu=False)).replace("\n    ", " ")
    assert "resnet50 on one A100 80GB, TF32 at the published 938 images/s" in text
    assert "NVIDIA DeepLearningExamples" in text and "1,281,167" in text


def test_a_measured_accelerator_rate_is_used_for_its_arch(tmp_path, monkeypatch):
    monkeypatch.setattr(cost_lib, "MEASURED_ACCELERATOR", {"A": ("H100", 16, 5000.0)})
    text = plan_text.format_sections(plan_text.cost_sections(tiny_config(), tmp_path, measure_cpu=False))
    assert "A on one H100 at 5,000 images/s measured by benchmarks/gpu_check.py" in text.replace("\n    ", " ")
    assert "no figure here" not in text
