"""Time to learn JPEG tables for a task (`helmjax.quantizers.learned_jpeg`) and what they give, on the camera set.

Prints, for the default settings (tables learned on 1000 training images by 6 descents of 300 Adam steps, each
against its own fixed classifier and with the DC search on the real codec, one kept by fresh classifiers; the fixed
classifiers trained on the other training images, raw and 2 JPEG-compressed copies, by 600 steps): the one-off cost
per dataset (6 classifiers + rate calibration, shared by every target), the time per target rate, the learned
tables' payload bits per pixel on the learning images and on held-out images against the Annex K tables, where the
dual ascent left λ, and the rate proxy's Spearman correlation with Pillow payload bits over the training subset.
Wall times on a shared machine (run it niced there: other jobs slow it down), compile times included.

    python -m benchmarks.bench_learned_jpeg                 # targets 0.6, 0.7 bpp (two of learned_jpeg_demo's)
    python -m benchmarks.bench_learned_jpeg --bpps=0.6 --steps=50
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
    parser.add_argument("--bpps", default="0.6,0.7")
    parser.add_argument("--steps", type=int, default=learned_jpeg.SETTINGS["steps"])
    args = parser.parse_args()
    ds = make_camera(seed=0, n_train=2000, n_test=1000)
    pixels = 32 * 32
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; camera 2000 train / 1000 test")
    for quality in (10, 12, 14, 16, 20, 50):
        bits = learned_jpeg.payload_bits(ds.x_test, scaled_table(LUMA_TABLE, quality),
                                         scaled_table(CHROMA_TABLE, quality))
        print(f"Annex K q={quality:<3}           held-out payload {bits.mean() / pixels:.3f} bpp")
    for i, bpp in enumerate(float(v) for v in args.bpps.split(",")):
        t0 = time.perf_counter()
        state = learned_jpeg.learn_tables(ds.x_train, ds.y_train, bpp, steps=args.steps)
        seconds = time.perf_counter() - t0
        bits = learned_jpeg.payload_bits(ds.x_test, state["luma"], state["chroma"])
        print(f"learned target {bpp:<5g} {seconds:6.1f} s{' (with classifier + calibration)' if i == 0 else ''}: "
              f"payload {state['payload_bpp']:.3f} bpp on its images, held-out {bits.mean() / pixels:.3f} bpp, "
              f"λ {state['lam']:.3g}, proxy Spearman {state['spearman']:.3f} "
              f"(train subset), classifier acc {state['classifier_train_accuracy']:.3f} on its images, "
              f"{state['classifier_accuracy']:.3f} on the tables' images")
        print("  luma", state["luma"], "\n  chroma", state["chroma"])


if __name__ == "__main__":
    main()
