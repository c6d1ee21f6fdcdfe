"""The storage question on the demo's camera set: how many images, at how many bits each, for a given budget.

A grid over the training-set size (nested, class-balanced shares of the demo's 2700 training images, from 1/16
to all) crossed with JPEG levels; the report fits the storage law err(n, L) = E + A·n^(−α) + B·L^(−β) and answers
`analysis.budget` (or `--budget`) when the law describes the grid (on this set it does not: the size matters
only where JPEG removed the classes' detail; VALIDATION.md, section 5). Smaller sets train for more epochs, so every size gets a comparable number of
steps (between 96 and 340 at batch 64). 50 trainings: 28 minutes measured on a 2-core box with other jobs
beside it (BENCHMARKS.md)."""

import ml_collections

from experiments import demo_q_sweep

# (share of the training split, epochs), largest first: the epochs grow as the set shrinks.
SIZES = [(1.0, 8), (1 / 2, 10), (1 / 4, 16), (1 / 8, 28), (1 / 16, 48)]


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "storage_demo"
    c.grid.update(level=["raw", 5, 10, 20, 50], seed=[0, 1], reference_seed=[],
                  axes=[["n", [{"data.train_fraction": share, "train.epochs": epochs} for share, epochs in SIZES]]])
    # 100 kB, 300 kB and 1 MB of training images: from "a few hundred images at any level" to "nearly all of
    # them at a middle quality" (a 32x32 JPEG file here is 0.66-0.81 kB, the lossless one 2.3 kB).
    c.analysis.budget = [100e3, 300e3, 1e6]
    return c
