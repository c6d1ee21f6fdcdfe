"""Run claims on a file system whose locks do nothing (gcsfuse, NFS without locks): one owner per run, leases
that lapse, dead owners replaced, and a worker that lost its claim writes no result."""

import errno
import fcntl
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

from helmjax import distributed
from helmjax.distributed import CLAIM_LEASE_SECONDS, RunClaim
from helmjax.sweeps import sweep
from tests.test_sweep import tiny_config

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def _no_locks(*args, **kwargs):
    """flock on a FUSE-mounted bucket: returns at once and excludes nobody."""


@pytest.fixture(autouse=True)
def lockless(monkeypatch):
    monkeypatch.setattr(fcntl, "flock", _no_locks)


def _race(claims) -> list:
    """`acquire` of every claim at once, one thread each; the claims that won."""
    start = threading.Barrier(len(claims))
    won = []

    def claim(c):
        start.wait()
        if c.acquire():
            won.append(c)

    threads = [threading.Thread(target=claim, args=(c,)) for c in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def _ahead(seconds: float):
    """The clock of a worker that sees every lease `seconds` later than it is (or whose owner stalled that long)."""
    return lambda: time.time() + seconds


def test_of_many_workers_claiming_a_free_run_exactly_one_wins(tmp_path):
    won = _race([RunClaim(tmp_path / "run") for _ in range(16)])
    assert len(won) == 1
    assert sorted(os.listdir(tmp_path / "run")) == [".claim.0"]  # no temp file left behind
    won[0].release()


def test_without_hard_links_an_exclusive_create_still_lets_one_win(tmp_path, monkeypatch):
    def no_links(src, dst):  # gcsfuse
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "link", no_links)
    won = _race([RunClaim(tmp_path / "run") for _ in range(16)])
    assert len(won) == 1 and won[0].confirm()
    assert sorted(os.listdir(tmp_path / "run")) == [".claim.0"]
    won[0].release()


def test_an_expired_lease_is_taken_over_by_exactly_one_worker_and_a_fresh_one_by_none(tmp_path):
    owner = RunClaim(tmp_path / "run")
    assert owner.acquire()
    assert _race([RunClaim(tmp_path / "run", clock=_ahead(CLAIM_LEASE_SECONDS / 2)) for _ in range(8)]) == []
    # All see the lease expired, all try the next generation, one creates it.
    won = _race([RunClaim(tmp_path / "run", clock=_ahead(CLAIM_LEASE_SECONDS + 1)) for _ in range(16)])
    assert len(won) == 1 and won[0].generation == 1
    assert not owner.confirm() and owner.lost  # the old owner learns it before writing anything
    assert won[0].confirm()
    won[0].release()


def test_a_released_claim_is_free_at_once_and_generations_are_never_reused(tmp_path):
    first = RunClaim(tmp_path / "run")
    assert first.acquire()
    first.release()
    second = RunClaim(tmp_path / "run")
    assert second.acquire() and second.generation == 1
    assert not RunClaim(tmp_path / "run").acquire()
    second.release()


def test_the_heartbeat_keeps_a_live_claim_past_its_lease(tmp_path):
    owner = RunClaim(tmp_path / "run", lease_seconds=2.0)
    assert owner.acquire()
    time.sleep(3.0)  # longer than the lease: only the heartbeats keep it
    assert not RunClaim(tmp_path / "run").acquire()
    assert owner.confirm() and not owner.lost
    owner.release()


def test_a_claim_file_being_written_counts_as_held_for_one_lease(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".claim.0").write_text("")  # an exclusive create whose content has not arrived (gcsfuse)
    assert not RunClaim(run).acquire()
    old = time.time() - CLAIM_LEASE_SECONDS - 1  # ... or one torn by a kill, long ago
    os.utime(run / ".claim.0", (old, old))
    taker = RunClaim(run)
    assert taker.acquire() and taker.generation == 1
    taker.release()


OWNER_THAT_DIES = """
import os, sys
from helmjax.distributed import RunClaim
for run_dir in sys.argv[1:]:
    assert RunClaim(run_dir).acquire()
print("claimed", flush=True)
sys.stdin.readline()
os._exit(0)  # dies holding its claims: no release, no more heartbeats
"""


