"""Perceptual quantizers: JPEG in JAX (`jpeg`), real codecs (Pillow JPEG, LAME MP3), and a registry."""

from helmjax.quantizers.registry import (Quantized, QuantizerSpec, apply, available, get, level_text, quantizer,
                                         register, weights_digest)

__all__ = ["Quantized", "QuantizerSpec", "apply", "available", "get", "level_text", "quantizer", "register",
           "weights_digest"]
