"""`python run.py --plan`: what a sweep's design can show before anything is trained, as a list of sections.

`plan_sections(config, workdir)` resolves the config into the power planner's design (`analysis.power.Design`) and
noise (a pilot sweep's, `analysis.pilot`, when the config's sweep directory holds finished runs; stated defaults
otherwise) and returns titled sections of text lines; `format_sections` prints them. Other parts of the plan (a
run's compute cost) are more sections in the same list.
"""

import dataclasses
import math
import pathlib
import textwrap
from typing import List, Optional, Sequence, Tuple

from helmjax.analysis import power
from helmjax.analysis.contrasts import DEFAULT_NUM_TEST
from helmjax.analysis.pilot import Pilot, read_pilot
from helmjax.errors import UserError
from helmjax.layout import RAW

DEFAULT_NOISE = power.Noise(accuracy=0.90, train_sd=0.005, example_share=1.0)
# Test-set sizes of data sets whose configs do not say (`data.n_test` does for the procedural ones).
KNOWN_TEST_SIZES = {"cifar10": 10000, "cifar10_subset": 1017}
WIDTH = 110  # printed line width


@dataclasses.dataclass(frozen=True)
class Section:
    title: str
    lines: Tuple[str, ...]

    def text(self) -> str:
        return "\n".join([self.title] + [textwrap.fill(line, WIDTH, initial_indent="  ", subsequent_indent="    ",
                                                        break_long_words=False, break_on_hyphens=False)
                                          for line in self.lines])


def format_sections(sections: Sequence[Section]) -> str:
    return "\n\n".join(section.text() for section in sections)


MODEL_SECTION = Section("What the model holds", (
    "in: training-seed noise and each run's own luck on the test examples, pooled over the arch's levels as the "
    "analysis pools them (quasi-binomial, scaling with p(1 - p); a group with 2+ seeds uses its own spread when "
    "larger), the analysis' lower bound (Wilson/MOVER at the t quantile of the Welch df)",
    "out: the test set as a sample of all examples (shared by every level, so a paired difference nearly "
    "cancels it), seeds paired across levels, failed runs and outlying reference runs, differences between archs "
    "(one noise for all, a pilot's pooled over its archs)",
))


@dataclasses.dataclass(frozen=True)
class Inputs:
    """The planner's inputs for one setting of the grid, with where each came from (for the printed text)."""
    design: power.Design
    noise: power.Noise
    margin: float  # δ, a fraction
    archs: Tuple[str, ...]
    reference: str  # "raw" or the least compressed level
    test_source: str
    pilot: Optional[Pilot]


def plan_sections(config, workdir: pathlib.Path) -> List[Section]:
    """The power plan of `config`'s sweep; a pilot is the config's own sweep directory in `workdir`, if it has
    finished runs. One block of sections per distinct design when grid axes give settings that differ."""
    from helmjax.sweeps import identity
    from helmjax.sweeps.plan import make_plan
    try:
        sweep_dir, mismatch = identity.resolve_sweep_dir(pathlib.Path(workdir), config), None
    except identity.ConfigMismatch as e:  # the directory holds another config: no pilot of this one
        sweep_dir, mismatch = None, str(e).split(";")[0]
    plan = make_plan(config, sweep_dir, workdir=pathlib.Path(workdir))
    blocks = []  # (labels, inputs)
    for setting in plan.settings:
        inputs = resolve_inputs(setting.config, None if mismatch else read_pilot(setting.sweep_dir))
        for labels, seen in blocks:
            if seen == inputs:
                labels.append(setting.label)
                break
        else:
            blocks.append(([setting.label], inputs))
    head = [f"experiment {config.name}: no run is trained by --plan"]
    if mismatch:
        head.append(f"no pilot: {mismatch}")
    sections = [Section("Power plan", tuple(head))]
    for labels, inputs in blocks:
        prefix = f"[{', '.join(labels)}] " if len(blocks) > 1 else ""
        sections += power_sections(inputs, prefix)
    return sections + [MODEL_SECTION]


