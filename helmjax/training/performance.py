"""The one seam for speed: which layers the models use, XLA's options, gradient slices and stacking, per platform.

Everything here changes how fast a result comes, not what it is (up to float summation order). A profile is
chosen once per trainer from the platform of its mesh (`choose`), filled into the model's layer fields
(`conv`, `dense`, `dropout_layer`, as flax's ImageNet example swaps its `conv`) and recorded in each run's
config.json (`record`). Profiles (`train.performance`; "auto" picks "cpu" on CPUs, "accelerator" elsewhere):
- "cpu": strided-gradient and patch-matmul convolutions (models/conv.py), one-bit dropout draws
  (models/dropout.py), XLA's YNNPACK library fusions (probed), and on a single device as many gradient slices as
  keep a slice's activations in cache (micro_batches.py). Model A at batch 128 on a 2-core AMD EPYC (AVX-512):
  207 images/s against 116 for "plain" (interleaved; BENCHMARKS.md has each trick's share).
- "accelerator": flax's convolution and dense layers, one-bit dropout draws, XLA's default options.
- "plain": flax's own layers and XLA's defaults everywhere: the reference a trick is measured against.
`train.compute_dtype="bfloat16"` makes any profile's conv and dense layers compute in bfloat16 (for accelerators;
parameters, batch norm and the loss stay float32); that one changes results, so it is part of a run's identity.
"""

import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from helmjax.errors import UserError
from helmjax.models.conv import conv_general_dilated
from helmjax.models.dropout import Dropout
from helmjax.training.micro_batches import AUTO, check_micro_batches, slice_count
from helmjax.training.recipe import TrainSettings

ModuleDef = Any
PROFILES = ("auto", "cpu", "accelerator", "plain")
STACK_MODES = ("unroll", "vmap")
COMPUTE_DTYPES = ("float32", "bfloat16")
LAYER_FIELDS = ("conv", "dense", "dropout_layer")

_LIBRARY_FUSION = "xla_cpu_experimental_ynn_fusion_type"
CPU_COMPILER_OPTIONS = {_LIBRARY_FUSION: ",".join(f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("DOT", "ELTWISE",
                                                                                                "REDUCE"))}


@functools.cache
def cpu_accepts(options: tuple) -> bool:
    """Whether this jaxlib compiles a small CPU program with `options` (the library fusion is experimental in XLA,
    so a jaxlib may reject it)."""
    x = jax.device_put(np.ones((4, 4), np.float32), jax.devices("cpu")[0])
    try:
        jax.jit(lambda a: a @ a + 1.0, compiler_options=dict(options)).lower(x).compile()
    except Exception:  # an unknown option or value: XLA raises its own runtime error type
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Profile:
    """Layers, compiler options, gradient slices and stacking of one trainer."""
    name: str
    conv: ModuleDef
    dense: ModuleDef
    dropout_layer: ModuleDef
    compiler_options: Optional[dict]
    micro_batches: int  # slices per batch, or AUTO
    stack_size: int  # most runs trained together
    stack_mode: str

    def fill(self, model: nn.Module) -> nn.Module:
        """`model` with this profile's layers in the layer fields it has (any model works; ours have all three)."""
        return model.clone(**{f: getattr(self, f) for f in LAYER_FIELDS if f in model.__dataclass_fields__})

    def slices(self, model: nn.Module, x) -> int:
        """Gradient slices for a (model-ready) batch `x`."""
        return slice_count(model, x, self.micro_batches)

    def record(self, model: nn.Module, batch_input) -> dict:
        """What config.json records: the profile, its layers and options, and the slice count a batch shaped like
        `batch_input` (one member's model-ready batch) gets."""
        return {"profile": self.name, **{f: _describe(getattr(self, f)) for f in LAYER_FIELDS},
                "compiler_options": self.compiler_options, "micro_batches": self.slices(model, batch_input)}


