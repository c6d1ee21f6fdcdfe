"""Every accelerator figure in one call: devices, the JAX JPEG against Pillow, training and stacking speed, one
evaluation pass, a short real CIFAR-10 sweep with its report, and the 64x64 ResNet trained through the streamed
level-store pipeline (what an ImageNet-64 sweep costs per image).

Each part runs in its own subprocess with its own time limit (a hung compile costs that part, not the check), so
the whole check ends within `--budget` seconds (8 minutes by default, for one H200 lent for 15 minutes). Figures
are printed as they come and written as JSON to `--out` (default `$OUT/gpu_check.json` when $OUT is set, else
`runs/gpu_check/gpu_check.json`, which git ignores), the sweep's report beside it. `--smoke` runs the same code at
tiny sizes on CPU in under a minute (the tests run it).

    python -m benchmarks.gpu_check                  # on the accelerator (recipe: BENCHMARKS.md)
    python -m benchmarks.gpu_check --smoke          # on CPU, to check the script
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
from typing import Optional

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKDIR = pathlib.Path("runs", "gpu_check")  # where the JSON and report go without $OUT or --out
# Part -> (seconds allowed at full size, seconds allowed in --smoke).
PARTS = {"devices": (60, 30), "jpeg": (90, 40), "train": (120, 60), "stack": (120, 60), "sweep": (240, 120),
         "imagenet": (150, 60)}
SIZES = {  # full size, smoke size
    "jpeg": ({"small": (32, 4096), "large": (256, 256), "repeats": 5}, {"small": (32, 64), "large": (64, 8),
                                                                         "repeats": 2}),
    "train": ({"archs": ("A", "F"), "batch": 128, "steps": 30}, {"archs": ("A",), "batch": 16, "steps": 3}),
    "stack": ({"arch": "A", "members": (1, 4, 8, 16), "batch": 128, "steps": 10},
              {"arch": "A", "members": (1, 2), "batch": 8, "steps": 1}),
    # The 64x64 ResNet through the streamed pipeline: 300 steps of batch 128 at full size.
    "imagenet": ({"items": 4096, "size": 64, "batch": 128, "steps": 300, "width": 1.0, "workers": 4},
                 {"items": 64, "size": 32, "batch": 8, "steps": 2, "width": 0.125, "workers": 0}),
    # Full CIFAR-10 (the JPEG-75 tree of the shared data); the smoke run takes the camera demo's code path at a
    # fraction of its data, since only the script is being checked.
    "sweep": ({"experiment": "cifar_q_sweep", "levels": "raw,10,20,50", "archs": "A", "epochs": 3,
               "sets": ["data.source=jpeg"]},
              {"experiment": "demo_q_sweep", "levels": "raw,20", "archs": "A", "epochs": 1,
               "sets": ["data.n_train=240", "data.n_test=120", "grid.reference_seed=[]",
                        "train.max_steps_per_epoch=2"]}),
}


def _timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls after one warm-up (compilation) call."""
    import jax
    import numpy as np
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def part_devices(smoke: bool) -> dict:
    import flax
    import jax
    import jaxlib
    import optax
    import orbax.checkpoint
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "device_kind": jax.devices()[0].device_kind, "process_count": jax.process_count(),
            "versions": {"python": sys.version.split()[0], "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                         "flax": flax.__version__, "optax": optax.__version__,
                         "orbax": orbax.checkpoint.__version__}, "host_cores": os.cpu_count()}


def _pillow_round_trip(args) -> int:
    import io
    import numpy as np
    from PIL import Image
    images, quality = args
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, "JPEG", quality=quality)
        np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    return len(images)


