"""Training one classifier: a pure jitted step, evaluation, augmentation and the epoch loop.

The dataset lives on the device (uint8 for images, float32 for features); each step gathers its batch by index
inside the jitted function, so no batch crosses from the host per step. The batch axis is sharded over a `data`
mesh axis spanning every device; parameters are replicated. Randomness comes from the run key folded with the
epoch and step, so a resumed run draws exactly what an uninterrupted one would.
"""

import dataclasses
import math
from typing import Any, Callable, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from helmjax.compiler import mesh_compiler_options
from helmjax.errors import UserError
from helmjax.models.dense import DEFERRED


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum), "adam", "adadelta"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    lr_decay: float = 1e-6  # Keras-style per-step decay: lr / (1 + decay * step)
    rho: float = 0.95  # adadelta
    batch_size: int = 128
    eval_batch_size: int = 1000
    epochs: int = 200
    augment: bool = True  # random shift up to `shift_fraction` of H and W, and a horizontal flip
    shift_fraction: float = 0.1
    standardize: bool = False  # per-image standardisation (zero mean, unit variance) instead of x / 255
    max_steps_per_epoch: int = 0  # > 0 caps an epoch (smoke tests); 0 = one pass over the training set
    micro_batches: int = 0  # gradient slices per batch (same gradient, less memory traffic); 0 = fastest here


OPTIMIZERS = ("sgd", "adam", "adadelta")


def learning_rate_schedule(settings: TrainSettings) -> optax.Schedule:
    if settings.lr_decay:
        return lambda step: settings.lr / (1.0 + settings.lr_decay * step)
    return optax.constant_schedule(settings.lr)


def make_optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    schedule = learning_rate_schedule(settings)
    if settings.optimizer == "sgd":
        return optax.sgd(schedule, momentum=settings.momentum or None, nesterov=settings.nesterov)
    if settings.optimizer == "adam":
        return optax.adam(schedule)
    if settings.optimizer == "adadelta":
        return optax.adadelta(schedule, rho=settings.rho, eps=1e-7)
    raise UserError(f"unknown optimizer {settings.optimizer!r}; use one of {', '.join(OPTIMIZERS)}")


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named `data` over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


