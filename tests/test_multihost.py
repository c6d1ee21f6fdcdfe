"""Several hosts, simulated by 2 processes x 2 CPU devices: one sweep trained together, written by process 0."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

SCRIPT = """
import pathlib, sys
from helmjax import distributed
distributed.initialize(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
import jax
from helmjax.sweeps import sweep
import tests.conftest
from tests.test_sweep import tiny_config
c = tiny_config("grid.level=raw,10", "train.batch_size=32")
out = sweep.run_sweep(c, pathlib.Path(sys.argv[4]), progress=False, log=lambda *a: None)
print("PROCESS", jax.process_index(), jax.process_count(), jax.device_count(), out.trained, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, processes: int, devices_each: int) -> list:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_each}")
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, address, str(processes), str(i), str(workdir)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(processes)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [next(l for l in out.splitlines() if l.startswith("PROCESS")) for out, _ in outs]


def _rows(workdir):
    path = pathlib.Path(workdir) / "cifar_q_sweep_small" / "results.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_hosts_train_together_and_match_one_host(tmp_path):
    lines = _launch(tmp_path / "two", processes=2, devices_each=2)
    assert all("2 4 ['raw-A-s0', 'q10-A-s0']" in l for l in lines), lines
    _launch(tmp_path / "one", processes=1, devices_each=4)
    two, one = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert [r["run"] for r in two] == ["raw-A-s0", "q10-A-s0"]
    for a, b in zip(one, two):
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1 / 32)
        assert b["test_acc"] == pytest.approx(a["test_acc"], abs=1 / 64)
    metrics = (tmp_path / "two" / "cifar_q_sweep_small" / "runs" / "raw-A-s0" / "metrics.jsonl").read_text()
    assert len(metrics.splitlines()) == 2  # written once (by process 0), not once per process
