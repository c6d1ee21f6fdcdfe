"""How much of the learned tables' saving is the learning's luck: `learned_jpeg_demo` on camera scenes its settings
were not tuned on (`data.seed=1`), with the tables learned at 3 learning seeds (`quantizer.seed`: another split of
the training images between tables and fixed classifiers, other classifiers and batch orders); `--set
quantizer.restarts=3` learns them with 3 descents instead of the default 6. The report's codec section gives each
setting's q*, the payload saved against Annex K at the two q* with its interval over images, the range the grid
allows, the accuracy at equal rate, and the spread over the learning seeds.

Long on a CPU: three learned settings of about 25 minutes of learning each, then 5 seeds x 17 levels and 8 raw runs
of 12 epochs; about 2.5 hours on 2 cores (BENCHMARKS.md), minutes on an accelerator."""

import ml_collections

from experiments import learned_jpeg_demo

LEVELS = learned_jpeg_demo.CODEC_LEVELS


def get_config() -> ml_collections.ConfigDict:
    c = learned_jpeg_demo.get_config()
    c.name = "learned_jpeg_seeds"
    c.data.seed = 1  # scenes the learning settings (6 descents, their steps) were not chosen on
    c.quantizer.update(seed=0, restarts=6)  # learned_jpeg's defaults (`learned_jpeg.SETTINGS`); JPEG ignores them
    # A setting's name is its first key's value: "jax_jpeg" for Annex K, the learning seed for learned tables.
    learned = lambda seed: {"quantizer.seed": seed, "quantizer.name": "learned_jpeg",
                            "grid.level": ["raw"] + LEVELS["learned_jpeg"]}
    c.grid.axes = [["tables", [{"quantizer.name": "jax_jpeg", "grid.level": ["raw"] + LEVELS["jax_jpeg"]},
                               learned(0), learned(1), learned(2)]]]
    return c
