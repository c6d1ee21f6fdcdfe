"""helmjax's command line: run (or resume) an experiment's sweep, list experiments, or rebuild its report.

    python run.py                                  # the embedded demo, no download
    python run.py --experiment=cifar_q_sweep --set train.epochs=50 --only arch=A,F
    python run.py --list
    python run.py --experiment=demo_q_sweep --analyze
    python run.py --experiment=demo_q_sweep --plan   # what the design can show, before training
    python run.py --axis data.photons=100,400,inf     # a grid axis over any config key
"""

import pathlib
import signal
import sys

from absl import app, flags, logging

from helmjax import config as config_lib
from helmjax.errors import UserError

EXPERIMENT = flags.DEFINE_string("experiment", "demo_q_sweep", "Experiment name: a file experiments/<name>.py.")
WORKDIR = flags.DEFINE_string("workdir", "./runs", "Where sweeps, caches and reports are written.")
SET = flags.DEFINE_multi_string("set", [], "Typed config override key=value (repeatable), e.g. train.epochs=5.")
AXIS = flags.DEFINE_multi_string("axis", [], "A grid axis over a config key, key=v1,v2 (repeatable), e.g. "
                                 "data.photons=100,400,inf: one sweep per setting, side by side in the report.")
ONLY = flags.DEFINE_multi_string("only", [], "Run part of the grid: axis=v1,v2 with axis level, arch, seed or a "
                                 "grid axis (e.g. photons=100).")
BUDGET = flags.DEFINE_multi_string("budget", [], "Storage budgets for the report's storage section (a sweep over "
                                    "data.train_fraction): sizes such as 300kB,1.5GB (repeatable).")
LIST = flags.DEFINE_bool("list", False, "List the experiments, their grid sizes and the data they need.")
ANALYZE = flags.DEFINE_bool("analyze", False, "Rebuild the report from existing results without training.")
PLAN = flags.DEFINE_bool("plan", False, "Print the power plan (smallest margin the design shows, seeds or test "
                         "examples needed) and the cost (runs, level stores, compute hours) without training or writing "
                         "anything.")
PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
NEW_SWEEP = flags.DEFINE_bool("new_sweep", False, "When the sweep directory holds runs of another config, put this "
                                "config's sweep beside it (<name>-<digest>) instead of refusing.")
WORKER = flags.DEFINE_string("worker", "0/1", "i/n: this worker takes every n-th run of the grid from i.")
DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first (TPU VM pods, "
                                "Slurm, multi-node GPU): all hosts train each run together.")
COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 (auto-detected on TPU VMs/Slurm).")
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (auto-detected on TPU VMs/Slurm).")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (auto-detected on TPU VMs/Slurm).")


def list_experiments():
    from helmjax.data import catalog
    for name in config_lib.experiment_names():
        try:
            c = config_lib.load_experiment(name)
            from helmjax.sweeps.plan import make_plan
            plan = make_plan(c)
            runs = sum(len(setting.runs) for setting in plan.settings)
            shape = (f"{len(plan.settings)} settings of {', '.join(plan.axis_names)} x " if plan.axis_names else "")
            print(f"{name:24s} {runs:4d} runs ({shape}{len(c.grid.level)} levels x {len(c.grid.arch)} archs x "
                  f"{len(c.grid.seed)} seeds)  data: {c.data.name}: {catalog.entry(c.data.name).needs}")
        except Exception as e:  # one broken experiment file must not hide the others
            print(f"{name:24s} (cannot load: {e})")


def write_report(sweep_dir: pathlib.Path, budgets=None) -> str:
    """Analyses the sweep, writes its report, and returns the printed summary; `budgets` (bytes) for the storage
    section, else the config's."""
    from helmjax import analysis
    from helmjax.reporting import facets, report
    if facets.has_settings(sweep_dir):
        path, text = facets.write_facet_report(sweep_dir, budgets=budgets)
        return text + f"\nreport: {path}"
    findings = analysis.analyze(sweep_dir)
    path = report.write_report(sweep_dir, analysis=findings)
    return report.summary_text(findings) + f"\nreport: {path}"


def main(argv):
    from helmjax import memory
    memory.limit_heap_growth()  # first: every later allocation follows it (helmjax.memory)
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}; flags look like --experiment=NAME")
    if LIST.value:
        list_experiments()
        return 0
    config = config_lib.apply_overrides(config_lib.load_experiment(EXPERIMENT.value), SET.value)
    from helmjax import distributed
    from helmjax.reporting import results_table
    from helmjax.sweeps import axes, sweep
    config = axes.parse_axis_flags(config, AXIS.value)
    if PLAN.value:  # before anything is trained or written
        from helmjax.reporting import plan_text
        print(plan_text.format_sections(plan_text.plan_sections(config, pathlib.Path(WORKDIR.value))), flush=True)
        print("\n" + plan_text.format_sections(plan_text.cost_sections(config, pathlib.Path(WORKDIR.value))))
        return 0
    from helmjax.reporting.storage import parse_bytes
    budgets = [parse_bytes(b) for part in BUDGET.value for b in part.split(",") if b.strip()] or None
    only = config_lib.parse_filters(ONLY.value, [name for name, _ in axes.raw_axes(config)])
    worker = distributed.parse_worker(WORKER.value)
    if DISTRIBUTED.value:
        distributed.initialize(COORDINATOR.value, NUM_PROCESSES.value, PROCESS_ID.value)
    from helmjax.sweeps import identity
    from helmjax.sweeps.plan import make_plan
    if ANALYZE.value:
        plan = make_plan(config, identity.find_sweep_dir(pathlib.Path(WORKDIR.value), config))
        rows = sweep.collect_results(plan)
        sweep.write_results(plan.sweep_dir, rows, plan.axis_names)
    else:
        stop = sweep.StopFlag()
        for sig in (signal.SIGTERM, signal.SIGINT):  # finish the step, keep the last checkpoint, exit cleanly
            signal.signal(sig, lambda *_: stop.set())
        plan = make_plan(config, identity.resolve_sweep_dir(pathlib.Path(WORKDIR.value), config,
                                                            new_sweep=NEW_SWEEP.value))
        try:
            outcome = sweep.run_plan(plan, only=only, worker=worker, stop=stop,
                                     progress=PROGRESS.value and distributed.is_primary())
        except sweep.StopRequested:
            print("stopped on request; run the same command again to resume", file=sys.stderr)
            return 130
        rows = outcome.rows
        if outcome.busy:
            print(f"{len(outcome.busy)} runs are being trained by other workers: {', '.join(outcome.busy)}")
    if not distributed.is_primary():
        return 0
    for setting in plan.settings:
        mine = [r for r in rows if r.get("setting") == setting.tag] if setting.tag else rows
        if setting.tag:
            print(f"[{setting.label}]")
        print(results_table.format_table(mine, setting.tolerance, setting.record["quantizer_spec"]))
    print(write_report(plan.sweep_dir, budgets))
    return 0


def run(argv):
    try:
        sys.exit(main(argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a full disk, a read-only or vanished workdir: finished runs stay on disk
        print(f"error: {e.strerror or e} ({e.filename or 'file system'}); finished runs are kept: fix this "
              f"and run the same command again", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    logging.set_verbosity(logging.WARNING)
    app.run(run)
