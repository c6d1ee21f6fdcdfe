"""Ground truth, replicated: the camera's noise and the grating's contrast crossed (3 x 3 settings), 3 seeds at
every level, a dense quality grid around the knee, references trained to convergence. `python -m
benchmarks.validate_factorial` runs it and estimates how the knee moves per unit ln σ and per unit ln contrast,
each with its interval, and tests the paper's prediction (knee at q_N) setting by setting.

Noise: photons at full scale 100, 400 (the demo) and 6400 (true σ about 18, 7.8 and 1.9 grey levels). Contrast: the
demo's grating range scaled by 0.7, 1 and 1.4 (a factor √2 per step; the axis value is the range's low end).
Levels 3-50, √2 apart from 10 to 20 (the two ladders put every knee between q=5 and q=50 at such settings), raw as
the reference. CPU-sized: 2000 training / 1000 test images, 10 epochs (the ladders: 6) with the best epoch chosen by
validation loss (`train.best_epoch_by`), so no reference stops short of its plateau; 216 runs, about 80 minutes
on 2 cores."""

import ml_collections

from experiments import demo_q_sweep

PHOTONS = (100.0, 400.0, 6400.0)
CONTRAST_SCALES = (0.7, 1.0, 1.4)
LEVELS = ("raw", 3, 5, 10, 14, 20, 30, 50)


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "factorial_ladder"
    c.data.update(n_train=2000, n_test=1000)
    c.train.update(epochs=10, best_epoch_by="val_loss")
    low, high = c.data.contrast_low, c.data.contrast_high
    contrasts = [{"data.contrast_low": round(low * s, 6), "data.contrast_high": round(high * s, 6)}
                 for s in CONTRAST_SCALES]
    c.grid.update(level=list(LEVELS), seed=[0, 1, 2], reference_seed=[],
                  axes=[["data.photons", list(PHOTONS)], ["contrast", contrasts]])
    return c