def resolve_inputs(config: dict, pilot: Optional[Pilot]) -> Inputs:
    """The design and noise of one setting's config (a plain tree) and its pilot, if any."""
    grid, analysis = config["grid"], config.get("analysis") or {}
    levels = list(grid["level"])
    seeds = list(grid["seed"])
    has_raw = RAW in levels
    if has_raw:
        reference_seeds = len(seeds) + len([s for s in grid.get("reference_seed") or [] if s not in seeds])
    else:
        reference_seeds = len(seeds)
    compressed = len(levels) - 1  # the reference is raw or, without it, the least compressed level
    if compressed < 1:
        raise UserError("the grid has one level: nothing to compare, no power to plan; add levels to grid.level")
    num_test, test_source = _test_size(config, pilot)
    noise = DEFAULT_NOISE
    if pilot is not None:
        noise = dataclasses.replace(noise, accuracy=pilot.accuracy)
        if pilot.run_var is not None:
            share = pilot.example_share if pilot.example_share is not None else noise.example_share
            noise = dataclasses.replace(noise, example_share=share)
            own = noise.own_var(pilot.num_test or num_test)  # the pilot's part of its spread from the examples
            noise = dataclasses.replace(noise, train_sd=math.sqrt(max(pilot.run_var - own, 0.0)))
    design = power.Design(level_seeds=len(seeds), reference_seeds=reference_seeds, levels=compressed,
                          num_test=num_test, confidence=float(analysis.get("confidence", 0.95)))
    return Inputs(design=design, noise=noise, margin=float(analysis.get("margin", 1.0)) / 100.0,
                  archs=tuple(grid["arch"]), reference=RAW if has_raw else "the least compressed level",
                  test_source=test_source, pilot=pilot)


def _test_size(config: dict, pilot: Optional[Pilot]) -> Tuple[int, str]:
    data = config.get("data") or {}
    if pilot is not None and pilot.num_test:
        return pilot.num_test, "the pilot's runs"
    if data.get("n_test"):
        return int(data["n_test"]), "data.n_test"
    if data.get("name") in KNOWN_TEST_SIZES:
        return KNOWN_TEST_SIZES[data["name"]], f"the {data['name']} test split"
    return DEFAULT_NUM_TEST, "assumed: the config does not say"


def points(fraction: float, digits: int = 3) -> str:
    """A fraction of accuracy in points, to `digits` significant digits: 0.0415 -> "4.15", 0.01 -> "1"."""
    return "n/a" if not math.isfinite(fraction) else f"{100.0 * fraction:.{digits}g}"


def in_points(fraction: float, digits: int = 3) -> str:
    """ "1 point", "0.5 points" """
    text = points(fraction, digits)
    return f"{text} point" if text == "1" else f"{text} points"


