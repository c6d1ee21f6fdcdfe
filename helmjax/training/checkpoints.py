"""Orbax checkpoints of a run: `latest` (resume point, every epoch) and `best` (by validation accuracy).

Each checkpoint holds the train state and a small JSON of run metadata (epoch, best validation accuracy so far).
A checkpoint that fails to restore (truncated by a kill) is reported and the next older one is tried.
"""

import logging
import pathlib
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from helmjax import trace
from helmjax.layout import checkpoint_dir


def latest_epoch_on_disk(run_dir: pathlib.Path) -> int:
    """The newest finished `latest` checkpoint's epoch (0 when none), from the directory listing alone; one that
    turns out unreadable is found when it is restored."""
    latest = checkpoint_dir(run_dir, "latest")
    return max((int(p.name) for p in latest.iterdir() if p.name.isdigit()), default=0) if latest.is_dir() else 0


class RunCheckpoints:
    def __init__(self, run_dir: pathlib.Path, keep_latest: int = 2):
        run_dir = pathlib.Path(run_dir).absolute()
        options = dict(create=True, enable_async_checkpointing=False)
        self.latest = ocp.CheckpointManager(checkpoint_dir(run_dir, "latest"),
                                            options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, **options))
        self.best = ocp.CheckpointManager(checkpoint_dir(run_dir, "best"),
                                          options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))

    def save_latest(self, epoch: int, state: Any, meta: dict):
        trace.event(f"checkpoint-start latest {epoch}")
        self.latest.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)))
        self.latest.wait_until_finished()
        trace.event(f"checkpoint-end latest {epoch}")

    def save_best(self, epoch: int, state: Any, meta: dict):
        trace.event(f"checkpoint-start best {epoch}")
        self.best.save(epoch, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      meta=ocp.args.JsonSave(meta)), force=True)
        self.best.wait_until_finished()
        trace.event(f"checkpoint-end best {epoch}")

    def restore_latest(self, target: Any) -> Optional[Tuple[int, Any, dict]]:
        return _restore_newest(self.latest, target)

    def restore_best(self, target: Any) -> Optional[Tuple[int, Any, dict]]:
        return _restore_newest(self.best, target)

    def drop_best_from(self, epoch: int):
        """Deletes `best` checkpoints of `epoch` or later: a "future" best left by a run killed after it."""
        self.best.reload()
        for step in self.best.all_steps():
            if step >= epoch:
                self.best.delete(step)

    def close(self):
        self.latest.close()
        self.best.close()


def _restore_newest(manager: ocp.CheckpointManager, target: Any) -> Optional[Tuple[int, Any, dict]]:
    """(epoch, state, meta) of the newest readable checkpoint, or None when there is none."""
    manager.reload()
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                     meta=ocp.args.JsonRestore()))
            return step, restored["state"], dict(restored["meta"])
        except Exception as e:  # a kill during a write leaves a checkpoint that cannot be read
            logging.warning("checkpoint %s/%d is unreadable (%s: %s); trying an older one",
                            manager.directory, step, type(e).__name__, str(e).splitlines()[0][:200])
    return None
