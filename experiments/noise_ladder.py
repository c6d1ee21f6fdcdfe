"""Ground truth for the noise claim, part 1: the demo's scenes under six sensor noise levels (photons at full scale
25 ... 6400 and noise-free), the same content everywhere. If the knee measured the data's noise, it would move with
the photons; `python -m benchmarks.validate_noise` correlates every number with the camera's true noise.

CPU-sized (about 20 minutes on 2 cores): 2000 training and 1000 test images (demo: 3000 / 2000), 6 epochs (demo:
8), 5 qualities around the demo's knee (demo: 7), 3 seeds per level and 5 at the lossless reference."""

import ml_collections

from experiments import demo_q_sweep


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "noise_ladder"
    c.data.update(n_train=2000, n_test=1000)
    c.train.epochs = 6
    c.grid.update(level=["raw", 5, 10, 20, 30, 50], seed=[0, 1, 2], reference_seed=[0, 1, 2, 3, 4],
                  axes=[["data.photons", [25.0, 100.0, 400.0, 1600.0, 6400.0, float("inf")]]])
    return c
