"""How often is the analysis wrong? Simulated sweeps from known truths, analysed by the code the report uses.

Each simulated sweep draws a test set (per-example latent difficulty, shared by every run, so runs are paired over
examples as in a real sweep), and per (level, seed) a run whose population accuracy is the truth plus seed noise;
a run gets example i right when a * z_i + e_ri < θ_r (θ_r set so the population accuracy is exact). The groups go
through `per_arch.analyze_arch`, the function `analyze` calls. Per configuration (truth x seeds x seed noise) it
prints:

- false pass: share of sweeps where some level whose true drop exceeds δ was called "not worse" (familywise
  error; goal at most 1 - confidence), and the same per level;
- power: share of sweeps whose q* is the true boundary (the lowest level from which every level's true drop is
  at most δ);
- knee called: share of sweeps called "knee" (on a flat truth: goal at most 5%); knee coverage: share whose
  knee bracket (the sampled levels around the crossing, over replicates) holds the true knee (where the
  continuous truth falls δ below its plateau; a censored bracket holds anything below its top);
- noise-bit coverage: per-item lossless and payload bits drawn with known population means; share of sweeps
  whose interval of lossless - payload at q* holds the true difference.
Each rate is followed by its Monte-Carlo standard error.

    python -m benchmarks.calibrate_analysis [--sweeps 100] [--resamples 400] [--seed 0]
"""

import argparse
import dataclasses
import math
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy import stats

from helmjax.analysis import bootstrap, contrasts, findings, per_arch, rate_intervals
from helmjax.analysis.contrasts import Group
from helmjax.analysis.levels import LevelScale
from helmjax.analysis.sweep_files import RAW
from helmjax.quantizers import registry

LEVELS = (1, 5, 10, 15, 20, 25, 50, 75, 100)
PLATEAU, FLOOR = 0.80, 0.10
LATENT_WEIGHT = 2.0  # a: how strongly runs agree on which examples are hard


def _hinge(knee: float, slope: float):
    return lambda q: max(FLOOR, PLATEAU + slope * min(0.0, math.log(q) - math.log(knee)))


def _logistic(knee: float, width: float):
    return lambda q: FLOOR + (PLATEAU - FLOOR) / (1.0 + math.exp(-(math.log(q) - math.log(knee)) / width))


TRUTHS = {
    "flat": lambda q: PLATEAU,
    "hinge": _hinge(20.0, 0.15),
    "logistic": _logistic(8.0, 0.4),
    "gentle": _hinge(50.0, 0.032 / math.log(5.0)),  # 3.2 points down at q=10
}


@dataclasses.dataclass(frozen=True)
class Config:
    truth: str
    seeds: int
    seed_noise: float  # sd of a run's accuracy over seeds (fraction)
    reference_seeds: int = 0  # extra seeds at raw
    num_test: int = 2000
    # "constant": the same seed sd at every level; "binomial": sd ∝ sqrt(p(1 - p)), `seed_noise` at the plateau
    # (runs spread less near the ceiling, as the noise ladder's real runs do)
    seed_model: str = "constant"

    @property
    def label(self) -> str:
        extra = f"+{self.reference_seeds} ref" if self.reference_seeds else ""
        model = ", binomial seed sd" if self.seed_model == "binomial" else ""
        return (f"{self.truth}, {self.seeds}{extra} seeds, {100 * self.seed_noise:.1f} pt{model}, "
                f"{self.num_test} test")


def _truth_at(truth, level) -> float:
    return PLATEAU if level == RAW else truth(level)


def true_boundary(truth, margin: float):
    """The lowest level from which every level's true drop is at most the margin; None if the top fails."""
    best = None
    for level in sorted(LEVELS, reverse=True):
        if PLATEAU - truth(level) > margin:
            break
        best = level
    return best


def true_knee(truth, margin: float) -> Optional[float]:
    """Where the continuous truth falls δ below its plateau (the highest such quality on a fine grid); None if
    never. The reported bracket (the sampled levels around the fit's crossing) should hold it."""
    qualities = np.geomspace(LEVELS[0], LEVELS[-1], 4001)
    below = [q for q in qualities if truth(q) < PLATEAU - margin]
    return float(max(below)) if below else None


