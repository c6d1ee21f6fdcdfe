"""Compiled steps of a stack of runs on a device mesh: a lone run is a stack of one.

Members share the model and settings and differ in seed and data. One jitted step advances them all: each member
trains on its own batch (from the input pipeline, `pipeline`: a host batch per member, put onto the mesh with the
batch axis sharded over `data`) with its own per-step key; states are replicated. Two ways to run the members
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
from typing import Callable, Iterable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from helmjax.training import performance
from helmjax.errors import UserError
from helmjax.training.inputs import center_crop, to_model_input
from helmjax.training.pipeline import batch_shardings
from helmjax.training.recipe import (TrainSettings, TrainState, init_state, learning_rate_schedule,
                                     make_optimizer)
from helmjax.training.step import make_eval_step, make_train_step


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named `data` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def _stack_trees(trees: Sequence):
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


@dataclasses.dataclass
class Trainer:
    """Compiled steps for one (model, settings, data shape); keep it to reuse the compilation across stacks of one
    size. The model's layers are replaced by those of the performance profile of the mesh's platform.
    `steps_per_epoch` (`pipeline.train_steps_per_epoch`) is needed by schedules counted in epochs (cosine, step,
    warm-up), and must then be the input's."""
    model: nn.Module
    settings: TrainSettings
    is_image: bool
    mesh: jax.sharding.Mesh = dataclasses.field(default_factory=data_mesh)
    steps_per_epoch: int = 0

    def __post_init__(self):
        if not self.is_image and (self.settings.augment_mode or self.settings.crop_size):
            raise UserError("train.augment_mode and train.crop_size are for images; leave them unset ('' and 0) "
                            "for other data")
        self.profile = performance.choose(self.settings, self.mesh.devices.flat[0].platform, self.num_devices)
        self.model = self.profile.fill(self.model)
        self.tx = make_optimizer(self.settings, self.steps_per_epoch)
        self.learning_rate = learning_rate_schedule(self.settings, self.steps_per_epoch)
        self._replicated = NamedSharding(self.mesh, P())
        self._member_batch, self._batch = batch_shardings(self.mesh)
        train_one = make_train_step(self.model, self.tx, self.settings, self.is_image,
                                    functools.partial(self.profile.slices, self.model))
        eval_one = make_eval_step(self.model, self.settings, top5=True)
        vmapped = self.profile.stack_mode == "vmap"

        def train_step(states, x, y, step_key_data, step):
            keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.wrap_key_data(k), step))(step_key_data)
            if vmapped:
                return jax.vmap(train_one)(states, x, y, keys)
            outs = [train_one(state, x[m], y[m], keys[m]) for m, state in enumerate(states)]
            return tuple(state for state, _ in outs), _stack_trees([metrics for _, metrics in outs])

        def eval_step(states, data_x, data_y, data_of_member, mask):
            x, y = data_x[data_of_member], data_y[data_of_member]
            if vmapped:
                return jax.vmap(eval_one, in_axes=(0, 0, 0, None))(states, x, y, mask)
            return _stack_trees([eval_one(state, x[m], y[m], mask) for m, state in enumerate(states)])

        replicated, options = self._replicated, self.profile.compiler_options
        self.train_step = jax.jit(train_step, in_shardings=(replicated, self._member_batch, self._member_batch,
                                                            replicated, replicated),
                                  out_shardings=(replicated, replicated), donate_argnums=(0,),
                                  compiler_options=options)
        self.eval_step = jax.jit(eval_step, in_shardings=(replicated, self._member_batch, self._member_batch,
                                                          replicated, self._batch),
                                 out_shardings=replicated, compiler_options=options)
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

    def model_input(self, sample_input: np.ndarray) -> jax.Array:
        """The model's input for the first of `sample_input` (stored items): center-cropped as evaluated."""
        x = jnp.asarray(sample_input[:1])
        if self.is_image:
            x = center_crop(x, self.settings.crop_size)
        return to_model_input(x, self.settings.standardize)

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

    def train_steps(self, states, batches: Iterable, step_keys: Sequence[jax.Array], sums=None,
                    on_step: Optional[Callable] = None):
        """Every member's steps on `batches` (the pipeline's `Batch`es: an epoch's, or batches a caller draws its
        own way), in that order; a member's step i is keyed by its step key folded with i. Returns (states, sums):
        the metric sums (on the devices) added to `sums`. `on_step(batch)` follows each step."""
        step_key_data = self.put(np.stack([np.asarray(jax.random.key_data(k)) for k in step_keys]))
        for batch in batches:
            states, metrics = self.train_step(states, batch.x, batch.y, step_key_data, batch.step)
            sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
            if on_step is not None:
                on_step(batch)
        return states, sums

    @staticmethod
    def mean_metrics(sums, members: int):
        """(mean losses, accuracies) per member from `train_steps`' sums (NaN after no step)."""
        if sums is None:
            return np.full(members, np.nan), np.full(members, np.nan)
        sums = jax.device_get(sums)
        count = np.maximum(sums["count"], 1)
        return sums["loss_sum"] / count, sums["correct"] / count

    def evaluate(self, states, batches: Iterable, data_of_member: Sequence[int], top5: bool = False) -> list:
        """Per member: (mean loss, accuracy, per-example correctness) over the pipeline's evaluation `batches`
        (member m reads data set `data_of_member[m]`); with `top5`, a fourth element: the top-5 accuracy (None for
        models of 5 classes or fewer)."""
        members = len(data_of_member)
        data_of_member = self.put(np.asarray(data_of_member, np.int32))
        loss_sums, correct, top5_counts, has_top5 = [0.0] * members, [], np.zeros(members, np.int64), False
        for batch in batches:
            batch_loss, batch_correct, batch_top5 = self.eval_step(states, batch.x, batch.y, data_of_member,
                                                                   batch.mask)
            loss_sums = [s + float(b) for s, b in zip(loss_sums, np.asarray(batch_loss))]
            correct.append(np.asarray(batch_correct)[:, batch.keep])
            if batch_top5 is not None:
                has_top5 = True
                top5_counts += np.asarray(batch_top5)[:, batch.keep].sum(axis=1)
        correct = np.concatenate(correct, axis=1) if correct else np.zeros((members, 0), bool)
        n = correct.shape[1]
        results = [(loss_sums[m] / max(n, 1), float(correct[m].mean()) if n else float("nan"), correct[m])
                   for m in range(members)]
        if not top5:
            return results
        return [r + ((float(top5_counts[m] / n) if n else float("nan")) if has_top5 else None,)
                for m, r in enumerate(results)]