def _describe(module_def) -> str:
    if isinstance(module_def, functools.partial):
        args = ", ".join(f"{k}={_describe(v)}" for k, v in module_def.keywords.items())
        return f"{_describe(module_def.func)}({args})"
    if not hasattr(module_def, "__qualname__"):  # a value such as a dtype
        return str(module_def)
    return f"{module_def.__module__}.{module_def.__qualname__}"


def default_stack_size(platform: str) -> int:
    """Runs stacked when `train.stack` is 0: what was fastest on each kind of machine.

    CPU: 1. `python -m benchmarks.bench_stacked` (2-core AMD EPYC with AVX-512, model A at width 0.25 and 1,
    batch 128, stacks of 2 and 4, loaded machine): "unroll" stacks ran at 0.97-1.03x the one-by-one rate and
    "vmap" stacks at 0.43-0.57x (grouped convolutions), so stacking buys nothing there but compile time.
    GPU/TPU: 8, not measured yet: a CIFAR-sized step of one run leaves most of an accelerator idle on kernel
    launches and small matmuls, so vmapped members should fill it almost for free.
    """
    return 1 if platform == "cpu" else 8


def default_stack_mode(platform: str) -> str:
    """"unroll" on CPU (a grouped convolution is several times slower per image there), "vmap" elsewhere."""
    return "unroll" if platform == "cpu" else "vmap"


def check_settings(settings: TrainSettings, num_devices: int = 1):
    """Raises UserError for a speed setting that cannot work: an unknown profile or stack mode, a negative stack,
    a slice count that does not split each device's share of the batch."""
    if settings.performance not in PROFILES:
        raise UserError(f"train.performance={settings.performance!r} is not a profile; use one of "
                        f"{', '.join(PROFILES)}")
    if settings.stack_mode and settings.stack_mode not in STACK_MODES:
        raise UserError(f"train.stack_mode={settings.stack_mode!r}; use one of {', '.join(STACK_MODES)} (or '' "
                        f"for the platform's default)")
    if settings.compute_dtype not in COMPUTE_DTYPES:
        raise UserError(f"train.compute_dtype={settings.compute_dtype!r}; use one of {', '.join(COMPUTE_DTYPES)}")
    if settings.stack < 0:
        raise UserError(f"train.stack={settings.stack} must be >= 0 (0: the platform's default)")
    check_micro_batches(settings.batch_size, settings.micro_batches, num_devices)


def choose(settings: TrainSettings, platform: str, num_devices: int) -> Profile:
    """The profile of a trainer whose mesh has `num_devices` devices of `platform`: the one place it is chosen."""
    check_settings(settings, num_devices)
    name = settings.performance
    if name == "auto":
        name = "cpu" if platform == "cpu" else "accelerator"
    # Only a single CPU device gains from slicing (BENCHMARKS.md); elsewhere the whole batch goes at once.
    auto_slices = AUTO if name == "cpu" and num_devices == 1 else 1
    options = CPU_COMPILER_OPTIONS if name == platform == "cpu" \
        and cpu_accepts(tuple(sorted(CPU_COMPILER_OPTIONS.items()))) else None
    layers = {"cpu": (functools.partial(nn.Conv, conv_general_dilated=conv_general_dilated), nn.Dense, Dropout),
              "accelerator": (nn.Conv, nn.Dense, Dropout),
              "plain": (nn.Conv, nn.Dense, nn.Dropout)}[name]
    if settings.compute_dtype != "float32":  # recorded with the layers (`Profile.record`)
        dtype = jnp.dtype(settings.compute_dtype)
        layers = (functools.partial(layers[0], dtype=dtype), functools.partial(layers[1], dtype=dtype), layers[2])
    return Profile(name, *layers, compiler_options=dict(options) if options else None,
                   micro_batches=settings.micro_batches or auto_slices,
                   stack_size=settings.stack or default_stack_size(platform),
                   stack_mode=settings.stack_mode or default_stack_mode(platform))
