"""A Dense layer whose kernel gradient a sliced training step can form once per batch.

With gradient slices (`train.micro_batches`) each slice's kernel gradient of a wide Dense layer is a 16-deep
outer product (8192 x 128 for architectures B-F) written and summed once per slice, which on CPU cost more than
the layer itself. When the step makes the DEFERRED collection mutable, this layer records its input, hides its
kernel from autodiff and adds a zero perturbation to its output (whose gradient is the output gradient); the step
then forms the kernel gradient as one matmul over the whole batch (`helmjax.train`). Otherwise it is nn.Dense:
same parameters, names and initialisers.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

DEFERRED = "deferred_kernel_inputs"  # the collection that switches deferral on and holds each layer's input
OUTPUTS = "outputs"  # the name of each layer's output perturbation in the "perturbations" collection


class Dense(nn.Dense):
    """nn.Dense (named Dense_i like it, so parameter trees match) with an optional deferred kernel gradient."""

    @nn.compact
    def __call__(self, inputs: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (jnp.shape(inputs)[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        deferred = self.is_mutable_collection(DEFERRED) and not self.is_initializing()  # init: every one is
        if deferred:
            self.sow(DEFERRED, "inputs", inputs)
            kernel = jax.lax.stop_gradient(kernel)
        y = jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())), precision=self.precision)
        if bias is not None:
            y = y + jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return self.perturb(OUTPUTS, y) if deferred else y
