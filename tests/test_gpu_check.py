"""The GPU check runs end to end on CPU (`--smoke`), so a session lent an accelerator can run it in one call."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_part_and_writes_its_figures(tmp_path, shared_data):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke", f"--out={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    parts = json.loads(out.read_text())["parts"]
    assert set(parts) == {"devices", "jpeg", "train", "stack", "sweep", "imagenet"}
    assert parts["imagenet"]["images_per_s"] > 0 and parts["imagenet"]["store_items_per_s"] > 0
    assert parts["devices"]["backend"] == "cpu" and parts["devices"]["versions"]["jax"]
    for size in parts["jpeg"].values():
        if isinstance(size, dict):
            assert size["jax_images_per_s"] > 0 and size["pillow_images_per_s"] > 0
    assert parts["train"]["A"]["images_per_s"] > 0 and parts["train"]["evaluation_A"]["images_per_s"] > 0
    assert {"unroll_1", "unroll_2", "vmap_1", "vmap_2"} <= set(parts["stack"]) and parts["stack"]["fastest"]
    rows = parts["sweep"]["rows"]
    assert {r["level"] for r in rows} == {"raw", 20} and all(r["test_acc"] is not None for r in rows)
    report = (tmp_path / "gpu_check_report.md").read_text()
    assert report.startswith("# demo_q_sweep")


def test_gpu_check_without_out_writes_under_runs_gpu_check_not_the_current_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--parts=devices"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert json.loads((tmp_path / "runs" / "gpu_check" / "gpu_check.json").read_text())["parts"]["devices"]
