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
import json, pathlib, sys
from helmjax import distributed
distributed.initialize(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
import jax
from helmjax.sweeps import sweep
from helmjax.training import pipeline
import tests.conftest
from tests.test_sweep import tiny_config
read, stacks, batches = [], [], pipeline.StackInput.batches
def logged(self, orders, epoch=0, start=0):  # the training items this process reads, batch by batch
    for batch in batches(self, orders, epoch, start):
        stack = next((k for k, other in enumerate(stacks) if other is self), None)
        if stack is None:
            stacks.append(self)
            stack = len(stacks) - 1
        read.append([stack, batch.epoch, batch.step, batch.rows.tolist()])
        yield batch
pipeline.StackInput.batches = logged
c = tiny_config("grid.level=raw,10", "train.batch_size=32", *json.loads(sys.argv[5]))
out = sweep.run_sweep(c, pathlib.Path(sys.argv[4]), progress=False, log=lambda *a: None)
pathlib.Path(sys.argv[4], f"read-{jax.process_index()}.json").write_text(json.dumps(read))
print("PROCESS", jax.process_index(), jax.process_count(), jax.device_count(), out.trained, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, processes: int, devices_each: int, overrides=()) -> list:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_each}")
    address = f"localhost:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, address, str(processes), str(i), str(workdir),
                               json.dumps(list(overrides))],
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
    """The two hosts stream every level from its store (decoded batch by batch, each process its own rows of every
    batch); the one host holds the decoded levels in memory. Across the two processes each training item of an
    epoch is read once."""
    lines = _launch(tmp_path / "two", processes=2, devices_each=2, overrides=["train.in_memory_bytes=0"])
    assert all("2 4 ['raw-A-s0', 'q10-A-s0']" in l for l in lines), lines
    reads = [json.loads((tmp_path / "two" / f"read-{i}.json").read_text()) for i in range(2)]
    assert [r[:3] for r in reads[0]] == [r[:3] for r in reads[1]]  # the same batches, in step
    checked = 0
    for stack, epoch in {(k, e) for k, e, _, _ in reads[0]}:  # a stack of runs trained together, one epoch
        steps = [(a[3], b[3]) for a, b in zip(*reads) if a[:2] == [stack, epoch]]
        for member in range(len(steps[0][0])):
            items = [row for a, b in steps for row in a[member] + b[member]]
            assert len(items) == len(set(items)) == len(steps) * 32  # every item once, the batches full
            checked += 1
    assert checked == 2 * 2  # 2 runs x 2 epochs
    _launch(tmp_path / "one", processes=1, devices_each=4)
    two, one = _rows(tmp_path / "two"), _rows(tmp_path / "one")
    assert [r["run"] for r in two] == ["raw-A-s0", "q10-A-s0"]
    for a, b in zip(one, two):
        assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1 / 32)
        assert b["test_acc"] == pytest.approx(a["test_acc"], abs=1 / 64)
    metrics = (tmp_path / "two" / "cifar_q_sweep_small" / "runs" / "raw-A-s0" / "metrics.jsonl").read_text()
    assert len(metrics.splitlines()) == 2  # written once (by process 0), not once per process
