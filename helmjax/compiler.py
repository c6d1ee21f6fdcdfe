"""XLA compiler options for the training and evaluation programs.

On CPU, XLA can hand dots, convolutions and elementwise ops to its YNNPACK library fusions; for the CIFAR
models that made a training step 1.6x faster than XLA's own emitters on the benchmark machine (BENCHMARKS.md).
The option is marked experimental in XLA, so it is probed once per process and left out where the installed
jaxlib rejects it; HELMJAX_XLA_LIBRARY_FUSION=0 turns it off. Other platforms get XLA's defaults.
"""

import functools
import os
from typing import Optional

import jax
import numpy as np

_LIBRARY_FUSION = "xla_cpu_experimental_ynn_fusion_type"
CPU_OPTIONS = {_LIBRARY_FUSION: ",".join(f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("DOT", "ELTWISE", "REDUCE"))}


@functools.cache
def _cpu_accepts(options: tuple) -> bool:
    """Whether this jaxlib compiles a small CPU program with `options`."""
    x = jax.device_put(np.ones((4, 4), np.float32), jax.devices("cpu")[0])
    try:
        jax.jit(lambda a: a @ a + 1.0, compiler_options=dict(options)).lower(x).compile()
    except Exception:  # an unknown option or value: XLA raises its own runtime error type
        return False
    return True


def compiler_options(platform: str) -> Optional[dict]:
    """The options for programs compiled for `platform` ("cpu", "gpu", "tpu"), or None for XLA's defaults."""
    if platform != "cpu" or os.environ.get("HELMJAX_XLA_LIBRARY_FUSION", "1") == "0":
        return None
    return dict(CPU_OPTIONS) if _cpu_accepts(tuple(sorted(CPU_OPTIONS.items()))) else None


def mesh_compiler_options(mesh: jax.sharding.Mesh) -> Optional[dict]:
    """`compiler_options` for the platform of the devices in `mesh`."""
    return compiler_options(mesh.devices.flat[0].platform)
