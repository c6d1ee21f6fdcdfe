"""The CPU model, for benchmark output (one home: `helmjax.machine`)."""

from helmjax.machine import cpu_model

__all__ = ["cpu_model"]
