"""Several hosts and several workers: multi-process JAX, the primary process, and per-run claims.

Hosts of one JAX program (a TPU VM pod, a Slurm or multi-node GPU job) train each run together: every process
runs the same grid in the same order, loads the data, computes on its slice of each global batch, and only
process 0 writes logs, metrics and results (orbax checkpoints are written by all, as orbax requires).

Independent workers (`--worker=i/n`, or several `run.py` on one sweep directory, on one host or many) split the
grid instead, through a claim per run that holds without `flock` (on a gcsfuse-mounted bucket, or NFS without
lock support, locks are per host or no-ops). A claim is a file `runs/<run>/.claim.<generation>` created only if
absent (`os.link` of a written temp file; `O_CREAT|O_EXCL` where hard links are missing, as on gcsfuse), so of
several workers exactly one creates it. It names its owner (host, pid, a random token) and a lease expiry that a
background thread pushes forward every fifth of the lease. A claim that was released, whose lease ran out, or whose
owner is a process of this machine that is gone, is taken over by creating the next generation the same way:
of two workers that both saw it lapse, one wins, and generations are never reused. An owner whose lease lapsed or
that sees a later generation has lost the run: it stops, writes no result, and leaves the run to the new owner,
so a dead worker's run is picked up at once on its own machine and after one lease elsewhere.

Safe on a file system with atomic exclusive create (local disks, NFSv3 and later, gcsfuse) when the hosts' clocks
agree to well within the lease and the mount caches metadata for less than four fifths of it.
"""

import dataclasses
import json
import os
import pathlib
import re
import secrets
import socket
import threading
import time
from typing import Callable, List, Optional, Tuple

import jax

from helmjax import atomic_io
from helmjax.errors import UserError
from helmjax.layout import CLAIM_FILE

CLAIM_LEASE_SECONDS = 300.0  # how long a silent owner on another machine keeps its run
BEATS_PER_LEASE = 5  # the owner refreshes its lease this many times per lease
LAPSE_MARGIN = 0.1  # an owner whose lease has less than this share left at a beat counts it lapsed
_GENERATION = re.compile(re.escape(CLAIM_FILE) + r"\.(\d+)")


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


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who holds a claim. `node` (kernel boot and pid namespace) says where `pid` means something, and `started`
    tells a reused pid from the owner."""
    host: str
    node: str
    pid: int
    started: str
    token: str


@dataclasses.dataclass(frozen=True)
class Lease:
    """A claim file's content; `owner` None when unreadable (an exclusive create not yet written)."""
    owner: Optional[Owner]
    expires: float
    released: bool = False


def this_process() -> Owner:
    """An owner for this process, with a fresh token (two claims of one process are two owners)."""
    return Owner(socket.gethostname(), _node(), os.getpid(), _start_time(os.getpid()) or "", secrets.token_hex(8))


def is_live(lease: Lease, now: float, here: str) -> bool:
    """Whether a lease still keeps others out: not released, not expired, and not held by a process of this
    machine (`here`, a `node`) that is gone."""
    if lease.released or now >= lease.expires:
        return False
    owner = lease.owner
    return owner is None or owner.node != here or _process_alive(owner.pid, owner.started)


def claim_path(run_dir: pathlib.Path, generation: int) -> pathlib.Path:
    return pathlib.Path(run_dir) / f"{CLAIM_FILE}.{generation}"


def generations(run_dir: pathlib.Path) -> List[int]:
    """The claim generations present in `run_dir`, ascending; the last is the one that counts."""
    try:
        names = os.listdir(run_dir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_GENERATION.fullmatch, names) if m)


def read_lease(path: pathlib.Path, lease_seconds: float) -> Optional[Lease]:
    """The lease in a claim file, None if there is no such file. An unreadable one is being written (or was torn
    by a kill): it counts as held for one lease after its last change."""
    try:
        text = path.read_text()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        return Lease(Owner(**record["owner"]), float(record["expires"]), bool(record.get("released", False)))
    except (ValueError, KeyError, TypeError):
        return Lease(None, mtime + lease_seconds)


