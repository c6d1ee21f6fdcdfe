"""Wall time and peak memory of `python run.py` (the embedded demo) in a fresh workdir.

    python benchmarks/bench_demo.py [--experiment=demo_q_sweep] [--set ...]
"""

import argparse
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", default="demo_q_sweep")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, str(ROOT / "run.py"), f"--experiment={args.experiment}", f"--workdir={workdir}",
               "--noprogress"] + [f"--set={s}" for s in args.set]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(out.stdout)
    if out.returncode:
        print(out.stderr[-3000:])
    print(f"{args.experiment}: exit {out.returncode}, wall {wall:.1f} s, peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
