"""Kill a small sweep with SIGKILL at random moments, restart it until it finishes, and check nothing was lost.

    python -m helmjax.testing.crash_harness --cycles=40 --seconds=600     # the long run
    python -m helmjax.testing.crash_harness --cycles=6 --seconds=120      # the bounded version CI runs

The sweep (3 levels x 1 arch x 2 seeds of a small procedural dataset, real Pillow JPEG, real orbax, the real
runner) first runs once uninterrupted as the reference. Then a fresh copy is started, killed after a random
delay, restarted, and so on (bounded in count and time) until a process exits by itself. The checks: every run
finished exactly once (no run trained again after its `result.json` appeared), every result and every epoch's
metrics are bit-identical to the reference, and `results.jsonl` lists every run. Each kill is classified by the
phase it hit (training, checkpoint write, results write, quantized-cache write), read from $HELMJAX_TRACE.
A last check sends SIGTERM during training: the process must exit cleanly (code 130) and the rerun must
still match the reference.

    python -m helmjax.testing.crash_harness --mid_epoch                   # one kill in the middle of an epoch

The mid-epoch check trains one run on a larger set with a checkpoint every few steps (`train.checkpoint_every_steps`)
and kills it with SIGKILL a few steps after a checkpoint inside epoch 2. The resumed run must go on at the batch after
that checkpoint and end bit-identical to the uninterrupted run, and epoch 2, pieced together from the batches the
trace logs (the killed process's up to the checkpoint, the resumed one's from there), must be the uninterrupted run's
epoch 2 batch for batch: every item once.
"""

import argparse
import collections
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time
from typing import Optional

from helmjax import layout

EPOCHS = 3
# The mid-epoch check: 1280 training images (1152 after validation) in batches of 32 are 36 steps per epoch, with a
# checkpoint after every 9th; the kill comes once KILL_AFTER_STEPS steps past epoch 2's first mid-epoch checkpoint
# are logged, far (7 steps and a write) from the next checkpoint, which a late kill would reach.
MID_EPOCH_TRAIN, MID_EPOCH_EVERY, KILLED_EPOCH, KILL_AFTER_STEPS = 1280, 9, 2, 2


def _child(workdir: str, mid_epoch: bool = False):
    """The sweep under test (runs in the child process): the kill sweep, or the mid-epoch check's one run."""
    import numpy as np

    from helmjax import config as config_lib
    from helmjax.sweeps import sweep
    from helmjax.data import catalog
    from helmjax.data.dataset import ArrayDataset

    def make_bars(seed: int = 0, n_train: int = 320, n_test: int = 160) -> ArrayDataset:
        rng = np.random.RandomState(seed)
        y = rng.randint(0, 4, n_train + n_test).astype(np.int32)
        x = (rng.rand(n_train + n_test, 16, 16, 3) * 80).astype(np.uint8)
        for c in range(4):
            x[y == c, :, c * 4:(c + 1) * 4] += 120
        return ArrayDataset("bars", x[:n_train], y[:n_train], x[n_train:], y[n_train:], tuple("abcd"))

    def make_large_bars(seed: int = 0) -> ArrayDataset:
        return make_bars(seed, n_train=MID_EPOCH_TRAIN)

    catalog.register("bars", make_bars)
    catalog.register("bars_large", make_large_bars)
    c = config_lib.load_experiment("cifar_q_sweep_small")
    common = ["name=crash_sweep", f"train.epochs={EPOCHS}", "train.batch_size=32", "train.eval_batch_size=80",
              "train.augment=True"]
    if mid_epoch:
        c = config_lib.apply_overrides(c, common + ["data.name=bars_large", "grid.level=raw", "grid.seed=0",
                                                    f"train.checkpoint_every_steps={MID_EPOCH_EVERY}"])
    else:
        c = config_lib.apply_overrides(c, common + ["data.name=bars", "grid.level=raw,10,50", "grid.seed=0,1"])
    stop = sweep.StopFlag()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sweep.run_sweep(c, pathlib.Path(workdir), stop=stop, progress=False, log=lambda *a: None)
    except sweep.StopRequested:
        sys.exit(130)


