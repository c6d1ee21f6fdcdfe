"""Several hosts and several workers: multi-process JAX, the primary process, and per-run claims.

Hosts of one JAX program (a TPU VM pod, a Slurm or multi-node GPU job) train each run together: every process
runs the same grid in the same order, loads the data, computes on its slice of each global batch, and only
process 0 writes logs, metrics and results (orbax checkpoints are written by all, as orbax requires).
Independent workers (`--worker=i/n`, or several `run.py` on one sweep directory) split the grid instead: each
run is claimed with an exclusive `flock` on `runs/<run>/.claim`; the kernel drops a dead worker's lock, so its
run is picked up again by the next worker that comes by.
"""

import fcntl
import pathlib
from typing import Optional, Tuple

import jax

from helmjax.errors import UserError


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None):
    """`jax.distributed.initialize`, auto-detecting the cluster (TPU VM, Slurm, ...) when no address is given."""
    kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address, num_processes=num_processes,
                                    process_id=process_id).items() if v is not None}
    # CPU hosts (and tests that simulate hosts with processes) need a collectives backend; GPUs/TPUs bring theirs.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)


def is_primary() -> bool:
    return jax.process_index() == 0


def parse_worker(text: str) -> Tuple[int, int]:
    """`"i/n"` -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise UserError(f"--worker={text!r} must look like i/n, e.g. --worker=0/4") from None
    if not 0 <= i < n:
        raise UserError(f"--worker={text!r}: need 0 <= i < n")
    return i, n


class RunClaim:
    """An exclusive, non-blocking claim on one run directory, held while this process trains it."""

    def __init__(self, run_dir: pathlib.Path):
        self.path = pathlib.Path(run_dir) / ".claim"
        self.file = None

    def acquire(self) -> bool:
        if jax.process_count() > 1:  # hosts of one program train the same run together
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            self.file.close()
            self.file = None
            return False

    def release(self):
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