def power_sections(inputs: Inputs, prefix: str = "") -> List[Section]:
    """Design, noise, power and what is needed for the configured δ."""
    design, noise, margin, pilot = inputs.design, inputs.noise, inputs.margin, inputs.pilot
    n, p = design.num_test, noise.accuracy
    extra = design.reference_seeds - design.level_seeds
    pooled = design.pooled_df
    sections = [Section(f"{prefix}Design (per arch: {', '.join(inputs.archs)})", (
        f"{design.levels} compressed levels x {design.level_seeds} seed(s) (grid.seed); the reference "
        f"({inputs.reference}) has {design.reference_seeds} seed(s)"
        + (" (grid.seed + grid.reference_seed)" if extra else ""),
        f"test examples per run: {n} ({inputs.test_source})",
        f"margin δ = {in_points(margin)} (analysis.margin), one-sided {design.confidence:.0%} "
        f"(analysis.confidence)",
        f"seed spread pooled over the arch's {design.levels + 1} groups: {pooled} degrees of freedom"
        + ("" if design.seeds_covered else " (one seed everywhere: the analysis is exploratory, its interval "
                                          "leaves training noise out)"),
    ))]
    if pilot is not None:
        source = f"pilot {pilot.sweep_dir}: {pilot.runs} finished runs"
        acc_line = f"expected accuracy {points(p)}% (the reference's mean in the {source})"
    else:
        source = None
        acc_line = f"expected accuracy {points(p)}% (assumed: no pilot sweep with finished runs; a default)"
    measured = pilot is not None and pilot.run_var is not None
    run_sd = math.sqrt(noise.run_var(n))
    noise_lines = [acc_line]
    if measured:
        noise_lines.append(f"seed sd of a run's test accuracy {in_points(math.sqrt(pilot.run_var), 2)} (measured: "
                           f"the pilot's spread over seeds, {pilot.df} degrees of freedom)")
        split = ("measured from the runs' per-example correctness" if pilot.example_share is not None
                 else "assumed binomial (the pilot saved no per-example correctness), the most it can be")
        noise_lines.append(f"of it, each run's own luck on the test examples: κ = {noise.example_share:.2f} of "
                           f"binomial ({split}); training noise {in_points(noise.train_sd, 2)}")
    else:
        why = "the pilot's levels have one seed each" if pilot is not None else "no pilot"
        noise_lines.append(f"training-seed sd {in_points(noise.train_sd, 2)} (assumed default: {why})")
        noise_lines.append(f"each run's own luck on {n} test examples: sd {in_points(math.sqrt(noise.own_var(n)), 2)} "
                           f"(assumed binomial, κ = {noise.example_share:g}: the most it can be)")
    noise_lines.append(f"=> a run's test accuracy varies by {in_points(run_sd, 2)} between seeds; level minus "
                       f"reference by {in_points(power.difference_sd(design, noise), 2)}")
    sections.append(Section(f"{prefix}Noise", tuple(noise_lines)))

    same, half = power.smallest_margin(design, noise, 0.0), power.smallest_margin(design, noise, 0.5)
    power_lines = [
        f"smallest δ shown with {power.TARGET_POWER:.0%} power: {in_points(same)} if the level loses nothing, "
        f"{in_points(half)} if it loses δ/2",
        f"at δ = {in_points(margin)}: {power.power(design, noise, margin):.0%} if the level loses nothing, "
        f"{power.power(design, noise, margin, margin / 2):.0%} if it loses {in_points(margin / 2)}",
        "a level is reached only if every less compressed level passes too (the fixed sequence), so q* lands "
        "that deep less often than one level passes"]
    if not design.seeds_covered:
        power_lines.append("exploratory: with one seed everywhere the interval leaves training noise out, so this "
                           "test also passes levels that lose more than δ more often than its nominal rate; give the "
                           "reference more seeds (grid.reference_seed) to make it a measurement")
    sections.append(Section(f"{prefix}Power (per level, against the reference)", tuple(power_lines)))

    seeds = power.seeds_needed(design, noise, margin)
    seed_line = (f"seeds per level: more than {power.MAX_SEEDS}" if seeds is None else
                 f"seeds per level: {seeds}" + (f" (the reference keeping its {extra} extra: {seeds + extra})"
                                                if extra else ""))
    examples = power.examples_needed(design, noise, margin) if design.seeds_covered else None
    at_seeds = f"test examples at {design.level_seeds} seed(s) per level"
    if not design.seeds_covered:
        example_line = f"{at_seeds}: not planned (an exploratory design; add seeds first)"
    elif examples is None:
        example_line = f"{at_seeds}: none is enough (training noise alone is too large)"
    else:
        example_line = f"{at_seeds}: {examples}"
    sections.append(Section(f"{prefix}Needed for δ = {in_points(margin)} with {power.TARGET_POWER:.0%} power "
                            f"(a level that loses nothing)", (seed_line, example_line)))
    return sections


def _size(interval) -> str:
    """Bytes with two significant digits, as the sample's interval supports at best."""
    def text(value):
        for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)):
            if abs(value) >= scale or unit == "B":
                return f"{float(f'{value / scale:.2g}'):g} {unit}"
    if not math.isfinite(interval.low):
        return text(interval.value)
    return f"{text(interval.value)} ({text(interval.low)} to {text(interval.high)})"


