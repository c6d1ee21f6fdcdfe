"""A confirmation, not just a fit: does the storage law's budget answer hold when trained?

Fits the law on a finished storage sweep (`storage_demo`, `storage_cifar_small`: an axis `n` over
`data.train_fraction` and the epochs; `helmjax.reporting.storage`), picks the budget (among sizes spanning the
measured grid) where the law's optimum ("more images at a lower quality") beats both naive choices
(every image losslessly, as many as fit; every image at q*) by the widest margin with both predicted gains'
intervals above zero and no extrapolation in n, then trains the three choices with fresh seeds (a sweep with one
axis over them) and compares the measured accuracies: optimum minus each naive choice with a 95% bootstrap
interval over seeds and test examples (paired: the same test set), read as superiority (lower bound > 0) or
non-inferiority at δ = 1 point (lower bound > −1), beside the law's predictions.

    python -m benchmarks.confirm_storage [--experiment storage_demo] [--workdir runs] [--seeds 10,11,12,13,14]
                                         [--out confirm_storage.json]
"""

import argparse
import json
import math
import pathlib
import sys

import ml_collections
import numpy as np

from helmjax import config as config_lib, layout
from helmjax.analysis import storage_law
from helmjax.reporting import facets, storage
from helmjax.reporting.number_format import number
from helmjax.sweeps import sweep


def pick_budget(law: storage_law.StorageLaw, available: int, q_star) -> dict:
    """The budget whose answer beats the naive choices (both, or the lossless one where the sweep has no q*) by the
    largest smaller lower bound, among 60 sizes spanning the grid, with the optimum storing more images than the
    lossless choice and every choice inside the measured sizes. The bound may be below zero: the law then predicts
    a gain it cannot show, and the confirmation says so."""
    costs = storage_law.level_costs(law)
    sizes = [p.n for p in law.points]
    low = min(sizes) * min(p.file_bytes for p in costs.values())
    high = max(sizes) * max(p.file_bytes for p in costs.values())
    best = None
    for budget in np.geomspace(low, high, 60):
        answer = storage_law.answer_budget(law, float(budget), available, q_star)
        if answer["best"] is None or answer["best"].extrapolated or not answer["naive"]:
            continue
        if any(c.extrapolated or c.n < 1 for c in answer["naive"]):
            continue
        gains = [g["diff"] for g in answer["gain"]]
        if any(g is None for g in gains) or any(c.level == answer["best"].level for c in answer["naive"]):
            continue
        if answer["best"].n <= answer["naive"][0].n:  # not "more images at fewer bits" than lossless
            continue
        worst = min(g["ci"][0] for g in gains)
        if best is None or worst > best[0]:
            best = (worst, answer)
    return None if best is None else best[1]


def epochs_for(sizes, share: float) -> int:
    """The grid's epochs at the nearest size (log scale), so the confirmation trains like the grid did."""
    return min(sizes, key=lambda s: abs(math.log(s[0]) - math.log(share)))[1]


def grid_sizes(config) -> list:
    """(share, epochs) of each setting of the grid's size axis."""
    axis = next(values for name, values in config.grid.axes if name == "n")
    return [(dict(v)["data.train_fraction"], dict(v)["train.epochs"]) for v in axis]


def confirmation_config(answer: dict, available: int, seeds, experiment: str = "storage_demo"):
    grid = config_lib.load_experiment(experiment)
    sizes = grid_sizes(grid)
    c = grid.to_dict()
    choices = [answer["best"]] + list(answer["naive"])
    names = ["optimum"] + [{"lossless": "lossless", "all at q*": "q-star"}[c.name] for c in answer["naive"]]
    c["name"] = f"{experiment}_confirm"
    c["grid"]["seed"] = list(seeds)
    c["grid"]["axes"] = [["choice", [
        {"grid.level": [choice.level], "data.train_fraction": min(1.0, choice.n / available),
         "train.epochs": epochs_for(sizes, choice.n / available)} for choice in choices]]]  # the level names the setting
    c = ml_collections.ConfigDict(c)
    c.lock()
    return c, names


