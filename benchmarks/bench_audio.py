"""Prints audio throughput: MP3 encode+decode clips/s (1 and N processes), log-mel in JAX vs numpy float64.

    python benchmarks/bench_audio.py            # 96 clips of 2 s at 44.1 kHz (the paper's size)
    python benchmarks/bench_audio.py --quick    # 12 clips, to check the script works
"""

import argparse
import time

import numpy as np

from helmjax import features
from helmjax.data import guitar_fx
from helmjax.quantizers import mp3


def reference_log_mel(waveform, sample_rate, n_mels=96, n_fft=2048, hop_length=512, top_db=80.0):
    """The float64 numpy reference of tests/test_features.py (vectorised over frames)."""
    x = np.pad(np.asarray(waveform, np.float64), n_fft // 2)
    frames = 1 + (len(x) - n_fft) // hop_length
    index = hop_length * np.arange(frames)[:, None] + np.arange(n_fft)[None, :]
    power = np.abs(np.fft.rfft(x[index] * features.hann_window(n_fft), axis=1)) ** 2
    db = 10 * np.log10(np.maximum(features.mel_filterbank(sample_rate, n_fft, n_mels) @ power.T, 1e-10))
    return np.maximum(db, db.max() - top_db)


def timed(fn, repeats=1):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--kbps", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="12 clips, one bitrate")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.kbps = 12, [32]
    x = np.stack([guitar_fx.make_clip(0, i % 12, i // 12, args.sample_rate, args.seconds) for i in range(args.clips)])
    print(f"{len(x)} clips of {args.seconds} s at {args.sample_rate} Hz")

    for kbps in args.kbps:
        mp3.compress(x[:2], kbps, sample_rate=args.sample_rate, workers=1)  # warm the delay probe
        for workers in sorted({1, args.workers}):
            seconds = timed(lambda: mp3.compress(x, kbps, sample_rate=args.sample_rate, workers=workers))
            print(f"mp3 {kbps:>3} kbps encode+decode+align, {workers} process(es): {len(x) / seconds:8.1f} clips/s")

    features.log_mel_spectrogram(x, args.sample_rate)  # compile
    seconds = timed(lambda: features.log_mel_spectrogram(x, args.sample_rate), repeats=3)
    print(f"log-mel JAX (jit, batch 64, 96 mels, n_fft 2048, hop 512): {len(x) / seconds:8.1f} clips/s")
    seconds = timed(lambda: [reference_log_mel(clip, args.sample_rate) for clip in x])
    print(f"log-mel numpy float64 reference:                          {len(x) / seconds:8.1f} clips/s")


if __name__ == "__main__":
    main()
