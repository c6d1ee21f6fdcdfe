"""Data parallelism: the same run on 4 simulated CPU devices gives the numbers of 1 device (float tolerance)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys, tempfile, pathlib
import jax
from helmjax import models
from helmjax.training.loop import train_run
from helmjax.training.recipe import TrainSettings
from helmjax.training.pipeline import SplitData
from helmjax.training.trainer import Trainer
from tests.conftest import make_stripes
ds = make_stripes()
settings = TrainSettings(optimizer="sgd", lr=0.05, batch_size=32, eval_batch_size=64, augment=True)
trainer = Trainer(models.build("image", "A", 4, width=0.25, dropout=0.2), settings, is_image=True)
data = SplitData(ds.x_train[:192], ds.y_train[:192], ds.x_train[192:], ds.y_train[192:], ds.x_test, ds.y_test)
with tempfile.TemporaryDirectory() as d:
    result = train_run(pathlib.Path(d) / "r", trainer, data, seed=1, epochs=2)
    rows = [json.loads(l) for l in (pathlib.Path(d) / "r" / "metrics.jsonl").read_text().splitlines()]
print(json.dumps({"devices": jax.device_count(), "result": result, "rows": rows}))
"""


def _run(devices: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_four_devices_match_one_device():
    one, four = _run(1), _run(4)
    assert one["devices"] == 1 and four["devices"] == 4
    for a, b in zip(one["rows"], four["rows"]):
        assert a["step"] == b["step"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4, abs=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4, abs=1e-5)
        assert abs(b["val_acc"] - a["val_acc"]) <= 1 / 64  # at most one borderline example flips
    assert abs(one["result"]["test_acc"] - four["result"]["test_acc"]) <= 1 / 128