def simulate_groups(rng: np.random.Generator, config: Config, resamples: int) -> Dict[tuple, Group]:
    truth = TRUTHS[config.truth]
    n = config.num_test
    latent = rng.standard_normal(n)
    scale = math.sqrt(LATENT_WEIGHT ** 2 + 1.0)
    runs = []  # (level, seed, correct)
    for level in (RAW,) + LEVELS:
        seeds = config.seeds + (config.reference_seeds if level == RAW else 0)
        for seed in range(seeds):
            mean = _truth_at(truth, level)
            sd = config.seed_noise * (math.sqrt(mean * (1 - mean) / (PLATEAU * (1 - PLATEAU)))
                                      if config.seed_model == "binomial" else 1.0)
            p = float(np.clip(mean + rng.normal(0.0, sd), 0.01, 0.99))
            threshold = stats.norm.ppf(p) * scale
            correct = LATENT_WEIGHT * latent + rng.standard_normal(n) < threshold
            runs.append((level, seed, correct))
    counts = bootstrap.example_counts(rng, n, resamples)
    replicates = bootstrap.run_replicates(np.stack([c for _, _, c in runs]), counts).astype(np.float64)
    groups: Dict[tuple, Group] = {}
    for level in (RAW,) + LEVELS:
        columns = [k for k, (lv, _, _) in enumerate(runs) if lv == level]
        groups[("A", level)] = Group(seeds=tuple(runs[k][1] for k in columns),
                                     acc=np.array([runs[k][2].mean() for k in columns]),
                                     replicates=replicates[:, columns],
                                     correct=np.stack([runs[k][2] for k in columns]))
    contrasts.share_pooled_variance(list(groups.values()))
    return groups


def simulate_bits_not_needed(rng: np.random.Generator, q_star, settings: dict, items: int = 500) -> Optional[bool]:
    """Does the interval of lossless - payload bits at q* hold the true population difference?"""
    if q_star is None:
        return None
    sigma = 0.3
    complexity = rng.lognormal(0.0, sigma, items)
    lossless_bpp, payload_bpp = 14.0, 0.05 + 4.0 * (q_star / 100.0) ** 2 + 0.6 * q_star / 100.0
    lossless = lossless_bpp * complexity * rng.lognormal(0.0, 0.05, items)
    payload = payload_bpp * complexity * rng.lognormal(0.0, 0.2, items)
    true = math.exp(sigma ** 2 / 2) * (lossless_bpp * math.exp(0.05 ** 2 / 2) - payload_bpp * math.exp(0.2 ** 2 / 2))
    summary = rate_intervals.mean_with_interval(rng, rate_intervals.paired_difference(lossless, payload),
                                                settings["resamples"], settings["confidence"])
    return summary["ci"][0] <= true <= summary["ci"][1]


def _rate(hits: List[bool]) -> tuple:
    hits = [h for h in hits if h is not None]
    if not hits:
        return (math.nan, math.nan, 0)
    p = float(np.mean(hits))
    return (p, math.sqrt(max(p * (1 - p), 1e-12) / len(hits)), len(hits))


def calibrate(configs: Sequence[Config], sweeps: int, resamples: int, seed: int, margin_points: float = 1.0,
              confidence: float = 0.95) -> List[dict]:
    """One row of rates per configuration (see the module docstring)."""
    settings = findings.make_settings({}, resamples, confidence, margin_points, seed)
    scale = LevelScale(registry.get("pillow_jpeg").describe(LEVELS))  # the simulated sweeps are JPEG quality sweeps
    margin = settings["margin"]
    rows = []
    for index, config in enumerate(configs):
        rng = np.random.default_rng([seed, index])
        truth = TRUTHS[config.truth]
        boundary, knee = true_boundary(truth, margin), true_knee(truth, margin)
        bad_levels = [q for q in LEVELS if PLATEAU - truth(q) > margin]
        false_pass, power, knee_called, knee_covered, noise_covered, exploratory = [], [], [], [], [], []
        for _ in range(sweeps):
            groups = simulate_groups(rng, config, resamples)
            result = per_arch.analyze_arch("A", None, groups, scale, [], None, settings, rng, [])
            passed = [t["level"] for t in result.tests if t["passed"]]
            if bad_levels:
                false_pass.append(any(q in bad_levels for q in passed))
            power.append(result.q_star == boundary)
            called = result.knee is not None and result.knee["shape"] == "knee"
            knee_called.append(called)
            if knee is not None and result.knee is not None:
                low, high = result.knee["bracket"]
                knee_covered.append((low is None or low <= knee) and high is not None and knee <= high)
            noise_covered.append(simulate_bits_not_needed(rng, result.q_star, settings))
            exploratory.append(not result.seeds_covered)
        rows.append({"config": config, "boundary": boundary, "knee": knee, "false_pass": _rate(false_pass),
                     "power": _rate(power), "knee_called": _rate(knee_called), "knee_coverage": _rate(knee_covered),
                     "noise_coverage": _rate(noise_covered), "exploratory": float(np.mean(exploratory))})
    return rows