def _start(workdir: pathlib.Path, trace: pathlib.Path, mid_epoch: bool = False) -> subprocess.Popen:
    env = dict(os.environ, HELMJAX_TRACE=str(trace), PYTHONUNBUFFERED="1")
    root = pathlib.Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "helmjax.testing.crash_harness", "--child", str(workdir)]
                            + (["--mid_epoch"] if mid_epoch else []),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run_to_end(workdir: pathlib.Path, trace: pathlib.Path, mid_epoch: bool = False) -> float:
    t0 = time.perf_counter()
    p = _start(workdir, trace, mid_epoch)
    _, err = p.communicate(timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {p.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - t0


def _trace_lines(trace: pathlib.Path) -> list:
    if not trace.exists():
        return []
    return [line.split(" ", 2) for line in trace.read_text().splitlines() if line.count(" ") >= 2]


TARGETS = ("write-start cache/", "checkpoint-start", "/result.json", "results.jsonl", "metrics ")


def _phase(event: str) -> str:
    if event.startswith("write-end") and event.endswith("sweep.json"):
        return "data loading / quantizing"
    if event.startswith("checkpoint-start"):
        return "checkpoint write"
    if event.startswith("write-start cache/"):
        return "quantized-cache write"
    if event.startswith("write-start") and ("results" in event or "result.json" in event):
        return "results write"
    if event.startswith(("train ", "batch ", "metrics ", "checkpoint-end", "write-end")):
        return "training"
    return "start-up / other"


def _phase_at_kill(lines: list, pid: int) -> str:
    mine = [event for _, p, event in lines if p == str(pid)]
    return _phase(mine[-1]) if mine else "start-up (before the first event)"


def _sweep_dir(workdir: pathlib.Path) -> pathlib.Path:
    return workdir / "crash_sweep"


def _snapshot(workdir: pathlib.Path) -> dict:
    """result.json files as they are now: {run: (mtime_ns, bytes)}."""
    out = {}
    for path in layout.runs_dir(_sweep_dir(workdir)).glob(f"*/{layout.RESULT_FILE}"):
        out[path.parent.name] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


def _comparable(sweep_dir: pathlib.Path) -> dict:
    """Everything that must be bit-identical to the reference: results and per-epoch metrics."""
    drop = {"train_seconds", "epoch_seconds"}
    runs = {}
    for run_dir in sorted(layout.runs_dir(sweep_dir).iterdir()):
        result = layout.read_result(run_dir)
        # strict: a torn line left by a resumed run must fail the check, not be skipped
        metrics = [json.loads(line) for line in (run_dir / layout.METRICS_FILE).read_text().splitlines()]
        runs[run_dir.name] = ({k: v for k, v in result.items() if k not in drop},
                              [{k: v for k, v in m.items() if k not in drop} for m in metrics],
                              (run_dir / layout.TEST_CORRECT_FILE).read_bytes())
    return runs


def harness(cycles: int, seconds: float, seed: int, keep: bool = False, log=print) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="helmjax-crash-") as tmp:
        tmp = pathlib.Path(tmp)
        reference_dir, trace_ref = tmp / "reference", tmp / "reference.trace"
        reference_seconds = _run_to_end(reference_dir, trace_ref)
        log(f"reference sweep: {reference_seconds:.1f} s")
        reference = _comparable(_sweep_dir(reference_dir))

        deadline = time.perf_counter() + seconds
        kills, phases, problems, rounds, runs = 0, collections.Counter(), [], 0, 0
        while kills < cycles and time.perf_counter() < deadline:
            # One round: a fresh sweep killed until it finishes by itself, then checked.
            rounds += 1
            workdir, trace = tmp / f"killed-{rounds}", tmp / f"killed-{rounds}.trace"
            first_seen, finished = {}, False
            while kills < cycles and time.perf_counter() < deadline:
                p = _start(workdir, trace)
                # Half the kills at a random moment, half the moment a chosen phase begins (short windows such
                # as a cache or results write are rarely hit at random), whichever comes first.
                target = rng.choice(TARGETS) if rng.random() < 0.5 else None
                delay = rng.uniform(0.5, reference_seconds * 0.8)
                try:
                    _wait_for_event(p, trace, target, timeout=delay)
                    finished = p.returncode == 0
                    if not finished:
                        raise RuntimeError(f"the sweep failed after a restart (exit {p.returncode}):\n"
                                           f"{p.stderr.read()[-3000:]}")
                    break
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    p.stderr.close()
                    kills += 1
                    phases[_phase_at_kill(_trace_lines(trace), p.pid)] += 1
                for run, stamp in _snapshot(workdir).items():
                    first_seen.setdefault(run, stamp)
            if not finished:
                _run_to_end(workdir, trace)
            problems += [f"round {rounds}: {p}" for p in _check_round(workdir, trace, first_seen, reference)]
            runs += len(reference)
        log(f"{kills} kills over {rounds} rounds")
        term = _sigterm_check(tmp, reference)
        problems += term["problems"]
        summary = {"kills": kills, "rounds": rounds, "phases": dict(phases), "runs_checked": runs,
                   "problems": problems,
                   "sigterm_exit": term["exit"], "sigterm_seconds": term["seconds"]}
        log(json.dumps(summary, indent=2))
        return summary


def _check_round(workdir: pathlib.Path, trace: pathlib.Path, first_seen: dict, reference: dict) -> list:
    problems = []
    for run, stamp in _snapshot(workdir).items():
        if run in first_seen and first_seen[run] != stamp:
            problems.append(f"{run}: result.json was rewritten after it first appeared (retrained)")
    problems += [f"{run}: training started again after its result was written"
                 for run in _retrained_runs(_trace_lines(trace))]
    got = _comparable(_sweep_dir(workdir))
    if set(got) != set(reference):
        problems.append(f"runs differ: {sorted(set(got) ^ set(reference))}")
    for run in sorted(set(got) & set(reference)):
        for part, name in enumerate(("result", "metrics", "test predictions")):
            if got[run][part] != reference[run][part]:
                problems.append(f"{run}: {name} differ from the uninterrupted sweep")
    rows = (_sweep_dir(workdir) / layout.RESULTS_JSONL).read_text().splitlines()
    if len(rows) != len(reference):
        problems.append(f"results.jsonl has {len(rows)} rows, expected {len(reference)}")
    return problems


def _wait_for_event(p: subprocess.Popen, trace: pathlib.Path, target, timeout: float):
    """Returns when `p` exits; raises TimeoutExpired (the cue to kill it) when it logs an event containing
    `target` or when `timeout` passes."""
    deadline = time.perf_counter() + timeout
    seen = 0
    while time.perf_counter() < deadline:
        if p.poll() is not None:
            return
        lines = _trace_lines(trace)
        if target and any(pid == str(p.pid) and target in event for _, pid, event in lines[seen:]):
            raise subprocess.TimeoutExpired(p.args, 0)
        seen = max(0, len(lines) - 1)
        time.sleep(0.002)
    raise subprocess.TimeoutExpired(p.args, timeout)


def _retrained_runs(lines: list) -> list:
    done_at = {}
    bad = []
    for ts, _, event in lines:
        if event.startswith("write-end") and event.endswith("/result.json"):
            done_at.setdefault(event.split()[1].split("/")[0], float(ts))
        if event.startswith("train "):
            run = event.split()[1]
            if run in done_at and float(ts) > done_at[run]:
                bad.append(run)
    return sorted(set(bad))


def _sigterm_check(tmp: pathlib.Path, reference: dict) -> dict:
    """SIGTERM during training: a clean exit (130) within seconds, then a rerun equal to the reference."""
    workdir, trace = tmp / "sigterm", tmp / "sigterm.trace"
    p = _start(workdir, trace)
    deadline = time.perf_counter() + 300
    while time.perf_counter() < deadline and p.poll() is None:
        if any(event.startswith("metrics ") for _, _, event in _trace_lines(trace)):
            break
        time.sleep(0.05)
    t0 = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    seconds = time.perf_counter() - t0
    problems = []
    if p.returncode != 130:
        problems.append(f"SIGTERM: exit code {p.returncode}, expected 130")
    _run_to_end(workdir, trace)
    if _comparable(_sweep_dir(workdir)) != reference:
        problems.append("SIGTERM: the resumed sweep differs from the uninterrupted one")
    return {"exit": p.returncode, "seconds": seconds, "problems": problems}


def _batches(lines: list, pid: Optional[str] = None, epoch: int = KILLED_EPOCH) -> dict:
    """{step: items} of the training batches a process (every process when None) logged in `epoch`."""
    out = {}
    for _, p, event in lines:
        if event.startswith("batch ") and (pid is None or p == pid):
            _, _, e, step, items = event.split(" ")
            if int(e) == epoch:
                out[int(step)] = [int(i) for i in items.split(",")]
    return out


def _last_checkpoint(lines: list, pid: str) -> Optional[int]:
    """The step count of the last mid-epoch checkpoint `pid` finished writing."""
    ends = [int(event.split()[2]) for _, p, event in lines if p == pid and event.startswith("checkpoint-end mid_epoch")]
    return ends[-1] if ends else None


def mid_epoch(log=print) -> dict:
    """Kills the mid-epoch check's run KILL_AFTER_STEPS steps after epoch 2's first mid-epoch checkpoint, resumes it
    and compares it with an uninterrupted run; returns what it saw, with `problems` (empty when all held)."""
    with tempfile.TemporaryDirectory(prefix="helmjax-crash-mid-epoch-") as tmp:
        tmp = pathlib.Path(tmp)
        reference_seconds = _run_to_end(tmp / "reference", tmp / "reference.trace", mid_epoch=True)
        log(f"reference run: {reference_seconds:.1f} s")
        reference_epoch = _batches(_trace_lines(tmp / "reference.trace"))
        steps = len(reference_epoch)
        before = steps * (KILLED_EPOCH - 1)  # step count at the start of the killed epoch
        workdir, trace = tmp / "killed", tmp / "killed.trace"
        p = _start(workdir, trace, mid_epoch=True)
        pid, deadline, trigger, lines, seen = str(p.pid), time.perf_counter() + 600, None, [], 0
        while p.poll() is None and time.perf_counter() < deadline:
            if trace.exists():  # only the new whole lines: the kill must come within a step or two
                with open(trace, "rb") as f:
                    f.seek(seen)
                    text = f.read()
                text = text[:text.rfind(b"\n") + 1]
                seen += len(text)
                lines = [line.split(" ", 2) for line in text.decode().splitlines() if line.count(" ") >= 2]
            if trigger is None:
                last = _last_checkpoint(lines, pid)
                trigger = None if last is None or last <= before else last - before + KILL_AFTER_STEPS - 1
            if trigger is not None and max(_batches(lines, pid), default=-1) >= trigger:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        p.wait()
        p.stderr.close()
        if trigger is None or p.returncode != -signal.SIGKILL:
            return {"problems": [f"the run was not killed in epoch {KILLED_EPOCH} (exit {p.returncode})"]}
        killed_lines = _trace_lines(trace)
        killed_epoch, resume_step = _batches(killed_lines, pid), _last_checkpoint(killed_lines, pid) - before
        _run_to_end(workdir, trace, mid_epoch=True)
        lines = _trace_lines(trace)
        resumed_pid = next(q for _, q, event in lines if event.startswith("train ") and q != pid)
        resumed_epoch = _batches(lines, resumed_pid)
        problems = []
        starts = [event for _, q, event in lines if q == resumed_pid and event.startswith("train ")]
        if starts != [f"train raw-A-s0 from-epoch {KILLED_EPOCH - 1} step {resume_step}"]:
            problems.append(f"the resumed run started with {starts}, not at step {resume_step} of epoch {KILLED_EPOCH}")
        lost = sorted(step for step in killed_epoch if step >= resume_step)
        if not lost:
            problems.append("the killed run trained no step past its last checkpoint: the kill tested nothing")
        if sorted(resumed_epoch) != list(range(resume_step, steps)):
            problems.append(f"the resumed run trained steps {sorted(resumed_epoch)} of epoch {KILLED_EPOCH}, not "
                            f"{resume_step} to {steps - 1}")
        pieced = {step: items for step, items in killed_epoch.items() if step < resume_step}
        pieced.update(resumed_epoch)
        items = [i for step in sorted(pieced) for i in pieced[step]]
        if len(items) != len(set(items)):
            problems.append(f"epoch {KILLED_EPOCH} saw {len(items) - len(set(items))} items twice")
        if pieced != reference_epoch:
            problems.append(f"epoch {KILLED_EPOCH}'s batches differ from the uninterrupted run's")
        if _comparable(_sweep_dir(workdir)) != _comparable(_sweep_dir(tmp / "reference")):
            problems.append("the resumed run's result, metrics or test predictions differ from the uninterrupted run's")
        summary = {"epoch_steps": steps, "resume_step": resume_step, "lost_steps": lost, "items": len(items),
                   "distinct_items": len(set(items)), "problems": problems}
        log(json.dumps(summary))
        return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=40, help="most SIGKILLs")
    parser.add_argument("--seconds", type=float, default=600, help="time bound for the kill loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mid_epoch", action="store_true", help="the mid-epoch check instead of the kill loop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.mid_epoch)
        return
    summary = mid_epoch() if args.mid_epoch else harness(args.cycles, args.seconds, args.seed)
    sys.exit(1 if summary["problems"] else 0)


if __name__ == "__main__":
    main()