def _hours(value: float) -> str:
    """Two significant digits (a throughput measured on a few steps supports no more)."""
    if value < 0.1:
        return f"{float(f'{value * 60:.2g}'):g} min"
    return f"{float(f'{value:.2g}'):,g} h"


def cost_sections(config, workdir: pathlib.Path, measure_cpu: bool = True) -> List[Section]:
    """What running the sweep costs: runs, images, each level's stores (from a sample of the training set really
    encoded), and compute hours (CPU measured here; an accelerator at a cited ResNet-50 rate)."""
    from helmjax.machine import cpu_model
    from helmjax.sweeps import cost as cost_lib
    from helmjax.sweeps.plan import make_plan
    plan = make_plan(config, None, workdir=pathlib.Path(workdir))
    sections, costs = [], []
    for setting in plan.settings:
        prefix = f"[{setting.label}] " if len(plan.settings) > 1 else ""
        try:
            cost = cost_lib.setting_cost(setting, measure_cpu)
        except UserError as e:
            sections.append(Section(f"{prefix}Cost", (f"not estimated: {e}",)))
            continue
        costs.append((setting, cost))
        shape = "x".join(map(str, cost.item_shape))
        lines = [f"estimated with stand-ins: {cost.stand_in}"] if cost.stand_in else []
        lines += [f"{cost.runs} runs ({', '.join(f'{a}: {n}' for a, n in cost.runs_per_arch.items())}), "
                 f"{cost.epochs} epochs each: {cost.images_per_run:,} training images and {cost.evaluated_per_run:,} "
                 f"evaluated per run ({cost.n_train:,} train / {cost.n_val:,} validation / {cost.n_test:,} test items "
                 f"of {shape})"]
        for level in cost.levels:
            name = "raw" if level.level == RAW else setting.quantizer.spec.tag(level.level)
            if level.store_bytes is None:
                lines.append(f"store of {name}: not estimated ({level.why_not})")
            else:
                lines.append(f"store of {name}: {_size(level.bytes_per_item)} per item, {_size(level.store_bytes)} "
                             f"for train and test (mean of {cost.sample_size} training items encoded, 95% t interval)")
        for arch, runs in cost.runs_per_arch.items():
            rate = cost.cpu_images_per_s.get(arch)
            if rate is not None:
                lines.append(f"{arch} on this CPU ({cpu_model()}): {rate:.3g} training images/s measured "
                             f"(batch {min(setting.train.batch_size, cost_lib.MEASURE_BATCH)}) -> "
                             f"{_hours(cost_lib.hours(cost, rate, runs))} for its "
                             f"{runs} runs, evaluation at {cost_lib.EVAL_COST:.2g} of a training image's cost")
            published = cost_lib.PUBLISHED
            side = getattr(setting.train, "crop_size", 0) or cost.item_shape[0]  # what the model takes
            measured = cost_lib.MEASURED_ACCELERATOR.get(arch)
            if measured is not None and measured[1] == side:
                device, _, rate = measured
                lines.append(f"{arch} on one {device} at {rate:,.0f} images/s measured by benchmarks/gpu_check.py: "
                             f"{_hours(cost_lib.hours(cost, rate, runs))} (BENCHMARKS.md)")
            if arch == published["arch"] and side == published["size"]:
                lines += [f"{arch} on one {gpu} at the published {rate:.0f} images/s: "
                          f"{_hours(cost_lib.hours(cost, rate, runs))} ({published['source']})"
                          for gpu, rate in published["rates"].items()]
            elif measured is None:
                lines.append(f"{arch} on an accelerator: no figure here; `benchmarks/gpu_check.py` on one measures it")
        sections.append(Section(f"{prefix}Cost: runs, level stores, compute", tuple(lines)))
    total = cost_lib.store_total(costs)
    if costs and len(plan.settings) > 1 and total is not None:
        sections.append(Section("Cost of the whole sweep", (
            f"level stores: {_size(total)} (a store shared by settings counted once)",)))
    return sections