def default_configs(seed_counts=(1, 3, 5), noises=(0.004, 0.015), truths=tuple(TRUTHS)) -> List[Config]:
    configs = [Config(truth, seeds, noise) for truth in truths for seeds in seed_counts for noise in noises]
    configs += [Config(truth, 1, noise, reference_seeds=4) for truth in truths for noise in noises]
    configs += [Config(truth, seeds, noises[-1], num_test=10000) for truth in truths for seeds in seed_counts[1:]]
    configs += [Config(truth, seeds, noises[-1], seed_model="binomial") for truth in truths
                for seeds in seed_counts[1:]]
    configs += [Config(truth, 1, noises[-1], reference_seeds=4, seed_model="binomial") for truth in truths]
    return configs


def ceiling_configs() -> List[Config]:
    """Near the ceiling (run with `--plateau 0.985 --floor 0.5`): one seed per level and 2 more at raw, or 3 seeds,
    0.3 points of seed noise, constant or binomial. (Simulated accuracies are clipped at 99%, so the plateau stays
    below it.)"""
    configs = [Config(t, 1, 0.003, reference_seeds=2, seed_model=m) for t in ("flat", "hinge", "gentle")
               for m in ("constant", "binomial")]
    return configs + [Config(t, 3, 0.003, seed_model=m) for t in ("hinge", "gentle") for m in ("constant", "binomial")]


def _fmt(rate: tuple) -> str:
    p, se, n = rate
    return "—" if n == 0 else f"{100 * p:5.1f} ± {100 * se:3.1f}"


def format_table(rows: List[dict]) -> str:
    lines = ["| truth, seeds, seed noise, test examples | true q* | true knee | false pass % | power % | knee called % | "
             "knee coverage % | noise-bit coverage % |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        knee = "none" if row["knee"] is None else f"{row['knee']:.1f}"
        lines.append(f"| {row['config'].label} | {row['boundary']} | {knee} | {_fmt(row['false_pass'])} | "
                     f"{_fmt(row['power'])} | {_fmt(row['knee_called'])} | {_fmt(row['knee_coverage'])} | "
                     f"{_fmt(row['noise_coverage'])} |")
    return "\n".join(lines)


def main():
    global PLATEAU, FLOOR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=100, help="simulated sweeps per configuration")
    parser.add_argument("--resamples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plateau", type=float, default=PLATEAU, help="the truths' top accuracy")
    parser.add_argument("--floor", type=float, default=FLOOR, help="the truths' chance floor")
    parser.add_argument("--ceiling", action="store_true", help="the near-ceiling configurations (ceiling_configs)")
    args = parser.parse_args()
    PLATEAU, FLOOR = args.plateau, args.floor  # the truths read them when called
    configs = ceiling_configs() if args.ceiling else default_configs()
    start = time.perf_counter()
    rows = calibrate(configs, args.sweeps, args.resamples, args.seed)
    print(format_table(rows))
    print(f"\n{len(configs) * args.sweeps} simulated sweeps, {args.resamples} resamples each, "
          f"{time.perf_counter() - start:.0f} s; rates ± Monte-Carlo standard error; δ = 1 point, one-sided 95%; "
          f"plateau {PLATEAU:g}, floor {FLOOR:g}")


if __name__ == "__main__":
    main()
