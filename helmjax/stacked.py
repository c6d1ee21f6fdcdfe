"""Stacked sweeps: several runs of one architecture trained together as one program, vmapped over a run axis.

Members share the model and train settings and differ in seed and data (quantization level). One jitted step
advances them all: each member gathers its own batch from its
own data, with the permutation, init key and per-step key a lone `runner.train_run` would use for its seed. Each
member's directory ends up exactly as `train_run` leaves it (metrics.jsonl, ckpt/latest and ckpt/best holding
the member's own unstacked state, test_correct.npy), so either path can resume what the other started.

Rule for mixing: all members of one stack start from the same epoch (all fresh, or all resuming from the same
latest checkpoint). `group_for_stacking` plans such stacks from the run directories; `train_stacked` checks
again after restoring (a corrupt checkpoint falls back to an older one) and raises `MixedStartEpochs` when they
differ, so the caller can train those runs one by one with `train_run` instead.

Two ways to run the members, same files and same draws (init, order, dropout, shifts):
- "vmap" (accelerators): parameters stacked on a leading axis, one vmapped step; each convolution becomes a
  grouped convolution over the members, which keeps a GPU/TPU busy. XLA sums in another order there, so a
  member matches its lone run to float tolerance (params ~1e-7 apart after a few epochs), not bit for bit.
- "unroll" (CPU): the program holds one copy of the lone step per member, each on its own state buffers (a
  tuple, not a stacked array). Equal to the lone runs to float tolerance (tested: another compiled program, so bit-identity is not
  promised across CPUs); on a CPU a grouped convolution is
  several times slower per image than the lone one, so this is the stacking that does not lose there.
"""

import dataclasses
import os
import pathlib
import time
from typing import Callable, List, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from helmjax import trace
from helmjax.checkpoints import RunCheckpoints
from helmjax.runner import (SplitData, StopFlag, StopRequested, best_row, failed_result, record_epoch,
                            restore_best_state, restore_start, rewind_metrics, run_result, stopping_step_hook)
from helmjax.train import (Trainer, TrainingDiverged, TrainState, check_finite, make_batch_eval_step,
                           make_batch_train_step)


class MixedStartEpochs(ValueError):
    """Members of one stack would resume from different epochs; train them apart (or regroup them)."""


STACK_MODES = ("vmap", "unroll")


def default_stack_mode(platform: Optional[str] = None) -> str:
    """"vmap" on accelerators (members fill the device in parallel); "unroll" on CPU (see `default_stack_size`)."""
    return "unroll" if (platform or jax.default_backend()) == "cpu" else "vmap"


def default_stack_size(platform: Optional[str] = None) -> int:
    """How many runs to stack when the config does not say: what was fastest on each kind of machine.

    CPU: 1 (stacking off). The convolutions already keep the cores busy: "unroll" stacks ran at the sequential
    rate within the noise and "vmap" stacks several times slower (grouped convolutions; benchmarks/
    bench_stacked.py), so stacking buys nothing there but compile time. GPU/TPU: 8 (not measured here; no
    accelerator in the session that wrote this). A CIFAR-sized step of one run (batch 128, under 2M params)
    leaves most of an accelerator idle on kernel launches and small matmuls, so vmapped members fill it almost
    for free, and 8 runs of model A with their data and activations fit in a few GB. The lead's GPU run of
    bench_stacked.py should confirm or replace it. $HELMJAX_STACK_SIZE overrides both.
    """
    override = os.environ.get("HELMJAX_STACK_SIZE")
    if override:
        return max(1, int(override))
    platform = platform or jax.default_backend()
    return 1 if platform == "cpu" else 8


def resume_epoch(run_dir: pathlib.Path) -> int:
    """The epoch `train_run` would resume `run_dir` from (newest finished latest checkpoint; 0 when fresh).

    Reads the directory listing only; a checkpoint that turns out unreadable is found by `train_stacked`.
    """
    latest = pathlib.Path(run_dir) / "ckpt" / "latest"
    steps = [int(p.name) for p in latest.iterdir() if p.name.isdigit()] if latest.is_dir() else []
    return max(steps, default=0)


def group_for_stacking(run_dirs: Sequence[pathlib.Path], stack_size: int) -> List[List[int]]:
    """Indices of `run_dirs` in stacks of at most `stack_size` that start from the same epoch, in grid order."""
    assert stack_size >= 1
    by_epoch = {}
    for i, run_dir in enumerate(run_dirs):
        by_epoch.setdefault(resume_epoch(run_dir), []).append(i)
    groups = [members[k:k + stack_size] for members in by_epoch.values()
              for k in range(0, len(members), stack_size)]
    return sorted(groups, key=lambda g: g[0])