def part_jpeg(smoke: bool) -> dict:
    """JAX JPEG exact round trip (images/s) against Pillow encode+decode on all host cores in parallel."""
    import multiprocessing

    import jax.numpy as jnp
    import numpy as np

    from helmjax.quantizers import jpeg
    sizes = SIZES["jpeg"][smoke]
    rng = np.random.default_rng(0)
    out = {}
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        for name in ("small", "large"):
            size, batch = sizes[name]
            smooth = rng.integers(0, 256, (batch, size // 4, size // 4, 3), dtype=np.uint8)
            images = np.repeat(np.repeat(smooth, 4, axis=1), 4, axis=2)  # blocky, JPEG-like content
            images = np.clip(images.astype(np.int16) + rng.integers(-8, 9, images.shape), 0, 255).astype(np.uint8)
            device_images = jnp.asarray(images)
            jax_s = _timed(lambda: jpeg.compress(device_images, 50), sizes["repeats"])
            chunks = [(c, 50) for c in np.array_split(images, cores) if len(c)]
            pool.map(_pillow_round_trip, chunks)  # warm-up: the workers import numpy and Pillow
            pillow_times = []
            for _ in range(sizes["repeats"]):
                start = time.perf_counter()
                pool.map(_pillow_round_trip, chunks)
                pillow_times.append(time.perf_counter() - start)
            pillow_s = float(np.median(pillow_times))
            out[f"{size}x{size}"] = {"batch": batch, "jax_images_per_s": batch / jax_s,
                                     "pillow_images_per_s": batch / pillow_s, "pillow_processes": cores,
                                     "jax_over_pillow": pillow_s / jax_s}
    return out


def part_sweep(smoke: bool, data_dir: Optional[str]) -> dict:
    """A short real sweep through run.py itself: its wall time, results and report summary."""
    import tempfile
    sizes = SIZES["sweep"][smoke]
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="gpu_check_sweep_"))
    command = [sys.executable, "run.py", f"--experiment={sizes['experiment']}", f"--workdir={workdir}",
               "--noprogress", "--set", f"grid.level={sizes['levels']}", "--set", f"grid.arch={sizes['archs']}",
               "--set", "grid.seed=[0]", "--set", f"train.epochs={sizes['epochs']}"]
    for item in sizes["sets"]:
        command += ["--set", item]
    env = dict(os.environ, **({"HELMJAX_DATA_DIR": data_dir} if data_dir else {}))
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"run.py exited {done.returncode}: {done.stderr[-1500:]}")
    sweep_dir = workdir / sizes["experiment"]
    rows = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    report = sweep_dir / "report" / "report.md"
    return {"command": " ".join(command[1:]), "wall_s": wall, "stdout_tail": done.stdout[-3000:],
            "report_md": report.read_text() if report.is_file() else None,
            "rows": [{k: r.get(k) for k in ("run", "level", "arch", "test_acc", "best_epoch", "train_seconds",
                                            "bpp_payload")} for r in rows]}


def run_part(name: str, smoke: bool, data_dir: Optional[str]) -> dict:
    if name == "devices":
        return part_devices(smoke)
    if name == "jpeg":
        return part_jpeg(smoke)
    if name == "train":
        from benchmarks import gpu_check_training
        return gpu_check_training.part_train(SIZES["train"][smoke])
    if name == "stack":
        from benchmarks import gpu_check_training
        return gpu_check_training.part_stack(SIZES["stack"][smoke])
    if name == "sweep":
        return part_sweep(smoke, data_dir)
    if name == "imagenet":
        from benchmarks import gpu_check_training
        return gpu_check_training.part_imagenet(SIZES["imagenet"][smoke])
    raise ValueError(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, under a minute")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--out", default=None,
                        help=f"where to write the JSON (default $OUT/gpu_check.json, else {WORKDIR}/gpu_check.json)")
    parser.add_argument("--data_dir", default=None, help="HELMJAX_DATA_DIR for the sweep part")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part, print JSON
    args = parser.parse_args(argv)
    if args.smoke:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.part:
        print("GPU_CHECK_JSON " + json.dumps(run_part(args.part, args.smoke, args.data_dir), default=str))
        return 0
    out_path = pathlib.Path(args.out or pathlib.Path(os.environ.get("OUT", WORKDIR)) / "gpu_check.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = {"smoke": args.smoke, "parts": {}}
    for name in args.parts.split(","):
        limit = PARTS[name][args.smoke]
        command = [sys.executable, "-m", "benchmarks.gpu_check", f"--part={name}"] + ["--smoke"] * args.smoke \
            + ([f"--data_dir={args.data_dir}"] if args.data_dir else [])
        start = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit)
            line = next((l for l in done.stdout.splitlines() if l.startswith("GPU_CHECK_JSON ")), None)
            outcome = json.loads(line[len("GPU_CHECK_JSON "):]) if line else \
                {"error": f"exit {done.returncode}: {done.stderr[-1500:]}"}
        except subprocess.TimeoutExpired:
            outcome = {"error": f"timed out after {limit} s"}
        outcome["part_seconds"] = round(time.perf_counter() - start, 1)
        if outcome.get("report_md"):  # the sweep's report comes back as its own file
            out_path.with_name("gpu_check_report.md").write_text(outcome.pop("report_md"))
        results["parts"][name] = outcome
        print(f"== {name} ({outcome['part_seconds']} s)\n{json.dumps(outcome, indent=1, default=str)}", flush=True)
        out_path.write_text(json.dumps(results, indent=1, default=str))  # what is done so far survives a kill
    print(f"written: {out_path}")
    return 0 if all("error" not in p for p in results["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
