"""A sweep's findings for people: `report.md` with sentences, tables and plots, plus a short text summary.

`write_report(sweep_dir)` writes everything into `<sweep_dir>/report/`: report.md, analysis.json (the full
`Analysis.to_dict()`) and the PNG plots; it returns the path of report.md. `summary_text(analysis)` is what
`run.py` prints at the end of a sweep and with `--analyze`.
"""

import json
import pathlib
from typing import List, Optional

from helmjax.analysis import RAW, Analysis, analyze
from helmjax.analysis.findings import DEFAULT_RESAMPLES
from helmjax.analysis.sweep_files import read_examples

REPORT_DIR = "report"


def _pct(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _points(value: Optional[float], digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:+.{digits}f}"


def _ci_points(ci) -> str:
    if not ci or ci[0] is None:
        return "n/a"
    return f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}"


def _number(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}"


def _level_ci(analysis: Analysis, ci) -> str:
    low, high = ci if ci else (None, None)
    if low is None and high is None:
        return "n/a"
    text = lambda level: analysis.level_text(level) if level is not None else "none passes"
    return text(low) if low == high else f"{text(low)} to {text(high)}"


def _n_approx_text(n_approx: Optional[dict]) -> str:
    if not n_approx:
        return "n/a"
    if "scale_percent" in n_approx:
        return (f"IJG scale {n_approx['scale_percent']}%, mean table step {n_approx['mean_luminance_step']:.1f} "
                f"(luma) / {n_approx['mean_chrominance_step']:.1f} (chroma)")
    if "step" in n_approx:
        return f"step {n_approx['step']:g}"
    if "bits_per_sample" in n_approx:
        return f"{n_approx['bits_per_sample']:.2f} bits per sample at {n_approx['sample_rate']} Hz"
    return ", ".join(f"{k} {v}" for k, v in n_approx.items())


def _arch_sentences(analysis: Analysis, arch: str) -> List[str]:
    result = analysis.per_arch[arch]
    params = analysis.params.get(arch)
    head = f"**Arch {arch}**" + (f" ({params:,} parameters)" if params else "")
    reference = "the lossless baseline" if result.reference == RAW else \
        f"the highest level ({analysis.level_text(result.reference)}, no lossless run)"
    sentences = []
    if result.q_star is None:
        sentences.append(f"{head}: every compressed level is significantly below {reference} "
                         f"({_pct(result.reference_mean)}): no sweet spot within the sweep.")
    else:
        diff = next((d for d in result.differences if d["level"] == result.q_star), None)
        text = (f"{head}: accuracy is not significantly below {reference} down to "
                f"**{analysis.level_text(result.q_star)}** (95% CI of q*: {_level_ci(analysis, result.q_star_ci)}), "
                f"where it is {_pct(result.accuracy_at_q_star)} against {_pct(result.reference_mean)}")
        if diff:
            text += f" ({_points(diff['diff'])} points, 95% CI {_ci_points(diff['ci'])})"
        sentences.append(text + ".")
        if result.rate_at_q_star is not None:
            rate = f"{result.rate_at_q_star:.3g} {analysis.rate_label}"
            if result.noise_bits is not None and analysis.raw_rate:
                share = result.noise_bits / analysis.raw_rate
                sentences.append(f"There the data takes {rate} (H_approx) against {analysis.raw_rate:g} lossless: "
                                 f"{result.noise_bits:.3g} {analysis.rate_label} ({share:.0%}) are noise "
                                 f"as far as this classifier can tell.")
            else:
                sentences.append(f"There the data takes {rate} (H_approx).")
        if result.n_approx_at_q_star:
            sentences.append(f"N_approx at q*: {_n_approx_text(result.n_approx_at_q_star)}.")
    tolerance = analysis.bootstrap["tolerance_points"]
    rule = f"within {tolerance:g} accuracy point{'' if tolerance == 1 else 's'} of the reference"
    if result.q_star_tolerance is None:
        sentences.append(f"The simple rule ({rule}, every higher level too) is met by no compressed level.")
    else:
        sentences.append(f"The simple rule ({rule}, every higher level too) gives "
                         f"{analysis.level_text(result.q_star_tolerance)} "
                         f"(95% CI {_level_ci(analysis, result.q_star_tolerance_ci)}).")
    hinge = result.hinge_fit
    if hinge:
        if hinge["shape"] == "knee":
            ci = result.knee_ci
            sentences.append(f"The hinge fit puts the knee at {analysis.level_text(round(hinge['knee'], 1))}"
                             + (f" (95% CI {ci[0]:.3g} to {ci[1]:.3g})" if ci else "")
                             + f", plateau {_pct(hinge['plateau'])}, slope {100 * hinge['slope']:.2f} points per unit "
                             f"of ln {analysis.level_name}, R² = {hinge['r2']:.3f}.")
        elif hinge["shape"] == "flat":
            sentences.append(f"Accuracy is flat over the sweep (the fit drops {100 * hinge['drop']:.2f} points): "
                             f"no knee within the levels tried.")
        else:
            sentences.append("Accuracy still rises at the highest level: no plateau within the sweep.")
    if result.log_fit:
        text = f"The paper's curve acc = c·ln(q) fits with c = {result.log_fit['c']:.4f} (R² = {result.log_fit['r2']:.3f})"
        if result.log_fit_below_knee:
            text += (f"; up to the knee, c = {result.log_fit_below_knee['c']:.4f} "
                     f"(R² = {result.log_fit_below_knee['r2']:.3f})")
        sentences.append(text + ".")
    return sentences