class RunClaim:
    """A claim on one run directory, held by this process while it trains the run (see the module docstring).

    `acquire` once; `confirm` before writing the run's result (True while the claim is still this process's,
    refreshing the lease); `lost` turns True as soon as the heartbeat finds the claim gone; `release` when done.
    `clock` is the wall clock leases are read and written in (tests give a worker a skewed one).
    """

    def __init__(self, run_dir: pathlib.Path, lease_seconds: float = CLAIM_LEASE_SECONDS,
                 clock: Callable[[], float] = time.time):
        assert lease_seconds > 0
        self.run_dir = pathlib.Path(run_dir)
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.owner: Optional[Owner] = None
        self.generation: Optional[int] = None
        self.expires = 0.0
        self.lost = False
        self._together = False  # hosts of one JAX program share the run
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None

    def acquire(self) -> bool:
        if jax.process_count() > 1:  # hosts of one program train the same run together
            self._together = True
            return True
        assert self.generation is None, "a claim is acquired once"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        owner = this_process()
        present = generations(self.run_dir)
        target = 0
        if present:
            lease = read_lease(claim_path(self.run_dir, present[-1]), self.lease_seconds)
            if lease is not None and is_live(lease, self.clock(), owner.node):
                return False
            target = present[-1] + 1
        expires = self.clock() + self.lease_seconds
        if not _create(claim_path(self.run_dir, target), _encode(owner, expires)):
            return False  # another worker created this generation first
        self.owner, self.generation, self.expires = owner, target, expires
        if not self._still_mine():  # a later generation this worker's listing missed
            self.generation = None
            return False
        self._heartbeat = threading.Thread(target=self._beat_until_released, daemon=True,
                                           name=f"claim {self.run_dir.name}")
        self._heartbeat.start()
        return True

    def confirm(self) -> bool:
        """Refreshes the lease now; False if the claim was lost (then the run is left to its new owner)."""
        if self._together:
            return True
        return self._beat()

    def release(self):
        """Stops the heartbeat and marks the claim released, so the next worker need not wait out the lease."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self._lock:
            if self.generation is None or self.lost:
                return
            path = claim_path(self.run_dir, self.generation)
            lease = read_lease(path, self.lease_seconds)
            if lease is not None and lease.owner == self.owner:  # never another owner's file
                atomic_io.write_bytes(path, _encode(self.owner, 0.0, released=True))
            self.generation = None

    def _beat(self) -> bool:
        with self._lock:
            if self.lost or self.generation is None:
                return False
            now = self.clock()
            # A lapsed lease may already have been seen expired by others: only a fresh acquire can tell.
            if now > self.expires - LAPSE_MARGIN * self.lease_seconds or not self._still_mine():
                self.lost = True
                return False
            expires = now + self.lease_seconds
            atomic_io.write_bytes(claim_path(self.run_dir, self.generation), _encode(self.owner, expires))
            self.expires = expires
            return True

    def _beat_until_released(self):
        while not self._stop.wait(self.lease_seconds / BEATS_PER_LEASE):
            try:
                if not self._beat():
                    return
            except OSError:  # a passing storage error: the next beat tries again, the lapse rule still holds
                pass

    def _still_mine(self) -> bool:
        present = generations(self.run_dir)
        if not present or present[-1] != self.generation:
            return False
        lease = read_lease(claim_path(self.run_dir, self.generation), self.lease_seconds)
        return lease is not None and lease.owner == self.owner


def _encode(owner: Owner, expires: float, released: bool = False) -> bytes:
    return (json.dumps({"owner": dataclasses.asdict(owner), "expires": expires, "released": released})
            + "\n").encode()


def _create(path: pathlib.Path, data: bytes) -> bool:
    """Creates `path` holding `data` unless it exists; True if this call created it. Where hard links work, a
    written temp file is linked into place, so the claim appears whole; elsewhere (gcsfuse) an exclusive create
    is written after, and readers treat the empty file as held (`read_lease`)."""
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    _write_new(tmp, data)
    try:
        os.link(tmp, path)
        return True
    except OSError as e:
        if os.stat(tmp).st_nlink > 1:  # NFS can report a retried link that did succeed as failed (man 2 open)
            return True
        if isinstance(e, FileExistsError):
            return False
    finally:
        tmp.unlink(missing_ok=True)
    try:
        _write_new(path, data)
    except FileExistsError:
        return False
    return True


def _write_new(path: pathlib.Path, data: bytes):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _node() -> str:
    """This kernel's boot and pid namespace (pids compare within one), or the host name where /proc is missing."""
    try:
        boot = pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return f"host {socket.gethostname()}"


def _start_time(pid: int) -> Optional[str]:
    """A process's start time in clock ticks after boot (/proc/<pid>/stat field 22); None if it is gone or a
    zombie, or on a system without /proc."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


def _process_alive(pid: int, started: str) -> bool:
    if started:
        return _start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
