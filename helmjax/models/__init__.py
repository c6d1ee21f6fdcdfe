"""Model families (flax.linen): the paper's CIFAR-10 and audio architectures A-F and its large-scale networks
(ImageNet, Places, COWC: `imagenet`), built by name."""

import importlib
from typing import Callable

import jax
import numpy as np

from helmjax.errors import UserError

# family -> module that defines `ARCHS` (arch name -> factory(num_classes, **knobs) -> nn.Module).
FAMILIES = {"image": "helmjax.models.cifar", "audio": "helmjax.models.audio", "imagenet": "helmjax.models.imagenet"}


def archs(family: str) -> dict:
    if family not in FAMILIES:
        raise UserError(f"unknown model family {family!r}; use one of {', '.join(FAMILIES)}")
    return importlib.import_module(FAMILIES[family]).ARCHS


def build(family: str, arch: str, num_classes: int, **knobs):
    """The flax module for `arch` of `family`; `knobs` are the family's width/depth/dropout settings."""
    table = archs(family)
    if arch not in table:
        raise UserError(f"unknown {family} architecture {arch!r}; use one of {', '.join(table)}")
    factory: Callable = table[arch]
    return factory(num_classes=num_classes, **knobs)


def param_count(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
