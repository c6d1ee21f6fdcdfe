"""Orbax checkpoints of a run: `latest` (resume point, every epoch), `best` (`run_files.best_epoch_key`) and, with
`train.checkpoint_every_steps`, `mid_epoch` (resume points within an epoch, named by the step count).

Each checkpoint holds three items: the train state, a small JSON of run metadata (completed epochs, train seconds;
within an epoch also the epoch's metric sums so far) and the input pipeline's position (`pipeline.TrainIterator`'s
state: the epoch and step of the next batch). The resume point is the readable checkpoint furthest along; one that
fails to restore (truncated by a kill) is reported and the next older one is tried. Checkpoints written before the
position was saved are read as positioned at the start of the next epoch.
"""

import logging
import pathlib
from typing import Any, NamedTuple, Optional

import jax
import orbax.checkpoint as ocp

from helmjax import trace
from helmjax.layout import checkpoint_dir

INPUT_ITEM = "input"


class Checkpoint(NamedTuple):
    epoch: int  # completed epochs
    state: Any
    meta: dict
    position: dict  # {"epoch", "step"} of the next batch


def latest_epoch_on_disk(run_dir: pathlib.Path) -> int:
    """The newest finished `latest` checkpoint's epoch (0 when none), from the directory listing alone; one that
    turns out unreadable is found when it is restored."""
    latest = checkpoint_dir(run_dir, "latest")
    return max((int(p.name) for p in latest.iterdir() if p.name.isdigit()), default=0) if latest.is_dir() else 0


def epoch_end(epoch: int) -> dict:
    """The position after `epoch`: the first step of the next one."""
    return {"epoch": epoch + 1, "step": 0}


class RunCheckpoints:
    def __init__(self, run_dir: pathlib.Path, keep_latest: int = 2):
        run_dir = pathlib.Path(run_dir).absolute()
        self._options = dict(create=True, enable_async_checkpointing=False)
        self.latest = ocp.CheckpointManager(checkpoint_dir(run_dir, "latest"), options=ocp.CheckpointManagerOptions(
            max_to_keep=keep_latest, **self._options))
        self.best = ocp.CheckpointManager(checkpoint_dir(run_dir, "best"),
                                          options=ocp.CheckpointManagerOptions(max_to_keep=1, **self._options))
        self._mid_epoch_dir, self._mid_epoch = checkpoint_dir(run_dir, "mid_epoch"), None

    def _mid_epoch_manager(self, create: bool) -> Optional[ocp.CheckpointManager]:
        """Opened on first use, so runs that never write one keep the layout they always had."""
        if self._mid_epoch is None and (create or self._mid_epoch_dir.is_dir()):
            self._mid_epoch = ocp.CheckpointManager(self._mid_epoch_dir, options=ocp.CheckpointManagerOptions(
                max_to_keep=2, **self._options))
        return self._mid_epoch

    def save_latest(self, epoch: int, state: Any, meta: dict):
        _drop_from(self.latest, epoch)
        _save(self.latest, "latest", epoch, state, meta, epoch_end(epoch))

    def save_best(self, epoch: int, state: Any, meta: dict):
        _save(self.best, "best", epoch, state, meta, epoch_end(epoch), force=True)

    def save_mid_epoch(self, step_count: int, state: Any, meta: dict, position: dict):
        """A resume point within an epoch, after `step_count` steps in all; `meta["epoch"]` is the completed
        epochs."""
        manager = self._mid_epoch_manager(create=True)
        _drop_from(manager, step_count)
        _save(manager, "mid_epoch", step_count, state, meta, position)

    def drop_mid_epoch(self):
        """Deletes the mid-epoch checkpoints: called once a later epoch's `latest` is written, they are behind it."""
        manager = self._mid_epoch_manager(create=False)
        if manager is not None:
            manager.reload()
            for step in manager.all_steps():
                manager.delete(step)

    def restore_latest(self, target: Any) -> Optional[Checkpoint]:
        """The resume point: of the newest readable `latest` and `mid_epoch` checkpoints, the one further along."""
        found = [_restore_newest(self.latest, target)]
        mid_epoch = self._mid_epoch_manager(create=False)
        if mid_epoch is not None:
            found.append(_restore_newest(mid_epoch, target))
        found = [c for c in found if c is not None]
        return max(found, key=lambda c: (c.position["epoch"], c.position["step"])) if found else None

    def restore_best(self, target: Any) -> Optional[Checkpoint]:
        return _restore_newest(self.best, target)

    def drop_best_from(self, epoch: int):
        """Deletes `best` checkpoints of `epoch` or later: a "future" best left by a run killed after it."""
        self.best.reload()
        for step in self.best.all_steps():
            if step >= epoch:
                self.best.delete(step)

    def close(self):
        for manager in (self.latest, self.best, self._mid_epoch):
            if manager is not None:
                manager.close()


def _drop_from(manager: ocp.CheckpointManager, step: int):
    """Deletes checkpoints at `step` or later before `step` is saved: a run that is about to save them resumed from
    an earlier one, so they are unreadable (torn by a kill), and orbax would skip saving over an existing step."""
    manager.reload()
    for existing in manager.all_steps():
        if existing >= step:
            manager.delete(existing)


def _save(manager: ocp.CheckpointManager, which: str, step: int, state: Any, meta: dict, position: dict,
          force: bool = False):
    trace.event(f"checkpoint-start {which} {step}")
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta),
                                               **{INPUT_ITEM: ocp.args.JsonSave(position)}), force=force)
    manager.wait_until_finished()
    trace.event(f"checkpoint-end {which} {step}")


def _restore_newest(manager: ocp.CheckpointManager, target: Any) -> Optional[Checkpoint]:
    """The newest readable checkpoint of `manager`, or None when there is none."""
    manager.reload()
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    for step in sorted(manager.all_steps(), reverse=True):
        items = dict(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
        has_position = (pathlib.Path(str(manager.directory)) / str(step) / INPUT_ITEM).is_dir()
        if has_position:
            items[INPUT_ITEM] = ocp.args.JsonRestore()
        try:
            restored = manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # a kill during a write leaves a checkpoint that cannot be read
            logging.warning("checkpoint %s/%d is unreadable (%s: %s); trying an older one",
                            manager.directory, step, type(e).__name__, str(e).splitlines()[0][:200])
            continue
        meta = dict(restored["meta"])
        position = dict(restored[INPUT_ITEM]) if has_position else epoch_end(int(meta.get("epoch", step)))
        return Checkpoint(position["epoch"] - 1, restored["state"], meta, position)
    return None
