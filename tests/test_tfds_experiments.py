"""tfds image sets read on demand (`data.tfds_images`) and the experiments on them, on tfds' own mocks: no data set
is downloaded or prepared, no TensorFlow is imported."""

import json
import os

import numpy as np
import pytest

from helmjax import config as config_lib
from helmjax.data.items import LazyItems
from helmjax.data.resize import shorter_side_center_crop
from helmjax.sweeps import sweep

tfds = pytest.importorskip("tensorflow_datasets", reason="the tfds sources need tensorflow-datasets")
QUIET = dict(progress=False, log=lambda *_: None)


def fake_source(size=None):
    """What tfds' `as_data_source` gives, per split, the same records at every call: 6 of the set's classes."""
    def as_data_source(builder, split=None, decoders=None, **kwargs):
        n = {"train": 60, "validation": 24}[split]
        rng = np.random.default_rng(0 if split == "train" else 1)
        shapes = [(size, size) if size else (40 + i % 3, 50 + i % 5) for i in range(n)]
        return [{"image": rng.integers(0, 256, (*shape, 3), np.uint8), "label": np.int64(i % 6),
                 "file_name": f"{split}_{n - i:03d}.JPEG"} for i, shape in enumerate(shapes)]
    return as_data_source


def test_a_tfds_set_is_read_on_demand_in_name_order_at_the_stored_resolution(tmp_path):
    from helmjax.data.tfds_images import load_tfds_images
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_data_source_fn=fake_source()):
        ds = load_tfds_images("imagenet2012", tfds_data_dir=str(tmp_path), image_size=32)
        records = fake_source()(None, "train")
        assert isinstance(ds.x_train, LazyItems) and ds.x_train.shape == (60, 32, 32, 3) and len(ds.classes) == 1000
        # file names run backwards: the canonical (name) order reverses the records
        assert ds.y_train.tolist() == [r["label"] for r in records[::-1]]
        np.testing.assert_array_equal(ds.x_train[[0, 7]], np.stack([shorter_side_center_crop(records[59]["image"], 32),
                                                                    shorter_side_center_crop(records[52]["image"], 32)]))
        assert ds.x_test.shape == (24, 32, 32, 3)
        from helmjax.errors import UserError
        with pytest.raises(UserError, match="set data.image_size"):
            load_tfds_images("imagenet2012", tfds_data_dir=str(tmp_path)).x_train[:2]


@pytest.mark.slow
@pytest.mark.parametrize("experiment, size, sets", [
    ("imagenet64_q_sweep", 64, ["train.crop_size=48"]),
    ("places365_q_sweep", 72, ["data.image_size=72", "train.crop_size=64"]),
    ("imagenet_tfds_q_sweep", None, ["data.image_size=40", "train.crop_size=32", "grid.arch=resnet64"]),
])
def test_experiment_runs_end_to_end_on_a_mock(tmp_path, monkeypatch, experiment, size, sets):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # level stores built here, where the mock is
    config = config_lib.apply_overrides(config_lib.load_experiment(experiment), [
        f"data.tfds_data_dir={tmp_path / 'tfds'}", "grid.level=raw,50", "model.width=0.125", "train.epochs=1",
        "train.batch_size=8", "train.max_steps_per_epoch=2", "train.eval_batch_size=16", "train.warmup_epochs=0.5",
        "train.val_fraction=0.1", *sets])
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_data_source_fn=fake_source(size)):
        out = sweep.run_sweep(config, tmp_path / "work", **QUIET)
    rows = [json.loads(line) for line in (tmp_path / "work" / config.name / "results.jsonl").read_text().splitlines()]
    assert {r["level"] for r in rows} == {"raw", 50} and out.trained
    assert all(r["test_acc"] is not None and r["test_top5_acc"] >= r["test_acc"] for r in rows)
    from helmjax import analysis
    from helmjax.reporting import report
    path = report.write_report(tmp_path / "work" / config.name, analysis=analysis.analyze(tmp_path / "work" / config.name))
    assert path.is_file()