def test_a_dead_owner_is_replaced_at_once_on_its_machine_and_after_its_lease_elsewhere(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "a", tmp_path / "b"
    child = subprocess.Popen([sys.executable, "-c", OWNER_THAT_DIES, str(here), str(elsewhere)], cwd=ROOT,
                             env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "claimed"
        assert not RunClaim(here).acquire()  # alive: its claim holds
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    taker = RunClaim(here)
    assert taker.acquire() and taker.generation == 1  # its process is gone: no need to wait
    taker.release()
    monkeypatch.setattr(distributed, "_node", lambda: "another machine")  # cannot see the owner's processes
    assert not RunClaim(elsewhere).acquire()
    late = RunClaim(elsewhere, clock=_ahead(CLAIM_LEASE_SECONDS + 1))
    assert late.acquire() and late.generation == 1
    late.release()


WORKER = """
import fcntl, json, pathlib, sys
fcntl.flock = lambda *args, **kwargs: None  # a file system whose locks do nothing
import tests.conftest  # the "stripes" data set
from tests.test_sweep import tiny_config
from helmjax.sweeps import sweep
config = tiny_config("grid.level=raw,10,90", "train.epochs=1")
print("ready", flush=True)
sys.stdin.readline()  # both workers start together
out = sweep.run_sweep(config, pathlib.Path(sys.argv[1]), progress=False, log=lambda *a: None)
print(json.dumps({"trained": out.trained, "busy": out.busy, "skipped": out.skipped}), flush=True)
"""


@pytest.mark.slow
def test_two_workers_on_a_lockless_file_system_train_each_run_once_and_finish_all(tmp_path):
    trace = tmp_path / "trace"
    env = dict(ENV, HELMJAX_TRACE=str(trace))
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path / "w")], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    for w in workers:
        assert w.stdout.readline().strip() == "ready", w.stderr.read()[-3000:]
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    outs = []
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-3000:]
        outs.append(json.loads(out.splitlines()[-1]))
    runs = ["raw-A-s0", "q10-A-s0", "q90-A-s0"]
    a, b = (set(o["trained"]) for o in outs)
    assert not a & b and a | b == set(runs)
    starts = [line.split()[3] for line in trace.read_text().splitlines() if line.split()[2] == "train"]
    assert sorted(starts) == sorted(runs)  # each run's training started once, by one worker
    for run in runs:
        run_dir = tmp_path / "w" / "cifar_q_sweep_small" / "runs" / run
        assert json.loads((run_dir / "result.json").read_text())["status"] == "done"
        assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.slow
def test_a_worker_that_lost_its_claim_stops_and_writes_no_result(tmp_path, monkeypatch):
    """A rival that sees the lease expired takes raw over after its first epoch, and q10 once trained but before
    its result: the first worker stops raw there, writes neither result, and the rival's pass finishes both."""
    c = tiny_config("grid.level=raw,10")
    real = sweep.train_runs
    rivals = []

    def train_runs_with_a_rival(run_dirs, *args, on_epoch, **kwargs):
        rival = RunClaim(run_dirs[0], clock=_ahead(CLAIM_LEASE_SECONDS + 1))
        rivals.append(rival)

        def rival_after_epoch_1(m, row):
            if run_dirs[0].name == "raw-A-s0" and row["epoch"] == 1:
                assert rival.acquire()
            on_epoch(m, row)

        results = real(run_dirs, *args, on_epoch=rival_after_epoch_1, **kwargs)
        if run_dirs[0].name == "q10-A-s0":
            assert rival.acquire()
        return results

    monkeypatch.setattr(sweep, "train_runs", train_runs_with_a_rival)
    said = []
    out = sweep.run_sweep(c, tmp_path, progress=False, log=said.append)
    runs = tmp_path / c.name / "runs"
    assert out.trained == [] and out.busy == ["raw-A-s0", "q10-A-s0"]
    assert not (runs / "raw-A-s0" / "result.json").exists() and not (runs / "q10-A-s0" / "result.json").exists()
    assert len((runs / "raw-A-s0" / "metrics.jsonl").read_text().splitlines()) == 1  # stopped after epoch 1
    assert sum("claim lapsed" in line for line in said) == 2
    monkeypatch.setattr(sweep, "train_runs", real)
    for rival in rivals:
        rival.release()  # the rival's pass, in short: resume where the checkpoints are
    again = sweep.run_sweep(c, tmp_path, progress=False, log=lambda *_: None)
    assert again.trained == ["raw-A-s0", "q10-A-s0"]
    for run in ("raw-A-s0", "q10-A-s0"):
        assert [json.loads(l)["epoch"] for l in (runs / run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
