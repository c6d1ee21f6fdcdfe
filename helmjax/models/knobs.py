"""What every model family shares: the width knob (one rule that scales a layer) and the swappable layers.

`Knobs` is the base module of each family's model. Its fields are keyword-only, so a family's own fields stay
positional in their order (`num_classes` first). The layers are flax's own by default, as in flax's ImageNet
example; the trainer fills in its performance profile's (`helmjax.training.performance`).
"""

from typing import Any

import flax.linen as nn

ModuleDef = Any


def scaled_width(units: int, multiplier: float) -> int:
    """`units` times `multiplier`, rounded, and never below 1 (multiplier 1.0 keeps the paper's count)."""
    return max(1, int(round(units * multiplier)))


class Knobs(nn.Module, kw_only=True):
    """The width multiplier and the three layers a performance profile swaps in."""
    width: float = 1.0  # multiplies every hidden channel count and dense width (1.0 = the paper)
    conv: ModuleDef = nn.Conv
    dense: ModuleDef = nn.Dense
    dropout_layer: ModuleDef = nn.Dropout
