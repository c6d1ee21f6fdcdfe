"""Gradient slices (micro-batching): a batch's gradient as the mean of its slices', one slice after the other.

The same gradient up to float summation order, but only one slice's activations are live at a time, which on a
CPU with little memory bandwidth is faster when they fit its cache (BENCHMARKS.md). `micro_batched` wraps a
gradient function the way optax.MultiSteps wraps an optimizer: the loss itself stays one plain function.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from helmjax.errors import UserError

AUTO = 0  # train.micro_batches: the fewest slices whose activations fit CPU_SLICE_ACTIVATION_BYTES
CPU_SLICE_ACTIVATION_BYTES = 24 * 2 ** 20  # a slice's activations should fit a CPU's last-level cache (32 MiB here)


def micro_batched(grad_fn: Callable, slices: int) -> Callable:
    """`grad_fn(params, batch, rng) -> (grads, aux)` of a mean loss, computed over `slices` interleaved slices of
    `batch` (rows i, i + k, ...; each device keeps its share) in a `lax.scan`: the mean of the slices' gradients
    and the sum of their `aux` (so metrics must be sums). Each slice draws from its own key.

    The scan is unrolled: XLA's CPU backend ran the rolled loop at 4 images/s instead of 200 (model A, batch 128).
    A barrier ties each slice's input to the gradients so far, so the slices run one after the other (F: 205
    images/s against 191 without it).
    """
    if slices == 1:
        return grad_fn

    def sliced_grad_fn(params, batch, rng):
        parts = jax.tree_util.tree_map(lambda a: a.reshape(-1, slices, *a.shape[1:]).swapaxes(0, 1), batch)
        keys = jax.random.split(rng, slices)

        def add_slice(total, part_and_key):
            part_and_key, total = jax.lax.optimization_barrier((part_and_key, total))
            return jax.tree_util.tree_map(jnp.add, total, grad_fn(params, *part_and_key)), None

        first = jax.tree_util.tree_map(lambda a: a[0], (parts, keys))
        zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype),
                                       jax.eval_shape(grad_fn, params, *first))
        (grads, aux), _ = jax.lax.scan(add_slice, zeros, (parts, keys), unroll=True)
        return jax.tree_util.tree_map(lambda g: g / slices, grads), aux

    return sliced_grad_fn


def check_micro_batches(batch_size: int, micro_batches: int, num_devices: int = 1) -> None:
    """Raises UserError unless `micro_batches` is 0 (automatic) or splits each device's share of the batch."""
    if micro_batches < 0 or (micro_batches and batch_size % (micro_batches * num_devices)):
        raise UserError(f"train.micro_batches={micro_batches} does not split train.batch_size={batch_size} evenly "
                        f"over {num_devices} device(s); use a divisor of {batch_size // num_devices}, or 0 for "
                        f"automatic")


def activation_bytes(model: nn.Module, x: jax.Array) -> int:
    """Bytes of every layer's output for input `x` in training mode (shapes only; nothing is computed)."""
    def forward(x):
        variables = model.init(jax.random.key(0), x, train=False)
        return model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(0)},
                           capture_intermediates=True, mutable=["intermediates", "batch_stats"])[1]["intermediates"]

    shapes = jax.eval_shape(forward, x)
    return int(sum(np.prod(a.shape) * a.dtype.itemsize for a in jax.tree_util.tree_leaves(shapes)))


def auto_micro_batches(batch_bytes: int, batch: int) -> int:
    """The fewest slices, dividing `batch`, whose activations fit CPU_SLICE_ACTIVATION_BYTES."""
    for count in range(1, batch + 1):
        if batch % count == 0 and batch_bytes / count <= CPU_SLICE_ACTIVATION_BYTES:
            return count
    return batch


def slice_count(model: nn.Module, x: jax.Array, micro_batches: int) -> int:
    """The slices a batch `x` is cut into: 1 for models with batch statistics (slicing would change them), else
    `micro_batches`, or for AUTO the fewest that fit the cache budget."""
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x[:1], train=False), x)
    if "batch_stats" in variables:
        return 1
    if micro_batches != AUTO:
        return micro_batches
    return auto_micro_batches(activation_bytes(model, x), x.shape[0])