def compare(sweep_dir: pathlib.Path, rows, tags, resamples: int = 2000, seed: int = 0) -> list:
    """Optimum minus each naive choice: mean test accuracy over seeds, bootstrap over seeds and test examples."""
    correct = {}
    for tag in tags:
        runs = [r for r in rows if r.get("setting") == tag and r["status"] == "done"]
        correct[tag] = np.stack([layout.read_test_correct(layout.run_dir(layout.setting_dir(sweep_dir, tag),
                                                                          r["run"])) for r in runs])
    rng = np.random.default_rng(seed)
    m = correct[tags[0]].shape[1]
    draws = {tag: [] for tag in tags}
    for _ in range(resamples):
        examples = rng.integers(0, m, m)
        for tag in tags:
            c = correct[tag]
            draws[tag].append(c[rng.integers(0, len(c), len(c))][:, examples].mean())
    out = []
    for tag in tags[1:]:
        diff = np.array(draws[tags[0]]) - np.array(draws[tag])
        mean = float(correct[tags[0]].mean() - correct[tag].mean())
        ci = (float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5)))
        out.append({"against": tag, "diff": {"mean": mean, "ci": ci}, "superior": ci[0] > 0,
                    "not_inferior_by_1_point": ci[0] > -0.01})
    accuracy = {tag: {"mean": float(correct[tag].mean()), "seeds": int(len(correct[tag])),
                      "ci": (float(np.percentile(draws[tag], 2.5)), float(np.percentile(draws[tag], 97.5)))}
                for tag in tags}
    return out, accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="storage_demo")
    parser.add_argument("--workdir", default="runs")
    parser.add_argument("--seeds", default="10,11,12,13,14")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    grid_dir = workdir / args.experiment
    rows = layout.read_jsonl(grid_dir / layout.RESULTS_JSONL)
    if not rows:
        print(f"no {args.experiment} results in {grid_dir}; run `python run.py --experiment={args.experiment} "
              f"--workdir={workdir}` first", file=sys.stderr)
        return 2
    analysed = facets.analyze_settings(grid_dir)
    largest = max(rows, key=lambda r: r.get("n_train") or 0)["setting"]
    q_stars = {arch: r.q_star for s, a in analysed if s["tag"] == largest for arch, r in a.per_arch.items()}
    entry = storage.analyze(grid_dir, rows, q_stars, [], resamples=args.resamples)[0]
    law = entry["law"]
    print(f"law: alpha {law.parameter('alpha')}, beta {law.parameter('beta')}, LOO RMS {100 * law.loo_rms:.2f} "
          f"points vs noise {100 * law.noise_rms:.2f}; describes the data: {law.describes_data}")
    if not law.describes_data:
        print("the law does not describe the grid: nothing to confirm", file=sys.stderr)
        return 1
    answer = pick_budget(law, entry["available"], entry["q_star"])
    if answer is None:
        print("no budget in the measured range where the law's optimum stores more images than the lossless choice",
              file=sys.stderr)
        return 1
    config, names = confirmation_config(answer, entry["available"], [int(s) for s in args.seeds.split(",")],
                                        args.experiment)
    choices = [answer["best"]] + list(answer["naive"])
    print(f"budget {storage.size_text(answer['budget_bytes'])}: " + "; ".join(
        f"{name}: {c.n} images at {c.level} ({storage.size_text(c.stored_bytes)}), predicted "
        f"{number(1 - c.error['mean'], (1 - c.error['ci'][1], 1 - c.error['ci'][0]), scale=100)}%"
        for name, c in zip(names, choices)))
    outcome = sweep.run_sweep(config, workdir, progress=False)
    tags = [s["tag"] for s in json.loads((workdir / config.name / layout.SWEEP_FILE).read_text())["settings"]]
    gains, accuracy = compare(workdir / config.name, outcome.rows, tags)
    for name, tag, choice in zip(names, tags, choices):
        acc = accuracy[tag]
        print(f"  {name}: measured {number(acc['mean'], acc['ci'], scale=100)}% over {acc['seeds']} seeds; "
              f"predicted {number(1 - choice.error['mean'], (1 - choice.error['ci'][1], 1 - choice.error['ci'][0]), scale=100)}%")
    for predicted, name in zip(answer["gain"], names[1:]):
        print(f"  predicted optimum minus {name}: "
              f"{number(predicted['diff']['mean'], predicted['diff']['ci'], scale=100, sign=True)} points")
    for gain, name in zip(gains, names[1:]):
        verdict = ("superior" if gain["superior"] else
                   "not worse by more than 1 point" if gain["not_inferior_by_1_point"] else "not shown")
        print(f"  optimum minus {name}: {number(gain['diff']['mean'], gain['diff']['ci'], scale=100, sign=True)} "
              f"points: {verdict}")
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(storage.to_json([dict(entry, answers=[answer])])
                                                     + [{"measured": accuracy, "gains": gains, "tags": tags,
                                                         "names": names}], indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