class StackedTrainer:
    """Compiled stacked steps for one `Trainer`; keep it to reuse the compilation across stacks of one size.

    Shardings: the state and the data are replicated; the batch axis of the indices is sharded over the mesh's
    `data` axis (the member axis is not), so data parallelism works as it does for a lone run.
    """

    def __init__(self, trainer: Trainer, mode: Optional[str] = None):
        self.trainer = trainer
        self.mode = mode or default_stack_mode()
        if self.mode not in STACK_MODES:
            raise ValueError(f"unknown stack mode {self.mode!r}; use one of {', '.join(STACK_MODES)}")
        vmapped = self.mode == "vmap"
        mesh = trainer.mesh
        replicated = NamedSharding(mesh, P())
        self._member_batch = NamedSharding(mesh, P(None, "data"))
        train_one = make_batch_train_step(trainer.model, trainer.tx, trainer.settings, trainer.is_image,
                                          trainer.micro_batches)
        eval_one = make_batch_eval_step(trainer.model, trainer.settings)

        def train_step(states, data_x, data_y, data_of_member, indices, step_key_data, step):
            # A lone run's step key is fold_in(step_rng, step) (train.Trainer.train_epoch); the same here.
            keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.wrap_key_data(k), step))(step_key_data)
            rows = data_of_member[:, None]
            x, y = data_x[rows, indices], data_y[rows, indices]
            if vmapped:
                return jax.vmap(train_one)(states, x, y, keys)
            outs = [train_one(state, x[m], y[m], keys[m]) for m, state in enumerate(states)]
            return tuple(state for state, _ in outs), _stack_trees([metrics for _, metrics in outs])

        def eval_step(states, data_x, data_y, data_of_member, indices, mask):
            rows, cols = data_of_member[:, None], indices[None, :]
            x, y = data_x[rows, cols], data_y[rows, cols]
            if vmapped:
                return jax.vmap(eval_one, in_axes=(0, 0, 0, None))(states, x, y, mask)
            return _stack_trees([eval_one(state, x[m], y[m], mask) for m, state in enumerate(states)])

        batch = NamedSharding(mesh, P("data"))
        self.train_step = jax.jit(train_step, in_shardings=(replicated,) * 4 + (self._member_batch,)
                                  + (replicated,) * 2, out_shardings=(replicated, replicated), donate_argnums=(0,),
                                  compiler_options=trainer.compiler_options)
        self.eval_step = jax.jit(eval_step, in_shardings=(replicated,) * 4 + (batch, batch),
                                 out_shardings=(replicated, replicated), compiler_options=trainer.compiler_options)
        self._stack = jax.jit(_stack_trees, out_shardings=replicated)
        self._member = jax.jit(lambda tree, m: jax.tree_util.tree_map(lambda a: a[m], tree),
                               out_shardings=replicated)

    def stack_arrays(self, arrays: Sequence[jax.Array]) -> jax.Array:
        """Equal-shaped arrays stacked on a new leading axis, replicated (members' data)."""
        return self._stack(list(arrays))

    def stack_states(self, states: Sequence[TrainState]):
        """The members' states as the stacked steps take them: one stacked tree (vmap) or a tuple (unroll)."""
        return self._stack(list(states)) if self.mode == "vmap" else tuple(states)

    def member_state(self, states, m: int) -> TrainState:
        """Member m's own (unstacked, replicated) state, as a lone run holds it."""
        return self._member(states, m) if self.mode == "vmap" else states[m]

    def member_steps(self, states) -> np.ndarray:
        steps = states.step if self.mode == "vmap" else [state.step for state in states]
        return np.asarray(jax.device_get(steps))

    def put_members(self, array: np.ndarray) -> jax.Array:
        """A (members, batch) host array as a global array, batch axis sharded over `data`."""
        return jax.make_array_from_callback(array.shape, self._member_batch, lambda index: array[index])

    def stack_data(self, datas: Sequence[SplitData]):
        """(stacked SplitData over the distinct datasets, member -> dataset index); shared data is stored once."""
        distinct, data_of_member = [], []
        for data in datas:
            match = [k for k, d in enumerate(distinct) if all(a is b for a, b in zip(_arrays(d), _arrays(data)))]
            if not match:
                distinct.append(data)
                match = [len(distinct) - 1]
            data_of_member.append(match[0])
        names = [f.name for f in dataclasses.fields(SplitData)]
        for name, *shapes in zip(names, *(map(_shape_dtype, _arrays(d)) for d in distinct)):
            if len(set(shapes)) > 1:
                raise ValueError(f"stacked runs need data of one shape; {name} differs: {sorted(set(shapes))}")
        stacked = SplitData(*(self.stack_arrays(arrays) for arrays in zip(*map(_arrays, distinct))))
        return stacked, self.trainer.put(np.asarray(data_of_member, np.int32))

    def train_epoch(self, states, data: SplitData, data_of_member: jax.Array,
                    epoch_keys: Sequence[jax.Array], on_step: Optional[Callable[[int, int], None]] = None):
        """One epoch of every member; returns (states, mean losses, accuracies) as per-member numpy arrays."""
        plans = [self.trainer.epoch_plan(data.x_train.shape[1], key) for key in epoch_keys]
        order = np.stack([o for o, _ in plans], axis=1)  # (steps, members, batch)
        step_key_data = self.trainer.put(np.stack([np.asarray(jax.random.key_data(k)) for _, k in plans]))
        sums, steps = None, len(order)
        for i in range(steps):
            states, metrics = self.train_step(states, data.x_train, data.y_train, data_of_member,
                                              self.put_members(order[i]), step_key_data, i)
            sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
            if on_step is not None:
                on_step(i, steps)
        sums = jax.device_get(sums)
        count = np.maximum(sums["count"], 1)
        return states, sums["loss_sum"] / count, sums["correct"] / count

    def evaluate(self, states, data_x: jax.Array, data_y: jax.Array, data_of_member: jax.Array):
        """Per member: mean loss, accuracy and per-example correctness, batched as `Trainer.evaluate` does."""
        members, n = int(data_of_member.shape[0]), data_x.shape[1]
        loss_sums, correct = [0.0] * members, []
        for indices, device_mask, mask in self.trainer.eval_batches(n):
            batch_loss, batch_correct = self.eval_step(states, data_x, data_y, data_of_member, indices, device_mask)
            batch_loss = np.asarray(batch_loss)
            loss_sums = [s + float(b) for s, b in zip(loss_sums, batch_loss)]  # Python floats, as a lone run sums
            correct.append(np.asarray(batch_correct)[:, mask])
        correct = np.concatenate(correct, axis=1) if correct else np.zeros((members, 0), bool)
        return [(loss_sums[m] / max(n, 1), float(correct[m].mean()) if n else float("nan"), correct[m])
                for m in range(members)]


