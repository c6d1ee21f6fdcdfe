"""Matched and mismatched compression on the demo's camera set: JPEG applied to both splits, to the training
split only, or to the test split only (`quantizer.apply_to` as a grid axis), so the report shows whether a loss
comes from removed information or from the mismatch between training and test images. The raw runs are shared
by the three settings: 15 trainings, 20 minutes measured on a 2-core box with other jobs beside it."""

import ml_collections

from experiments import demo_q_sweep


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "mismatch_demo"
    c.grid.update(level=["raw", 5, 10, 20, 50], axes=[["quantizer.apply_to", ["both", "train", "test"]]])
    return c
