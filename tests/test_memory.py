"""The allocator setting (`helmjax.memory`): applied in a fresh process on glibc, left alone where the user set it."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROBE = "from helmjax import memory; print(memory.limit_heap_growth(), memory.limit_heap_growth())"


def _run(env):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_limit_heap_growth_applies_once_and_respects_the_users_own_setting():
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX")}
    assert _run(env) == ["True", "True"]
    assert _run(dict(env, MALLOC_ARENA_MAX="4")) == ["False", "False"]