def _stack_trees(trees: Sequence):
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def _arrays(data: SplitData):
    return tuple(getattr(data, f.name) for f in dataclasses.fields(SplitData))


def _shape_dtype(array) -> tuple:
    return tuple(array.shape), str(array.dtype)


def train_stacked(run_dirs: Sequence[pathlib.Path], trainer: Union[Trainer, StackedTrainer],
                  datas: Sequence[SplitData], seeds: Sequence[int], epochs: int, stop: Optional[StopFlag] = None,
                  on_epoch: Optional[Callable[[int, dict], None]] = None,
                  on_step: Optional[Callable[[int, int], None]] = None) -> List[dict]:
    """Trains (or resumes) runs `run_dirs[m]` with `seeds[m]` on `datas[m]` together, as `train_run` would each.

    Returns one result dict per member: `train_run`'s fields, or `runner.failed_result(reason)` for a member
    whose loss became NaN/inf (its files stop at the last good epoch, as `train_run` leaves them; the others
    go on). `on_epoch(m, row)` is called after member m's metrics row is written; `on_step(i, steps)` after each
    stacked step. `epoch_seconds` and `train_seconds` are the stack's wall time divided by the members, so they
    add up to the machine time spent. Raises `StopRequested` when `stop` is set (every member's latest
    checkpoint complete) and `MixedStartEpochs` when members would resume from different epochs. Pass a kept
    `StackedTrainer` to compile once for many stacks.
    """
    stacked = trainer if isinstance(trainer, StackedTrainer) else StackedTrainer(trainer)
    trainer = stacked.trainer
    members = len(run_dirs)
    if not members or len(datas) != members or len(seeds) != members:
        raise ValueError(f"train_stacked needs one data and one seed per run: {members} runs, {len(datas)} "
                         f"datas, {len(seeds)} seeds")
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    if len(set(d.resolve() for d in run_dirs)) != members:
        raise ValueError("train_stacked got the same run directory twice")
    for d in run_dirs:
        d.mkdir(parents=True, exist_ok=True)
    checkpoints = [RunCheckpoints(d) for d in run_dirs]
    try:
        keys = [jax.random.split(jax.random.key(seed)) for seed in seeds]
        train_keys = [train_key for _, train_key in keys]
        starts, train_seconds, member_states = [], [], []
        for m, (init_key, _) in enumerate(keys):
            start, state, seconds = restore_start(checkpoints[m],
                                                  trainer.init(np.asarray(datas[m].x_train[:1]), init_key))
            starts.append(start)
            train_seconds.append(seconds)
            member_states.append(state)
        if len(set(starts)) > 1:
            raise MixedStartEpochs("stacked runs must resume from one epoch; got "
                                   + ", ".join(f"{d.name}: {s}" for d, s in zip(run_dirs, starts))
                                   + "; train them apart with runner.train_run or regroup them")
        # Shapes and shardings of a member's state, for restoring `best` (the arrays themselves get donated).
        template = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding),
                                          member_states[0])
        states = stacked.stack_states(member_states)
        del member_states
        start_epoch = starts[0]
        best_val = [rewind_metrics(d, start_epoch) for d in run_dirs]
        data, data_of_member = stacked.stack_data(datas)
        failures = [None] * members

        trace.event(f"train-stacked {','.join(d.name for d in run_dirs)} from-epoch {start_epoch}")
        step_hook = stopping_step_hook(stop, on_step)
        for epoch in range(start_epoch + 1, epochs + 1):
            t0 = time.perf_counter()

            states, train_losses, train_accs = stacked.train_epoch(
                states, data, data_of_member, [jax.random.fold_in(k, epoch) for k in train_keys], step_hook)
            evaluations = stacked.evaluate(states, data.x_val, data.y_val, data_of_member)
            seconds = (time.perf_counter() - t0) / members
            steps = stacked.member_steps(states)
            for m, run_dir in enumerate(run_dirs):
                if failures[m] is not None:
                    continue
                try:
                    check_finite(float(train_losses[m]), epoch)
                except TrainingDiverged as e:
                    failures[m] = str(e)
                    continue
                val_loss, val_acc, _ = evaluations[m]
                train_seconds[m] += seconds
                step = int(steps[m])
                row = {"epoch": epoch, "step": step, "train_loss": float(train_losses[m]),
                       "train_acc": float(train_accs[m]), "val_loss": val_loss, "val_acc": val_acc,
                       "epoch_seconds": seconds, "lr": float(trainer.learning_rate(step))}
                state = stacked.member_state(states, m)
                best_val[m] = record_epoch(run_dir, checkpoints[m], state, row, best_val[m], train_seconds[m])
                del state
                if on_epoch is not None:
                    on_epoch(m, row)
            if stop:
                raise StopRequested()
            if all(f is not None for f in failures):
                break
        del states

        return _finish(stacked, run_dirs, checkpoints, template, data, data_of_member, train_seconds, failures,
                       epochs)
    finally:
        for c in checkpoints:
            c.close()


def _finish(stacked: StackedTrainer, run_dirs, checkpoints, template, data: SplitData, data_of_member,
            train_seconds, failures, epochs: int) -> List[dict]:
    """Test accuracy of every member with its best-validation parameters, evaluated as one stack."""
    bests, best_states = [], []
    for m, run_dir in enumerate(run_dirs):
        if failures[m] is not None:
            bests.append(None)
            best_states.append(None)
            continue
        history, best = best_row(run_dir, epochs)
        bests.append((history, best))
        best_states.append(restore_best_state(checkpoints[m], template, run_dir, best["epoch"]))
    good = next((state for state in best_states if state is not None), None)
    if good is None:
        return [failed_result(f) for f in failures]
    # A failed member's slot is filled with a good member's state: evaluated along, never reported.
    best_states = [good if state is None else state for state in best_states]
    tests = stacked.evaluate(stacked.stack_states(best_states), data.x_test, data.y_test, data_of_member)
    results = []
    for m, run_dir in enumerate(run_dirs):
        if failures[m] is not None:
            results.append(failed_result(failures[m]))
            continue
        _, test_acc, test_correct = tests[m]
        results.append(run_result(run_dir, *bests[m], test_acc, test_correct, train_seconds[m]))
    return results
