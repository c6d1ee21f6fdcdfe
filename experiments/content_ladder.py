"""Ground truth for the noise claim, part 2: the demo's sensor noise (400 photons) with the grating's contrast
scaled from half to three times the demo's (0.045-0.06): the same noise everywhere, fainter or stronger content.
If the knee measured content rather than noise, it would move here and not on the noise ladder.

CPU-sized like `noise_ladder` (about 20 minutes on 2 cores): 2000 / 1000 images, 6 epochs, 5 qualities, 3 seeds
per level and 5 at the lossless reference. The axis value is the contrast range's low end."""

import ml_collections

from experiments import demo_q_sweep

SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def get_config() -> ml_collections.ConfigDict:
    c = demo_q_sweep.get_config()
    c.name = "content_ladder"
    c.data.update(n_train=2000, n_test=1000)
    c.train.epochs = 6
    low, high = c.data.contrast_low, c.data.contrast_high
    settings = [{"data.contrast_low": round(low * s, 6), "data.contrast_high": round(high * s, 6)} for s in SCALES]
    c.grid.update(level=["raw", 5, 10, 20, 30, 50], seed=[0, 1, 2], reference_seed=[0, 1, 2, 3, 4],
                  axes=[["contrast", settings]])
    return c
