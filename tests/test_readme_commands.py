"""Every command-line example in README.md runs as written, through `run.py` itself, at small settings.

The commands are read from README.md's bash blocks (so a new example is tested without editing this file). Each
keeps its own flags; the test only shrinks the data and the grid before them (`--set` applied first, so the
README's own `--set` still wins) and the training after them (1 epoch of 2 steps), into one shared workdir, in
README order: a later `--analyze` finds the runs an earlier command made. SIGTERM is tested on its own.
"""

import os
import pathlib
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from helmjax import config as config_lib
from helmjax.paths import data_dir
from helmjax.sweeps import axes

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Data, grid and model kept small; each experiment's data set shrunk in its own terms (CIFAR-10's full-width nets,
# A to F at width 1, cost most of this file's time to compile and evaluate; the width is a scale knob like the data's).
SMALL_DATA = {"camera": ["data.n_train=240", "data.n_test=120"], "cifar10": ["data.source=subset", "model.width=0.25"]}
FAST_TRAINING = ["train.epochs=1", "train.max_steps_per_epoch=2"]


def readme_commands() -> list:
    """The README's command lines that start `run.py` (continuations joined, comments dropped), in order."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if "python run.py" in line:
                commands.append(line)
    return commands


def _flag_values(command: str, flag: str) -> list:
    return re.findall(rf"--{flag}[= ](\S+)", command)


def _small_grid(command: str, config) -> list:
    """`--set grid...` values holding the levels, archs and seeds the command's `--only` names (else one each)."""
    only = config_lib.parse_filters(_flag_values(command, "only"), [n for n, _ in axes.raw_axes(config)])
    levels = [lv for lv in config.grid.level if lv in only.get("level", ())] or list(config.grid.level[:2])
    if "raw" in config.grid.level and "raw" not in levels:
        levels = ["raw"] + levels
    archs = [a for a in config.grid.arch if a in only.get("arch", ())] or [config.grid.arch[0]]
    level_text = ",".join(str(lv) for lv in levels)
    return [f"grid.level={level_text}", f"grid.arch={','.join(archs)}", "grid.seed=[0]", "grid.reference_seed=[]"]


def _fewer_settings(config, args: str) -> str:
    """An experiment with grid axes: `--only` its first two settings (and, where a setting brings its own levels,
    raw and the first setting's most compressed one), unless the command filters them itself."""
    settings = axes.settings(config)
    if not settings or "--only" in args:
        return ""
    name = axes.raw_axes(config)[0][0]
    chosen = ",".join(axes.value_text(s.columns[name]) for s in settings[:2])
    levels = dict(settings[0].assignments).get("grid.level")
    level = next((lv for lv in levels or [] if lv != "raw"), None)
    return f" --only {name}={chosen}" + (f" --only level=raw,{level}" if level is not None else "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_command(command: str, workdir: pathlib.Path) -> str:
    """The README command with small settings around its own flags, into `workdir`."""
    experiment = (_flag_values(command, "experiment") or ["demo_q_sweep"])[0]
    start = command.index("python run.py")
    head = command[:start]
    if not command.lstrip().startswith("for "):  # keep env assignments before `python`, drop `cd x && ...` chains
        head = " ".join(t for t in head.split() if re.fullmatch(r"[A-Z_]+=\S*", t))
    head = re.sub(r"HELMJAX_DATA_DIR=\S+", f"HELMJAX_DATA_DIR={data_dir()}", head)
    rest = command[start + len("python run.py"):].rstrip("'")
    end = re.search(r"\s(?:\d?>|&|;|\|)", rest)
    args, tail = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    before = []
    if "--list" not in args:
        config = config_lib.load_experiment(experiment)
        before = SMALL_DATA.get(config.data.name, []) + _small_grid(command, config)
        args += _fewer_settings(config, args)
    after = list(FAST_TRAINING) if "--list" not in args else []  # --analyze names the config it analyses too
    extra = f" --workdir={workdir} --noprogress"
    if "--distributed" in args:
        extra += f" --coordinator=127.0.0.1:{_free_port()} --num_processes=1 --process_id=0"
    sets = lambda items: "".join(f" --set {shlex.quote(item)}" for item in items)
    return f"{head} {shlex.quote(sys.executable)} run.py{sets(before)}{args}{sets(after)}{extra}{tail}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


def test_the_readme_has_the_commands_this_test_relies_on():
    joined = "\n".join(readme_commands())
    for needed in ("--list", "--only", "--worker", "--analyze", "--set", "--distributed"):
        assert needed in joined, needed


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(readme_commands())))
def test_readme_command_runs_as_written(index, workdir, shared_data):
    command = readme_commands()[index]
    if "pip install" in command:  # the install-and-run line: the install is what CI itself just did
        command = command[command.index("python run.py"):]
    shell = small_command(command, workdir)
    done = subprocess.run(["bash", "-c", shell], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert done.returncode == 0, f"{command}\n{shell}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    if "--list" in command:
        assert all(name in out for name in config_lib.experiment_names())
    elif "--worker" in command and "&" in command:  # workers log to files
        logs = sorted(ROOT.glob("worker*.log"))
        try:
            assert len(logs) == int(_flag_values(command, "worker")[0].split("/")[1])
            assert all("report:" in log.read_text() or "0 runs" in log.read_text() or log.read_text() == ""
                       or "test accuracy" in log.read_text() for log in logs)
        finally:
            for log in logs:
                log.unlink()
    else:
        assert "report: " in out and "test accuracy" in out, out[-2000:]
        trained = re.findall(r"^\s*(\S+): test acc", out, flags=re.M)
        axis_names = [n for n, _ in axes.raw_axes(config_lib.load_experiment(
            (_flag_values(command, "experiment") or ["demo_q_sweep"])[0]))]
        only = config_lib.parse_filters(_flag_values(command, "only"), axis_names)
        for name in trained:  # --only trains nothing outside its filter
            if "arch" in only:
                assert name.split("-")[-2] in only["arch"], (name, command)


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_exit_code_130_and_the_same_command_resumes(tmp_path):
    args = [sys.executable, "run.py", "--set", "data.n_train=240", "--set", "data.n_test=120", "--set",
            "grid.level=raw,20", "--set", "grid.reference_seed=[]", "--set", "train.epochs=3",
            f"--workdir={tmp_path}", "--noprogress"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "demo_q_sweep" / "runs" / "raw-A-s0" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.is_file() and metrics.read_text().strip()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "stopped on request" in err and "report:" not in out
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 runs done, 0 failed, 0 missing" in again.stdout
