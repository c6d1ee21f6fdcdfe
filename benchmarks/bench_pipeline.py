"""The level store + grain pipeline against the in-memory path it replaced, on an experiment's own data and model.

Per experiment (default: the demo and cifar_q_sweep_small) and one JPEG level it prints
- preparing the level: in memory (`quantized_data.quantize`: encode + decode, a JAX codec compiled beforehand)
  against the sweep's path (`level_data.Levels`: the train and test stores built, then decoded once into memory),
  cold (no store yet) and warm (the stores there, as for every later run and every resumed sweep);
- training images/s over one epoch of the experiment's first architecture (a run as the sweep trains it,
  `loop.train_runs`), interleaved round by round: host arrays (the old path), the store decoded into memory (the
  sweep's path below `train.in_memory_bytes`) and the store streamed (decoded batch by batch, in this process and
  in 2 grain workers), with each one's median and its ratio to the arrays' per round.

    python benchmarks/bench_pipeline.py [--experiments demo_q_sweep,cifar_q_sweep_small] [--rounds 3]
"""

import argparse
import dataclasses
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model  # noqa: E402
from helmjax import config as config_lib  # noqa: E402
from helmjax.sweeps.level_data import Levels  # noqa: E402
from helmjax.sweeps.plan import make_plan  # noqa: E402
from helmjax.sweeps.quantized_data import fingerprint, quantize  # noqa: E402
from helmjax.training.loop import train_runs  # noqa: E402
from helmjax.training.pipeline import Split, SplitData, StoreSource  # noqa: E402
from helmjax.training.trainer import Trainer  # noqa: E402




def _levels(setting, ds, workdir: pathlib.Path, train=None) -> Levels:
    sweep_dir = workdir / setting.experiment
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return Levels(setting.quantizer, setting.data, setting.features, ds, sweep_dir, fingerprint(ds),
                  lambda *_: None, {}, train or setting.train)


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench(experiment: str, level, rounds: int, workdir: pathlib.Path):
    config = config_lib.load_experiment(experiment)
    setting = make_plan(config, workdir=workdir).settings[0]
    ds = setting.data.load(workdir / experiment)
    print(f"\n{experiment}: {len(ds.x_train)} train / {len(ds.x_test)} test items of {ds.x_train.shape[1:]}, "
          f"{setting.quantizer.spec.name} at {level}")
    levels = _levels(setting, ds, workdir)
    quantize(ds, level, setting.quantizer.spec, setting.quantizer.options)  # compiles a JAX codec: not timed
    old, t_old = _timed(lambda: quantize(ds, level, setting.quantizer.spec, setting.quantizer.options))
    arrays = SplitData(old.x_train[levels.train_idx], ds.y_train[levels.train_idx].astype("int32"),
                       old.x_train[levels.val_idx], ds.y_train[levels.val_idx].astype("int32"), old.x_test,
                       ds.y_test.astype("int32"))
    (in_memory, _), t_cold = _timed(lambda: levels.get(level))
    (_, _), t_warm = _timed(lambda: _levels(setting, ds, workdir).get(level))
    print(f"  preparing the level: in memory {t_old:.2f} s; stores built and decoded {t_cold:.2f} s "
          f"({t_cold / t_old:.2f}x); stores there, decoded {t_warm:.2f} s ({t_warm / t_old:.2f}x)")
    train_store, test_store = levels.store(level, "train"), levels.store(level, "test")
    streamed = Split(StoreSource(train_store, levels.train_idx), StoreSource(train_store, levels.val_idx),
                     StoreSource(test_store))
    arch = setting.runs[0].arch
    one_epoch = dataclasses.replace(setting.train, epochs=1)
    ways = {"arrays (old)": (arrays, one_epoch), "store, in memory": (in_memory, one_epoch),
            "store, streamed": (streamed, dataclasses.replace(one_epoch, in_memory_bytes=0)),
            "store, streamed, 2 workers": (streamed, dataclasses.replace(one_epoch, in_memory_bytes=0,
                                                                         data_workers=2))}
    trainers = {name: Trainer(setting.model.build(arch, ds.num_classes), train, setting.data.modality == "image")
                for name, (_, train) in ways.items()}
    rates = {name: [] for name in ways}
    for r in range(rounds + 1):  # round 0 compiles
        order = list(ways) if r % 2 else list(reversed(ways))
        for name in order:
            data, _ = ways[name]
            with tempfile.TemporaryDirectory(dir=workdir) as run_dir:
                [result] = train_runs([pathlib.Path(run_dir)], trainers[name], [data], [r], 1)
            if r:
                seen = (len(levels.train_idx) // setting.train.batch_size) * setting.train.batch_size
                rates[name].append(seen / result["train_seconds"])
    base = rates["arrays (old)"]
    for name, values in rates.items():
        ratios = [v / b for v, b in zip(values, base)]
        print(f"  train {arch}, one epoch, {name}: {statistics.median(values):.0f} images/s "
              f"(ratio to arrays {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", default="demo_q_sweep,cifar_q_sweep_small")
    parser.add_argument("--level", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}")
    with tempfile.TemporaryDirectory() as workdir:
        for experiment in args.experiments.split(","):
            bench(experiment, args.level, args.rounds, pathlib.Path(workdir))


if __name__ == "__main__":
    main()