def to_model_input(x: jax.Array, standardize: bool) -> jax.Array:
    """The one place where stored data becomes model input: uint8 -> float32 in [0, 1] (or standardised)."""
    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 255.0
    else:
        x = x.astype(jnp.float32)
    if standardize:
        axes = tuple(range(1, x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        std = jnp.maximum(jnp.std(x, axis=axes, keepdims=True), 1.0 / math.sqrt(np.prod(x.shape[1:])))
        x = (x - mean) / std
    return x


def augment(images: jax.Array, rng: jax.Array, shift_fraction: float) -> jax.Array:
    """Random shift (edge-replicating, like Keras' fill_mode='nearest') and horizontal flip of NHWC images."""
    n, h, w, _ = images.shape
    dy_max, dx_max = int(round(h * shift_fraction)), int(round(w * shift_fraction))
    shift_rng, flip_rng = jax.random.split(rng)
    padded = jnp.pad(images, ((0, 0), (dy_max, dy_max), (dx_max, dx_max), (0, 0)), mode="edge")
    offsets = jax.random.randint(shift_rng, (n, 2), 0, jnp.array([2 * dy_max + 1, 2 * dx_max + 1]))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    shifted = jax.vmap(crop)(padded, offsets)
    flip = jax.random.bernoulli(flip_rng, 0.5, (n, 1, 1, 1))
    return jnp.where(flip, shifted[:, :, ::-1, :], shifted)  # axis 2 is width: a true horizontal flip


def init_state(model: nn.Module, sample_input: jax.Array, tx: optax.GradientTransformation,
               rng: jax.Array) -> TrainState:
    variables = model.init({"params": rng, "dropout": rng}, sample_input, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def _apply(model, state_params, batch_stats, x, train, rng=None):
    variables = {"params": state_params}
    if batch_stats:
        variables["batch_stats"] = batch_stats
    if train and batch_stats:
        logits, updates = model.apply(variables, x, train=True, rngs={"dropout": rng}, mutable=["batch_stats"])
        return logits, updates["batch_stats"]
    if train:
        return model.apply(variables, x, train=True, rngs={"dropout": rng}), batch_stats
    return model.apply(variables, x, train=False), batch_stats


AUTO = 0  # micro_batches: choose from the model's activation size when the step is traced
CPU_SLICE_ACTIVATION_BYTES = 24 * 2 ** 20  # a slice's activations should fit a CPU's last-level cache (32 MiB here)


def resolve_micro_batches(settings: TrainSettings, platform: str, num_devices: int) -> int:
    """Gradient slices per batch: `settings.micro_batches`, or for 0 the fastest choice for the platform.

    Only a single CPU device gains from slicing (BENCHMARKS.md); there AUTO is returned and the step picks the
    count from the model's activation size. Accelerators and multi-device meshes take the whole batch at once.
    """
    check_micro_batches(settings, num_devices)
    if settings.micro_batches:
        return settings.micro_batches
    return AUTO if platform == "cpu" and num_devices == 1 else 1


def check_micro_batches(settings: TrainSettings, num_devices: int = 1) -> None:
    """Raises UserError unless `settings.micro_batches` is 0 or splits each device's share of the batch."""
    batch, wanted = settings.batch_size, settings.micro_batches
    if wanted < 0 or (wanted and batch % (wanted * num_devices)):
        raise UserError(f"train.micro_batches={wanted} does not split train.batch_size={batch} evenly over "
                        f"{num_devices} device(s); use a divisor of {batch // num_devices}, or 0 for automatic")


def activation_bytes(model: nn.Module, params, x: jax.Array) -> int:
    """Bytes of every layer's output for input `x` in training mode (shapes only; nothing is computed)."""
    def forward(params):
        return model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(0)},
                           capture_intermediates=True, mutable=["intermediates"])[1]

    shapes = jax.eval_shape(forward, params)
    return int(sum(np.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(shapes)))


def auto_micro_batches(batch_bytes: int, batch: int) -> int:
    """The fewest slices, dividing `batch`, whose activations fit CPU_SLICE_ACTIVATION_BYTES."""
    for count in range(1, batch + 1):
        if batch % count == 0 and batch_bytes / count <= CPU_SLICE_ACTIVATION_BYTES:
            return count
    return batch


def make_batch_train_step(model: nn.Module, tx: optax.GradientTransformation, settings: TrainSettings,
                          is_image: bool, micro_batches: int = 1) -> Callable:
    """(state, x, y, rng) -> (state, metrics) on a gathered batch; `stacked` vmaps it over runs.

    With `micro_batches` = k > 1 the batch's gradient is summed over k interleaved slices (rows i, i + k, ...)
    before the one optimizer update: the same gradient up to float summation order, but each slice's
    activations stay in cache, which on a CPU with little memory bandwidth is faster (BENCHMARKS.md).
    AUTO picks k from the model's activation size when the step is traced.
    Each slice draws its own dropout masks. Models with batch statistics always use the whole batch.
    Kernels of `helmjax.models.dense.Dense` layers get their gradient once per batch, from every slice's layer
    inputs and output gradients, instead of once per slice.
    """

    def grads_of(params, batch_stats, x, y, dropout_rng, total):
        def loss_fn(params):
            logits, new_stats = _apply(model, params, batch_stats, x, True, dropout_rng)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.sum(loss) / total, (logits, loss, new_stats)

        return jax.grad(loss_fn, has_aux=True)(params)

    def deferred_perturbations(params, x, dropout_rng):
        """Shapes of the output perturbations of the model's deferred-kernel Dense layers for input `x` ({} if none)."""
        def probe(params):
            return model.apply({"params": params}, x, train=True, rngs={"dropout": dropout_rng},
                               mutable=[DEFERRED, "perturbations"])[1]
        return dict(jax.eval_shape(probe, params).get("perturbations", {}))

    def deferred_grads_of(params, x, y, dropout_rng, total, perturbation_shapes):
        """(gradients without the deferred kernels', the deferred layers' output gradients, (logits, losses,
        the deferred layers' inputs))."""
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), perturbation_shapes)

        def loss_fn(params, perturbations):
            logits, sown = model.apply({"params": params, "perturbations": perturbations}, x, train=True,
                                       rngs={"dropout": dropout_rng}, mutable=[DEFERRED])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            return jnp.sum(loss) / total, (logits, loss, sown[DEFERRED])

        (grads, output_grads), aux = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)(params, zeros)
        kernels = {path[:-1] + ("kernel",) for path in flax.traverse_util.flatten_dict(output_grads)}
        grads = {path: g for path, g in flax.traverse_util.flatten_dict(grads).items() if path not in kernels}
        return flax.traverse_util.unflatten_dict(grads), output_grads, aux

    def with_deferred_kernel_grads(grads, inputs, output_grads):
        """`grads` with each deferred kernel's gradient: all slices' inputs (transposed) times output gradients."""
        flat = flax.traverse_util.flatten_dict(grads)
        inputs = [flax.traverse_util.flatten_dict(tree) for tree in inputs]
        output_grads = [flax.traverse_util.flatten_dict(tree) for tree in output_grads]
        for path in output_grads[0]:
            module = path[:-1]
            x = jnp.concatenate([tree[module + ("inputs",)][0] for tree in inputs])
            g = jnp.concatenate([tree[path] for tree in output_grads])
            flat[module + ("kernel",)] = x.reshape(-1, x.shape[-1]).T @ g.reshape(-1, g.shape[-1])
        return flax.traverse_util.unflatten_dict(flat)

    def step(state: TrainState, x, y, rng):
        aug_rng, dropout_rng = jax.random.split(rng)
        if is_image and settings.augment:
            x = augment(x, aug_rng, settings.shift_fraction)
        x = to_model_input(x, settings.standardize)
        total = y.shape[0]
        if state.batch_stats:
            slices = 1  # slicing would change the batch statistics
        elif micro_batches == AUTO:
            slices = auto_micro_batches(activation_bytes(model, state.params, x), total)
        else:
            slices = micro_batches
        if slices == 1:
            grads, (logits, losses, batch_stats) = grads_of(state.params, state.batch_stats, x, y, dropout_rng,
                                                            total)
        else:
            part_rngs = jax.random.split(dropout_rng, slices)
            perturbation_shapes = deferred_perturbations(state.params, x[::slices], part_rngs[0])
            auxes, labels, inputs, output_grads = [], [], [], []
            grads = None
            for i, part_rng in enumerate(part_rngs):
                xi, yi = x[i::slices], y[i::slices]
                if grads is not None:  # one slice after the other, so only one slice's activations are live
                    xi, grads = jax.lax.optimization_barrier((xi, grads))
                if perturbation_shapes:
                    g, outputs_grad, aux = deferred_grads_of(state.params, xi, yi, part_rng, total,
                                                             perturbation_shapes)
                    inputs.append(aux[2])
                    output_grads.append(outputs_grad)
                else:
                    g, aux = grads_of(state.params, state.batch_stats, xi, yi, part_rng, total)
                grads = g if grads is None else jax.tree_util.tree_map(jnp.add, grads, g)
                auxes.append(aux)
                labels.append(yi)
            if perturbation_shapes:
                grads = with_deferred_kernel_grads(grads, inputs, output_grads)
            logits = jnp.concatenate([aux[0] for aux in auxes])
            losses = jnp.concatenate([aux[1] for aux in auxes])
            y = jnp.concatenate(labels)  # in the slices' row order, as logits and losses are
            batch_stats = state.batch_stats
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss_sum": jnp.sum(losses), "correct": jnp.sum(jnp.argmax(logits, -1) == y),
                   "count": jnp.asarray(y.shape[0], jnp.int32)}
        return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

    return step


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, settings: TrainSettings,
                    is_image: bool, micro_batches: int = 1) -> Callable:
    """(state, data_x, data_y, indices, rng) -> (state, metrics); metrics are sums so they average right."""
    batch_step = make_batch_train_step(model, tx, settings, is_image, micro_batches)

    def step(state: TrainState, data_x, data_y, indices, rng):
        return batch_step(state, jnp.take(data_x, indices, axis=0), jnp.take(data_y, indices, axis=0), rng)

    return step


