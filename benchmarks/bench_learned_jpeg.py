"""Time to learn JPEG tables for a task (`helmjax.quantizers.learned_jpeg`) and what they give, on the camera set.

Prints, for the default settings (tables learned on 1000 training images by 200 Adam steps, the fixed classifier
trained on the other training images by 600): the one-off cost per dataset (classifier + rate calibration, shared
by every λ), the time per λ, the learned tables' payload bits per pixel on held-out images against the Annex K
tables, and the rate proxy's Spearman correlation with Pillow payload bits over the training subset. Wall times
on a shared machine (run it niced there: other jobs slow it down), compile times included.

    python -m benchmarks.bench_learned_jpeg                 # λ = 8, 2, 0.5, 0.1 (learned_jpeg_demo's)
    python -m benchmarks.bench_learned_jpeg --lams=1 --steps=50
"""

import argparse
import os
import platform
import time


from helmjax.data.camera import make_camera
from helmjax.quantizers import learned_jpeg
from helmjax.quantizers.jpeg_tables import CHROMA_TABLE, LUMA_TABLE, scaled_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lams", default="8,2,0.5,0.1")
    parser.add_argument("--steps", type=int, default=learned_jpeg.SETTINGS["steps"])
    args = parser.parse_args()
    ds = make_camera(seed=0, n_train=2000, n_test=1000)
    pixels = 32 * 32
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; camera 2000 train / 1000 test")
    for quality in (5, 10, 20, 50):
        bits = learned_jpeg.payload_bits(ds.x_test, scaled_table(LUMA_TABLE, quality),
                                         scaled_table(CHROMA_TABLE, quality))
        print(f"Annex K q={quality:<3}           held-out payload {bits.mean() / pixels:.3f} bpp")
    for i, lam in enumerate(float(v) for v in args.lams.split(",")):
        t0 = time.perf_counter()
        state = learned_jpeg.learn_tables(ds.x_train, ds.y_train, lam, steps=args.steps)
        seconds = time.perf_counter() - t0
        bits = learned_jpeg.payload_bits(ds.x_test, state["luma"], state["chroma"])
        print(f"learned λ={lam:<5g} {seconds:6.1f} s{' (with classifier + calibration)' if i == 0 else ''}: "
              f"held-out payload {bits.mean() / pixels:.3f} bpp, proxy Spearman {state['spearman']:.3f} "
              f"(train subset), classifier acc {state['classifier_train_accuracy']:.3f} on its images, "
              f"{state['classifier_accuracy']:.3f} on the tables' images")


if __name__ == "__main__":
    main()