def _complexity_sentences(analysis: Analysis) -> List[str]:
    complexity = analysis.complexity
    if not complexity.get("largest"):
        return ["Model size: fewer than two architectures with parameter counts, nothing to compare."]
    largest, level = complexity["largest"], complexity["level"]
    rows = complexity["comparisons"]
    if not rows:
        return [f"Model size: no smaller model has results at {analysis.level_text(level)}."]
    winners = [row for row in rows if row["verdict"] in ("beats", "matches")]
    lines = [f"Model size, at {analysis.level_text(level)} (the sweet spot of the largest model, {largest}, "
             f"{analysis.params[largest]:,} parameters, {_pct(rows[0]['largest_accuracy'])}): "
             + ("a smaller model matches or beats it." if winners else "no smaller model matches it.")]
    for row in rows:
        lines.append(f"- {row['arch']} ({row['params']:,} parameters): {_pct(row['accuracy'])}, "
                     f"{_points(row['diff'])} points (95% CI {_ci_points(row['ci'])}): **{row['verdict']}**")
    return lines


def _convergence_sentences(analysis: Analysis) -> List[str]:
    lines = []
    for arch in analysis.archs:
        rows = [row for row in analysis.accuracy if row["arch"] == arch and row["convergence_epoch"] is not None]
        compressed = [row for row in rows if row["level"] != RAW]
        if len(rows) < 2 or not compressed:
            continue
        lowest, top = compressed[0], rows[-1]
        lines.append(f"- {arch}: converges at epoch {lowest['convergence_epoch']:.1f} at "
                     f"{analysis.level_text(lowest['level'])} vs {top['convergence_epoch']:.1f} at "
                     f"{analysis.level_text(top['level'])}")
    return lines


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def summary_text(analysis: Analysis) -> str:
    """A few plain lines: per arch q* with CI, the rate there, noise bits, model size verdict, run problems."""
    lines = [f"{analysis.experiment} ({analysis.dataset}, {analysis.quantizer}): {analysis.runs['done']} runs done, "
             f"{analysis.runs['failed']} failed, {analysis.runs['missing']} missing"]
    for arch in analysis.archs:
        result = analysis.per_arch.get(arch)
        if result is None:
            lines.append(f"  {arch}: no compressed level finished")
            continue
        reference = "raw" if result.reference == RAW else analysis.level_text(result.reference)
        if result.q_star is None:
            lines.append(f"  {arch}: every level significantly below {reference}; no sweet spot in the sweep")
            continue
        text = (f"  {arch}: q* = {analysis.level_text(result.q_star)} (95% CI {_level_ci(analysis, result.q_star_ci)}), "
                f"acc {_pct(result.accuracy_at_q_star)} vs {reference} {_pct(result.reference_mean)}")
        if result.rate_at_q_star is not None:
            text += f"; {result.rate_at_q_star:.3g} {analysis.rate_label}"
        if result.noise_bits is not None:
            text += f", noise {result.noise_bits:.3g} of {analysis.raw_rate:g}"
        if result.hinge_fit and result.hinge_fit["shape"] == "knee":
            text += f"; knee {result.hinge_fit['knee']:.3g}"
        lines.append(text)
    complexity = analysis.complexity
    if complexity.get("comparisons"):
        best = max(complexity["comparisons"], key=lambda row: row["diff"])
        matched = [row["arch"] for row in complexity["comparisons"] if row["verdict"] != "worse"]
        lines.append(f"  model size at {analysis.level_text(complexity['level'])}: "
                     + (f"{', '.join(matched)} match(es) or beat(s) the largest ({complexity['largest']})"
                        if matched else f"no smaller model matches the largest ({complexity['largest']})")
                     + f"; best smaller: {best['arch']} {_points(best['diff'])} points")
    if analysis.failed:
        lines.append("  failed: " + "; ".join(f"{f['run']} ({f['error']})" for f in analysis.failed[:5])
                     + (f" and {len(analysis.failed) - 5} more" if len(analysis.failed) > 5 else ""))
    if analysis.missing:
        names = [m["run"] for m in analysis.missing]
        lines.append(f"  missing ({len(names)}): " + ", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))
    return "\n".join(lines)


def report_markdown(analysis: Analysis, plots: dict) -> str:
    a = analysis
    lines = [f"# {a.experiment}: how much of {a.dataset} is noise", "",
             f"Quantizer `{a.quantizer}`, levels: {', '.join(a.level_text(level) for level in a.levels)}; "
             f"architectures: {', '.join(a.archs) or 'none'}. Runs: {a.runs['done']} done, {a.runs['failed']} failed, "
             f"{a.runs['missing']} missing. Accuracy is test accuracy of the best-validation parameters; intervals "
             f"are {a.bootstrap['confidence']:.0%} bootstrap intervals ({a.bootstrap['resamples']} resamples over test "
             f"examples and seeds).", "", "## Findings", ""]
    if not a.per_arch:
        lines += ["No architecture has a finished compressed level yet: nothing to conclude.", ""]
    for arch in a.archs:
        if arch in a.per_arch:
            lines += [" ".join(_arch_sentences(a, arch)), ""]
    lines += _complexity_sentences(a) + [""]
    convergence = _convergence_sentences(a)
    if convergence:
        lines += ["Convergence (first epoch whose 10-epoch mean validation accuracy exceeds 0.99 of its maximum):"]
        lines += convergence + [""]
    if a.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in a.warnings] + [""]

    titles = {"accuracy_vs_level": f"Accuracy vs {a.level_name}", "accuracy_vs_params": "Accuracy vs model size",
              "rate_vs_level": f"{a.rate_label.capitalize()} vs {a.level_name}",
              "convergence_vs_level": f"Convergence epoch vs {a.level_name}", "examples": "Examples"}
    if plots:
        lines += ["## Plots", ""]
        for name, path in plots.items():
            lines += [f"### {titles.get(name, name)}", "", f"![{titles.get(name, name)}]({pathlib.Path(path).name})", ""]

    lines += ["## Accuracy (mean ± sd over seeds, n runs)", ""]
    lines += _table([a.level_name] + a.archs, [
        [a.level_text(level)] + [next((f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f} ({r['n']})"
                                       for r in a.accuracy if r["arch"] == arch and r["level"] == level), "—")
                                 for arch in a.archs] for level in a.levels]) + [""]

    lines += ["## Difference from the reference per level (points; q* rule: one-sided upper bound >= 0)", ""]
    for arch, result in a.per_arch.items():
        if not result.differences:
            continue
        reference = "raw" if result.reference == RAW else a.level_text(result.reference)
        lines += [f"Arch {arch}, reference {reference}:", ""]
        lines += _table([a.level_name, "difference", "95% CI", "upper bound", "not below"], [
            [a.level_text(d["level"]), _points(d["diff"], 2), _ci_points(d["ci"]), _points(d["upper_bound"], 2),
             "yes" if d["not_below"] else "no"] for d in result.differences]) + [""]

    lines += ["## Coded rate and quantization step per level", ""]
    lines += _table([a.level_name, a.rate_label, "N_approx"], [
        [a.level_text(row["level"]), _number(row["rate"]), _n_approx_text(row["n_approx"])] for row in a.rates]) + [""]

    per_level = a.complexity.get("per_level") or []
    if per_level:
        lines += [f"## Smaller models vs the largest ({a.complexity['largest']}) per level", ""]
        lines += _table([a.level_name, "arch", "params", "accuracy", "difference (points)", "95% CI", "verdict"], [
            [a.level_text(r["level"]), r["arch"], f"{r['params']:,}", _pct(r["accuracy"], 2), _points(r["diff"], 2),
             _ci_points(r["ci"]), r["verdict"]] for r in per_level]) + [""]

    if any(r["convergence_epoch"] is not None for r in a.accuracy):
        lines += ["## Convergence epoch (mean over seeds)", ""]
        lines += _table([a.level_name] + a.archs, [
            [a.level_text(level)] + [next((_number(r["convergence_epoch"]) for r in a.accuracy
                                           if r["arch"] == arch and r["level"] == level), "—") for arch in a.archs]
            for level in a.levels]) + [""]

    if a.failed:
        lines += ["## Failed runs", ""] + _table(["run", "reason"], [[f["run"], str(f["error"])] for f in a.failed]) + [""]
    if a.missing:
        lines += ["## Missing runs", "", ", ".join(f"{m['level']}-{m['arch']}-s{m['seed']}" for m in a.missing), ""]
    lines += ["## Method", ""] + [f"- **{name}**: {text}" for name, text in a.method.items()] + [""]
    return "\n".join(lines)


def write_report(sweep_dir, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 analysis: Optional[Analysis] = None) -> pathlib.Path:
    """Analyses the sweep and writes report.md, analysis.json and the plots into `<sweep_dir>/report/`."""
    from helmjax import plots as plotting  # matplotlib loads only when a report is written

    sweep_dir = pathlib.Path(sweep_dir)
    analysis = analysis or analyze(sweep_dir, resamples=resamples, seed=seed)
    out = sweep_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    made = plotting.write_plots(analysis, out, read_examples(sweep_dir))
    (out / "analysis.json").write_text(json.dumps(analysis.to_dict(), indent=1))
    path = out / "report.md"
    path.write_text(report_markdown(analysis, made))
    return path
