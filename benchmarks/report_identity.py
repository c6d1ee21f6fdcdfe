"""Digests of the reports of `demo_q_sweep`, `codec_demo` and `learned_jpeg_demo` at small settings, to show that a
restructuring changed no result: run it before and after, and compare.

    python -m benchmarks.report_identity --workdir /tmp/ri_before --out before.json
    python -m benchmarks.report_identity --workdir /tmp/ri_after --compare before.json

Each experiment runs through the library's entry points (`sweeps.sweep.run_sweep`, then `run.write_report`), shrunk
(fewer images, epochs, seeds and levels; learned JPEG with few steps) so the three take a few minutes on 2 cores.
What is hashed: every `report.md`, `analysis.json` and `facets.json`, and `results.csv`, of the sweep and of each
setting, without wall times (`train_seconds`, ...) and with the workdir's path replaced by a placeholder. Wall time
is printed beside the digests, not hashed. `--digest_only` hashes the sweeps already in `--workdir`.
"""

import argparse
import csv
import hashlib
import io
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Options of the learned tables small enough for a CPU minute (as tests/test_learned_jpeg.py's TINY).
TINY_LEARNED = dict(subset=192, classifier_steps=40, augment=1, steps=30, batch_size=32, lr=0.3, restarts=2,
                    fresh_steps=30, fresh_seeds=1)
CASES = {
    "demo_q_sweep": ["data.n_train=600", "data.n_test=400", "train.epochs=2", "grid.level=raw,5,20,50"],
    "codec_demo": ["data.n_train=400", "data.n_test=200", "train.epochs=1", "grid.seed=[0]",
                   "grid.reference_seed=[0,1]"],
    "learned_jpeg_demo": ["data.n_train=400", "data.n_test=200", "train.epochs=1", "grid.seed=[0]",
                          "grid.reference_seed=[0,1]"],
}
ONLY = {"codec_demo": {"codec": ["jax_jpeg", "webp"]}, "learned_jpeg_demo": {}}
WALL_COLUMNS = ("train_seconds",)


def _without_wall_time(value, workdir: str):
    """A JSON value without wall-time fields (keys naming seconds) and with the workdir's path as <workdir>."""
    if isinstance(value, dict):
        return {k: _without_wall_time(v, workdir) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_without_wall_time(v, workdir) for v in value]
    return value.replace(workdir, "<workdir>") if isinstance(value, str) else value


def _config(name: str):
    from helmjax import config as config_lib
    config = config_lib.apply_overrides(config_lib.load_experiment(name), CASES[name])
    if name != "learned_jpeg_demo":
        return config
    import ml_collections
    tree = config.to_dict()  # two levels per codec, the learned tables with few steps (keys the axis sets exist)
    tree["quantizer"].update(TINY_LEARNED)
    tree["grid"]["axes"] = [["codec", [{"quantizer.name": "jax_jpeg", "grid.level": ["raw", 10, 30]},
                                       {"quantizer.name": "learned_jpeg", "grid.level": ["raw", 0.5, 0.8],
                                        **{f"quantizer.{k}": v for k, v in TINY_LEARNED.items()}}]]]
    out = ml_collections.ConfigDict(tree)
    out.lock()
    return out


def _digest_csv(text: str) -> str:
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for column in WALL_COLUMNS:
            row.pop(column, None)
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def digests(sweep_dir: pathlib.Path) -> dict:
    workdir = str(sweep_dir.parent)
    out = {}
    for path in sorted(sweep_dir.rglob("*")):
        rel = str(path.relative_to(sweep_dir))
        if "/runs/" in f"/{rel}" or "/cache/" in f"/{rel}":
            continue
        if path.name in ("analysis.json", "facets.json"):
            value = _without_wall_time(json.loads(path.read_text()), workdir)
            out[rel] = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
        elif path.name == "report.md":
            out[rel] = hashlib.sha256(path.read_text().replace(workdir, "<workdir>").encode()).hexdigest()
        elif path.name == "results.csv":
            out[rel] = _digest_csv(path.read_text())
    return out


def run_case(name: str, workdir: pathlib.Path) -> dict:
    import run as cli
    from helmjax.sweeps import sweep
    config = _config(name)
    t0 = time.perf_counter()
    outcome = sweep.run_sweep(config, workdir, only=ONLY.get(name) or None, progress=False, log=lambda *_: None)
    cli.write_report(outcome.sweep_dir)
    return {"seconds": round(time.perf_counter() - t0, 1), "digests": digests(outcome.sweep_dir)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path)
    parser.add_argument("--compare", type=pathlib.Path, help="a JSON written by --out: exit 1 on any difference")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--digest_only", action="store_true", help="hash the sweeps already in --workdir")
    args = parser.parse_args()
    results = {}
    for name in args.cases.split(","):
        if args.digest_only:
            results[name] = {"seconds": None, "digests": digests(args.workdir / name)}
            continue
        results[name] = run_case(name, args.workdir)
        print(f"{name}: {len(results[name]['digests'])} files, {results[name]['seconds']} s", flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = [f"{name}/{rel}" for name in results for rel in set(results[name]["digests"]) |
                  set(before.get(name, {}).get("digests", {}))
                  if results[name]["digests"].get(rel) != before.get(name, {}).get("digests", {}).get(rel)]
        for name in results:
            print(f"{name}: {before.get(name, {}).get('seconds')} s before, {results[name]['seconds']} s now")
        print("identical" if not differ else "DIFFERENT: " + ", ".join(sorted(differ)))
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
