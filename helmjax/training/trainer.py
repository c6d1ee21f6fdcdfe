"""Compiled steps of a stack of runs on a device mesh: a lone run is a stack of one.

Members share the model and settings and differ in seed and data. One jitted step advances them all: each member
gathers its own batch from its own data, with its own permutation and per-step key. The data lives on the
devices (uint8 images, float32 features), so no batch crosses from the host per step; the batch axis of the
indices is sharded over the mesh's `data` axis, states and data are replicated. Two ways to run the members
(`Profile.stack_mode`), same draws:
- "unroll" (CPU): one copy of the lone step per member, each on its own state buffers (a tuple of states). On a
  CPU a grouped convolution is several times slower per image than the lone one, so this is the stacking that
  does not lose there.
- "vmap" (accelerators): states stacked on a leading axis and one vmapped step; each convolution becomes a
  grouped convolution over the members, which keeps a GPU/TPU busy.
Either way a stack is another compiled program than a lone run: members match their lone runs to float tolerance.
"""

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from helmjax.errors import UserError
from helmjax.training import performance
from helmjax.training.inputs import to_model_input
from helmjax.training.recipe import (TrainSettings, TrainState, init_state, learning_rate_schedule,
                                     make_optimizer)
from helmjax.training.step import make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class SplitData:
    """Host arrays of one run: train (without the validation part), validation and test."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def arrays(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named `data` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _stack_trees(trees: Sequence):
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


@dataclasses.dataclass
class Trainer:
    """Compiled steps for one (model, settings, data shape); keep it to reuse the compilation across stacks of one
    size. The model's layers are replaced by those of the performance profile of the mesh's platform."""
    model: nn.Module
    settings: TrainSettings
    is_image: bool
    mesh: jax.sharding.Mesh = dataclasses.field(default_factory=data_mesh)

    def __post_init__(self):
        self.profile = performance.choose(self.settings, self.mesh.devices.flat[0].platform, self.num_devices)
        self.model = self.profile.fill(self.model)
        self.tx = make_optimizer(self.settings)
        self.learning_rate = learning_rate_schedule(self.settings)
        self._replicated = NamedSharding(self.mesh, P())
        self._batch = NamedSharding(self.mesh, P("data"))
        self._member_batch = NamedSharding(self.mesh, P(None, "data"))
        train_one = make_train_step(self.model, self.tx, self.settings, self.is_image,
                                    functools.partial(self.profile.slices, self.model))
        eval_one = make_eval_step(self.model, self.settings)
        vmapped = self.profile.stack_mode == "vmap"

        def train_step(states, data_x, data_y, data_of_member, indices, step_key_data, step):
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

        replicated, options = self._replicated, self.profile.compiler_options
        self.train_step = jax.jit(train_step, in_shardings=(replicated,) * 4 + (self._member_batch,)
                                  + (replicated,) * 2, out_shardings=(replicated, replicated),
                                  donate_argnums=(0,), compiler_options=options)
        self.eval_step = jax.jit(eval_step, in_shardings=(replicated,) * 4 + (self._batch, self._batch),
                                 out_shardings=(replicated, replicated), compiler_options=options)
        self._member = jax.jit(lambda tree, m: jax.tree_util.tree_map(lambda a: a[m], tree),
                               out_shardings=replicated)
        self._stack = jax.jit(_stack_trees, out_shardings=replicated)

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def put(self, array: np.ndarray) -> jax.Array:
        """A host array on every device (replicated), from the same value on every process."""
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, self._replicated, lambda index: array[index])

    def put_members(self, array: np.ndarray) -> jax.Array:
        """A (members, batch) host array as a global array, the batch axis sharded over `data`."""
        return jax.make_array_from_callback(array.shape, self._member_batch, lambda index: array[index])

    def _put_batch(self, array: np.ndarray) -> jax.Array:
        return jax.make_array_from_callback(array.shape, self._batch, lambda index: array[index])

    def model_input(self, sample_input: np.ndarray) -> jax.Array:
        return to_model_input(jnp.asarray(sample_input[:1]), self.settings.standardize)

    def init(self, sample_input: np.ndarray, rng: jax.Array) -> TrainState:
        """A member's fresh state (replicated)."""
        state = init_state(self.model, self.model_input(sample_input), self.tx, rng)
        return jax.tree_util.tree_map(lambda a: self.put(np.asarray(a)), state)

    def param_count(self, sample_input: np.ndarray) -> int:
        x = self.model_input(sample_input)
        shapes = jax.eval_shape(lambda: self.model.init(jax.random.key(0), x, train=False))
        return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(shapes["params"])))

    def performance_record(self, sample_input: np.ndarray) -> dict:
        """The profile as it applies to a batch of `sample_input`-shaped examples (for config.json)."""
        x = self.model_input(sample_input)
        return self.profile.record(self.model, jax.ShapeDtypeStruct((self.settings.batch_size, *x.shape[1:]),
                                                                    x.dtype))

    def stack_states(self, states: Sequence[TrainState]):
        """Members' states as the steps take them: one stacked tree (vmap) or a tuple (unroll)."""
        return self._stack(list(states)) if self.profile.stack_mode == "vmap" else tuple(states)

    def member_state(self, states, m: int) -> TrainState:
        """Member m's own (unstacked, replicated) state, as a lone run holds it."""
        return self._member(states, m) if self.profile.stack_mode == "vmap" else states[m]

    def member_steps(self, states) -> np.ndarray:
        steps = states.step if self.profile.stack_mode == "vmap" else [state.step for state in states]
        return np.asarray(jax.device_get(steps))

    def stack_data(self, datas: Sequence[SplitData]):
        """(SplitData of device arrays stacked over the distinct datasets, member -> dataset index): data shared
        by members (the same host arrays) is stored once."""
        distinct, data_of_member = [], []
        for data in datas:
            match = [k for k, d in enumerate(distinct) if all(a is b for a, b in zip(d.arrays(), data.arrays()))]
            if not match:
                distinct.append(data)
                match = [len(distinct) - 1]
            data_of_member.append(match[0])
        names = [f.name for f in dataclasses.fields(SplitData)]
        for name, *arrays in zip(names, *(d.arrays() for d in distinct)):
            shapes = {(np.shape(a), str(np.asarray(a).dtype)) for a in arrays}
            if len(shapes) > 1:
                raise ValueError(f"stacked runs need data of one shape; {name} differs: {sorted(shapes)}")
        stacked = SplitData(*(self.put(np.stack(arrays)) for arrays in zip(*(d.arrays() for d in distinct))))
        return stacked, self.put(np.asarray(data_of_member, np.int32))

    def epoch_plan(self, n: int, epoch_rng: jax.Array):
        """(order, step_rng) of one member's epoch over `n` examples: batch indices (steps, batch) and the key
        whose fold with step i is that step's key."""
        batch = self.settings.batch_size
        if batch % self.num_devices:
            raise UserError(f"train.batch_size={batch} must be a multiple of the {self.num_devices} devices")
        steps = n // batch
        if steps == 0:
            raise UserError(f"train.batch_size={batch} is larger than the {n} training examples; lower it")
        if self.settings.max_steps_per_epoch:
            steps = min(steps, self.settings.max_steps_per_epoch)
        perm_rng, step_rng = jax.random.split(epoch_rng)
        order = np.asarray(jax.random.permutation(perm_rng, n))[: steps * batch].reshape(steps, batch)
        return order, step_rng

    def train_epoch(self, states, data: SplitData, data_of_member: jax.Array, epoch_keys: Sequence[jax.Array],
                    on_step: Optional[Callable[[int, int], None]] = None):
        """One shuffled pass of every member (the last partial batch dropped); returns (states, mean losses,
        accuracies), the last two as per-member numpy arrays."""
        plans = [self.epoch_plan(data.x_train.shape[1], key) for key in epoch_keys]
        return self.train_steps(states, data, data_of_member, np.stack([o for o, _ in plans], axis=1),
                                [k for _, k in plans], on_step)

    def train_steps(self, states, data: SplitData, data_of_member: jax.Array, order: np.ndarray,
                    step_keys: Sequence[jax.Array], on_step: Optional[Callable[[int, int], None]] = None):
        """Every member's steps over the training rows `order` (steps, members, batch), in that order: an epoch
        (`train_epoch`) or batches a caller draws its own way; a member's step i is keyed by its step key folded
        with i. Returns (states, mean losses, accuracies), the last two per member (NaN after no step)."""
        step_key_data = self.put(np.stack([np.asarray(jax.random.key_data(k)) for k in step_keys]))
        sums, steps = None, len(order)
        for i in range(steps):
            states, metrics = self.train_step(states, data.x_train, data.y_train, data_of_member,
                                              self.put_members(order[i]), step_key_data, i)
            sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
            if on_step is not None:
                on_step(i, steps)
        if sums is None:
            return states, np.full(len(step_keys), np.nan), np.full(len(step_keys), np.nan)
        sums = jax.device_get(sums)
        count = np.maximum(sums["count"], 1)
        return states, sums["loss_sum"] / count, sums["correct"] / count

    def eval_batches(self, n: int):
        """Per evaluation batch over `n` examples (the last padded with row 0): the sharded indices and mask, and
        the host mask that drops the padding. The batch is `eval_batch_size` rounded down to a multiple of the
        devices (at least one row per device)."""
        batch = self.settings.eval_batch_size
        batch = max(self.num_devices, batch - batch % self.num_devices)
        for start in range(0, n, batch):
            idx = np.arange(start, start + batch)
            mask = idx < n
            yield self._put_batch(np.where(mask, idx, 0)), self._put_batch(mask), mask

    def evaluate(self, states, data_x: jax.Array, data_y: jax.Array, data_of_member: jax.Array) -> list:
        """Per member: (mean loss, accuracy, per-example correctness) over the whole array."""
        members, n = int(data_of_member.shape[0]), data_x.shape[1]
        loss_sums, correct = [0.0] * members, []
        for indices, device_mask, mask in self.eval_batches(n):
            batch_loss, batch_correct = self.eval_step(states, data_x, data_y, data_of_member, indices, device_mask)
            loss_sums = [s + float(b) for s, b in zip(loss_sums, np.asarray(batch_loss))]
            correct.append(np.asarray(batch_correct)[:, mask])
        correct = np.concatenate(correct, axis=1) if correct else np.zeros((members, 0), bool)
        return [(loss_sums[m] / max(n, 1), float(correct[m].mean()) if n else float("nan"), correct[m])
                for m in range(members)]