def make_batch_eval_step(model: nn.Module, settings: TrainSettings) -> Callable:
    """(state, x, y, mask) -> (loss_sum, correct per example) on a gathered batch; padded rows are masked."""

    def step(state: TrainState, x, y, mask):
        logits, _ = _apply(model, state.params, state.batch_stats, to_model_input(x, settings.standardize), False)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = (jnp.argmax(logits, -1) == y) & mask
        return jnp.sum(jnp.where(mask, losses, 0.0)), correct

    return step


def make_eval_step(model: nn.Module, settings: TrainSettings) -> Callable:
    """(state, data_x, data_y, indices, mask) -> (loss_sum, correct per example); padded rows are masked."""
    batch_step = make_batch_eval_step(model, settings)

    def step(state: TrainState, data_x, data_y, indices, mask):
        return batch_step(state, jnp.take(data_x, indices, axis=0), jnp.take(data_y, indices, axis=0), mask)

    return step


@dataclasses.dataclass
class Trainer:
    """Compiled steps and device-resident data for one (model, settings, data shape); reusable across runs."""
    model: nn.Module
    settings: TrainSettings
    is_image: bool
    mesh: jax.sharding.Mesh = dataclasses.field(default_factory=data_mesh)

    def __post_init__(self):
        self.tx = make_optimizer(self.settings)
        self.learning_rate = learning_rate_schedule(self.settings)
        replicated = NamedSharding(self.mesh, P())
        sharded = NamedSharding(self.mesh, P("data"))
        self._replicated, self._sharded = replicated, sharded
        self.compiler_options = options = mesh_compiler_options(self.mesh)
        self.micro_batches = resolve_micro_batches(self.settings, self.mesh.devices.flat[0].platform,
                                                   self.num_devices)
        self.train_step = jax.jit(make_train_step(self.model, self.tx, self.settings, self.is_image,
                                                  self.micro_batches),
                                  in_shardings=(replicated, replicated, replicated, sharded, replicated),
                                  out_shardings=(replicated, replicated), donate_argnums=(0,),
                                  compiler_options=options)
        self.eval_step = jax.jit(make_eval_step(self.model, self.settings),
                                 in_shardings=(replicated, replicated, replicated, sharded, sharded),
                                 out_shardings=(replicated, replicated), compiler_options=options)

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def put(self, array: np.ndarray) -> jax.Array:
        """Places a whole dataset array on the devices (replicated), once per run; works across hosts."""
        array = np.asarray(array)
        return jax.make_array_from_callback(array.shape, self._replicated, lambda index: array[index])

    def shard_batch(self, array: np.ndarray) -> jax.Array:
        """A global batch-axis array from the same host value on every process; each device gets its slice."""
        return jax.make_array_from_callback(array.shape, self._sharded, lambda index: array[index])

    def init(self, sample_input: np.ndarray, rng: jax.Array) -> TrainState:
        x = to_model_input(jnp.asarray(sample_input[:1]), self.settings.standardize)
        state = init_state(self.model, x, self.tx, rng)
        return jax.tree_util.tree_map(lambda a: self.put(np.asarray(a)), state)

    def param_count(self, sample_input: np.ndarray) -> int:
        x = to_model_input(jnp.asarray(sample_input[:1]), self.settings.standardize)
        shapes = jax.eval_shape(lambda: self.model.init(jax.random.key(0), x, train=False))
        return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(shapes["params"])))

    def train_epoch(self, state: TrainState, data_x: jax.Array, data_y: jax.Array, epoch_rng: jax.Array,
                    on_step: Optional[Callable] = None):
        """One shuffled pass (the last partial batch is dropped); returns (state, mean loss, accuracy)."""
        order, step_rng = self.epoch_plan(data_x.shape[0], epoch_rng)
        steps = len(order)
        sums = None
        for i in range(steps):
            state, metrics = self.train_step(state, data_x, data_y, self.shard_batch(order[i]),
                                             jax.random.fold_in(step_rng, i))
            sums = metrics if sums is None else jax.tree_util.tree_map(jnp.add, sums, metrics)
            if on_step is not None:
                on_step(i, steps)
        sums = jax.device_get(sums)
        count = max(int(sums["count"]), 1)
        return state, float(sums["loss_sum"]) / count, float(sums["correct"]) / count

    def epoch_plan(self, n: int, epoch_rng: jax.Array):
        """(order, step_rng) of one epoch over `n` examples: batch indices (steps, batch) and the key whose
        fold with step i is that step's rng. Stacked runs use it too, so they draw what a lone run draws."""
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

    def eval_batches(self, n: int):
        """Per evaluation batch over `n` examples (the last padded with row 0): the sharded indices and mask,
        and the host mask that drops the padding from the results. The batch is `eval_batch_size` rounded down
        to a multiple of the devices (at least one row per device)."""
        batch = self.settings.eval_batch_size
        batch = max(self.num_devices, batch - batch % self.num_devices)
        for start in range(0, n, batch):
            idx = np.arange(start, start + batch)
            mask = idx < n
            yield self.shard_batch(np.where(mask, idx, 0)), self.shard_batch(mask), mask

    def evaluate(self, state: TrainState, data_x: jax.Array, data_y: jax.Array):
        """Mean loss, accuracy and per-example correctness over the whole array (padded to full batches)."""
        n = data_x.shape[0]
        loss_sum, correct = 0.0, []
        for indices, device_mask, mask in self.eval_batches(n):
            batch_loss, batch_correct = self.eval_step(state, data_x, data_y, indices, device_mask)
            loss_sum += float(batch_loss)
            correct.append(np.asarray(batch_correct)[mask])
        correct = np.concatenate(correct) if correct else np.zeros(0, bool)
        return loss_sum / max(n, 1), float(correct.mean()) if n else float("nan"), correct


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite: the run is marked failed with this reason."""


def check_finite(loss: float, epoch: int):
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss} at epoch {epoch}; lower train.lr or check the data")
