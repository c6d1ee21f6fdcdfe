"""A sweep's findings for people: `report.md` with sentences, tables and plots, plus a short text summary.

`write_report(sweep_dir)` writes everything into `<sweep_dir>/report/`: report.md, analysis.json (the full
`Analysis.to_dict()`) and the PNG plots; it returns the path of report.md. `summary_text(analysis)` is what
`run.py` prints at the end of a sweep and with `--analyze`. Words follow the statistics: a level is "not worse
than the reference by more than δ" (shown by its lower bound), never "equal"; every number carries its interval
and no more digits than that supports.
"""

import json
import pathlib
from typing import List, Optional

from helmjax import layout
from helmjax.analysis import RAW, Analysis, analyze, families
from helmjax.analysis.sweep_files import read_examples
from helmjax.analysis.per_arch import CALIBRATED_CEILING, CEILING_FALSE_PASSES
from helmjax.reporting.number_format import bound, number, parts



def _pct(value, ci=None) -> str:
    """Accuracy in percent, with its interval when given: "99.4% (98.9 to 99.8)"."""
    head, interval = parts(value, ci, scale=100.0)
    return head + ("%" if head != "n/a" else "") + (f" ({interval})" if interval else "")


def _bracket_text(analysis: Analysis, knee: dict) -> str:
    """The knee as the sampled levels it lies between (its only measured position)."""
    low, high = knee["bracket"]
    if low is None:
        return f"at or below {analysis.level_text(high) if high is not None else analysis.level_text(analysis.levels[0])}"
    return f"between {analysis.level_text(low)} and {analysis.level_text(high)}"


def knee_text(analysis: Analysis, result) -> str:
    """The knee in a few words: "between q=10 and q=20", or censored "at or below q=5"."""
    if result.knee["shape"] == "knee":
        return _bracket_text(analysis, result.knee)
    return f"at or below {analysis.level_text(result.levels[0])}"


def _n_approx_text(n_approx: Optional[dict]) -> str:
    """The quantizer's step figures as its spec names them: "step 16", "scale percent 250, mean luminance step
    141.5, ..."."""
    if not n_approx:
        return "n/a"
    value = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{name.replace('_', ' ')} {value(v)}" for name, v in n_approx.items())


def _knee_n_approx_text(analysis: Analysis, at_knee: Optional[list]) -> str:
    """N_approx at the sampled levels around the knee: "step 32 at 3 bits to step 16 at 4 bits"."""
    known = [entry for entry in at_knee or [] if entry["n_approx"]]
    return " to ".join(f"{_n_approx_text(e['n_approx'])} at {analysis.level_text(e['level'])}" for e in known)


def _reference_text(analysis: Analysis, result) -> str:
    return "raw" if result.reference == RAW else analysis.level_text(result.reference)


def _margin(analysis: Analysis) -> str:
    points = analysis.settings["margin_points"]
    return f"δ = {points:g} accuracy point{'' if points == 1 else 's'}"


def _sequence_confidence(analysis: Analysis) -> str:
    """The one-sided confidence the fixed sequences decide at: the report's, or 1 - α/k for a report-wide family."""
    return families.confidence_text(analysis.settings["sequence_confidence"])


def family_sentence(analysis: Analysis) -> str:
    """Which family the report's α covers, in one sentence (`analysis.families`), and that the α is not shown
    where a reference lies above the calibrated ceiling (`per_arch.CALIBRATED_CEILING`)."""
    sentence = analysis.family["sentence"]
    if analysis.uncalibrated:
        sentence += (f" That rate is not shown for {', '.join(analysis.uncalibrated)}: a reference above "
                     f"{100 * CALIBRATED_CEILING:g}% is where the calibration found {CEILING_FALSE_PASSES} "
                     f"(VALIDATION.md, section 1), so that q* is exploratory.")
    return sentence


def _sweet_spot_sentences(analysis: Analysis, arch: str) -> List[str]:
    result = analysis.per_arch[arch]
    confidence = _sequence_confidence(analysis)
    reference = _reference_text(analysis, result)
    tests = {t["level"]: t for t in result.tests}
    out = []
    if result.q_star is None:
        top = result.tests[-1] if result.tests else None  # the least compressed level tested
        out.append(f"No compressed level is shown to be not worse than {reference} by more than {_margin(analysis)}"
                   + (f": the least compressed, {analysis.level_text(top['level'])}, differs by "
                      f"{number(top['diff'], top['ci'], scale=100, sign=True)} points (one-sided {confidence} "
                      f"lower bound {bound(top['lower_bound'], top['ci'], scale=100)})." if top else "."))
        return out
    if result.q_star == result.reference:
        return out
    test = tests[result.q_star]
    out.append(f"Accuracy is not worse than {reference} by more than {_margin(analysis)} down to "
               f"**{analysis.level_text(result.q_star)}** (fixed-sequence test from the least compressed level down): "
               f"there "
               f"the difference is {number(test['diff'], test['ci'], scale=100, sign=True)} points, one-sided "
               f"{confidence} lower bound {bound(test['lower_bound'], test['ci'], scale=100)} > "
               f"-{analysis.settings['margin_points']:g}.")
    below = result.tests[:list(tests).index(result.q_star)]  # tests are ordered most compression first
    if below:
        nxt = below[-1]
        out.append(f"The next level, {analysis.level_text(nxt['level'])}, is not shown to be within δ: "
                   f"{number(nxt['diff'], nxt['ci'], scale=100, sign=True)} points (lower bound "
                   f"{bound(nxt['lower_bound'], nxt['ci'], scale=100)}).")
    return out


def _rate_sentences(analysis: Analysis, arch: str) -> List[str]:
    result = analysis.per_arch[arch]
    if result.rate_at_q_star is None:
        return []
    unit = analysis.rate_label
    row = next(r for r in analysis.rates if r["level"] == result.q_star)
    kind = "coded payload (headers and tables excluded)" if row["primary"] == "payload" else "whole file"
    text = (f"At {analysis.level_text(result.q_star)} the data takes {number(row[row['primary']]['mean'], row[row['primary']]['ci'])} "
            f"{unit} of {kind}")
    if row["primary"] == "payload" and row["header"]["mean"] is not None:
        text += f", plus {number(row['header']['mean'], row['header']['ci'])} of headers and tables"
    out = [text + "."]
    if analysis.lossless and result.bits_not_needed:
        lossless = analysis.lossless
        out.append(f"The same data losslessly ({lossless.get('codec') or 'lossless codec'}) takes "
                   f"{number(lossless['mean'], lossless['ci'])} {unit}; the classifier did not need "
                   f"{number(result.bits_not_needed['mean'], result.bits_not_needed['ci'])} of them (lossless minus "
                   f"payload at q*, the paper's 'noise bits'; on data whose noise is known they exceed it: "
                   f"VALIDATION.md).")
    if result.n_approx_at_q_star:
        out.append(f"N_approx at q*: {_n_approx_text(result.n_approx_at_q_star)}.")
    return out


def _knee_sentences(analysis: Analysis, arch: str) -> List[str]:
    result = analysis.per_arch[arch]
    knee = result.knee
    out = []
    if knee:
        share = f"a drop larger than δ in {knee['drop_share']:.0%} of bootstrap replicates"
        if knee["shape"] == "knee":
            at = None if knee["knee"] is None else float(format(knee["knee"], ".3g"))
            interpolated = "" if at is None else (
                f" Interpolated linearly in ln {analysis.scale.log_axis_name}, "
                f"{analysis.level_text(at)}: where the knee lies between two sampled "
                f"levels is the interpolation's assumption, so sample more levels there to place it.")
            steps = _knee_n_approx_text(analysis, result.n_approx_at_knee)
            out.append(f"Knee: the monotone fit falls δ below its plateau {_bracket_text(analysis, knee)} "
                       f"(the sampled levels around the crossing, in {analysis.settings['confidence']:.0%} of "
                       f"bootstrap replicates; {share})." + interpolated
                       + (f" N_approx there: {steps}." if steps else ""))
        else:
            out.append(f"No drop larger than δ over the sampled levels ({share}, "
                       f"{analysis.settings['confidence']:.0%} needed): the knee is at or below "
                       f"{analysis.level_text(result.levels[0])}.")
    fit = result.log_fit
    if fit:
        if fit["fits"]:
            slope = number(fit["c"], fit["c_ci"], scale=100, sign=True)
            out.append(f"The paper's curve acc = a + c·ln {analysis.scale.log_axis_name} fits with c = {slope} points "
                       f"per unit of ln {analysis.scale.log_axis_name} (R² = {fit['r2']:.2f}).")
        else:
            out.append(f"The paper's curve acc = a + c·ln {analysis.scale.log_axis_name} does not fit "
                       f"(R² = {fit['r2']:.2f}).")
    return out


def _quality_text(quality) -> str:
    return quality if isinstance(quality, str) else f"q≈{quality:.0f}"


def _noise_sentences(analysis: Analysis) -> List[str]:
    """The data's noise measured without a classifier, beside the classifier's answer; "noise" is used for these
    numbers only (what q* and the knee track is a separate, validated claim: VALIDATION.md)."""
    n = analysis.noise
    if not n:
        return []
    conf = f"{n['confidence']:.0%}"
    out = [f"The raw images carry about σ = {number(n['sigma'], n['sigma_ci'])} grey levels of noise ({conf} "
           f"interval over {n['images']} images; scikit-image's wavelet estimate, from the images alone)."]
    for q in n["q_n"]:
        low, high = q["ci"]
        spread = "" if isinstance(q["quality"], str) or low == high else \
            f" ({_quality_text(low)} to {_quality_text(high)})"
        out.append(f"JPEG {q['subsampling']} removes that much (mean squared error = σ²) "
                   + ("only above q=100: every quality removes more" if q["quality"] == "above 100"
                      else "only below q=1" if q["quality"] == "below 1"
                      else f"at {_quality_text(q['quality'])}{spread}") + ".")
    if n.get("true"):
        t = n["true"]
        out.append(f"The camera model's true noise: σ = {t['sigma']:.2f} grey levels, "
                   f"{t['entropy_bits_per_pixel']:.2f} bits per pixel of noise entropy (exact, no sampling).")
    stars = [f"{arch} q*={analysis.level_text(r.q_star)}" for arch, r in analysis.per_arch.items()
             if r.q_star not in (None, RAW)]
    if stars:
        out.append(f"The classifier tolerates compression down to {', '.join(stars)}. On data whose noise is known "
                   f"(the camera's factorial ladder, VALIDATION.md) the knee moved far more with the content than "
                   f"with the noise and was never at q_N, while σ tracked the noise: q* says which compression this "
                   f"task tolerates, not how much noise the data hold.")
    return out


def _arch_paragraph(analysis: Analysis, arch: str) -> List[str]:
    result = analysis.per_arch[arch]
    params = analysis.params.get(arch)
    head = f"**Arch {arch}**" + (f" ({params:,} parameters)" if params else "") + ":"
    ref = next(r for r in analysis.accuracy if r["arch"] == arch and r["level"] == result.reference)
    sentences = [head, f"{_reference_text(analysis, result)} reaches {_pct(ref['mean'], ref['ci'])} "
                       f"({ref['n']} seed{'s' if ref['n'] != 1 else ''})."]
    if not result.seeds_covered:
        sentences.append("*Exploratory*: one seed per level, so the intervals cover test-example noise only, not "
                         "training noise; run 2 or more seeds for a measurement.")
    sentences += _sweet_spot_sentences(analysis, arch) + _rate_sentences(analysis, arch) + \
        _knee_sentences(analysis, arch)
    tolerance = analysis.settings["tolerance_points"]
    simple = ("no compressed level" if result.q_star_tolerance is None
              else analysis.level_text(result.q_star_tolerance))
    sentences.append(f"Secondary, simple rule (mean within {tolerance:g} point{'' if tolerance == 1 else 's'} of the reference at this and every "
                     f"less compressed level; no interval): {simple}.")
    return sentences


def _model_size_lines(analysis: Analysis) -> List[str]:
    size = analysis.model_size
    if not size.get("largest"):
        return ["Model size: fewer than two architectures with parameter counts, nothing to compare."]
    rows, level = size["comparisons"], size["level"]
    if not rows:
        return [f"Model size: no smaller model to compare with the largest ({size['largest']}) at "
                f"{analysis.level_text(level)}."]
    lines = [f"Model size at {analysis.level_text(level)} (the largest model's sweet spot): what compression costs "
             f"each smaller model beyond what it costs {size['largest']} (difference in differences against raw, "
             f"Holm-corrected over {len(rows)} model{'s' if len(rows) > 1 else ''}):"]
    for row in rows:
        lines.append(f"- {row['arch']} ({row['params']:,} parameters): {number(row['did'], row['ci'], scale=100, sign=True)} "
                     f"points, Holm p = {row['p_holm']:.2g}: **{row['verdict']}**; its plain gap to "
                     f"{size['largest']} there is {number(row['gap'], row['gap_ci'], scale=100, sign=True)} points")
    return lines


def summary_text(analysis: Analysis, family: bool = True) -> str:
    """A few plain lines: per arch q* with its bound, the rates there, the knee, model size, run problems; and the
    family sentence unless `family` is False (a side-by-side report prints its own once)."""
    a = analysis
    lines = [f"{a.experiment} ({a.dataset}, {a.quantizer}): {a.runs['done']} runs done, {a.runs['failed']} failed, "
             f"{a.runs['missing']} missing"]
    if a.per_arch:
        lines.append(f"  sweet spot = most compressed level not worse than the reference by more than {_margin(a)} "
                     f"(one-sided {_sequence_confidence(a)}, fixed sequence)"
                     + (f"; EXPLORATORY: {a.exploratory_reason}" if a.exploratory else ""))
        if family:
            lines.append(f"  {family_sentence(a)}")
    for arch in a.archs:
        result = a.per_arch.get(arch)
        if result is None:
            lines.append(f"  {arch}: no compressed level finished")
            continue
        reference = _reference_text(a, result)
        if result.q_star is None:
            lines.append(f"  {arch}: no level shown within δ of {reference}; no sweet spot in the sweep")
            continue
        text = f"  {arch}: q* = {a.level_text(result.q_star)}"
        test = next((t for t in result.tests if t["level"] == result.q_star), None)
        if test:
            text += (f", {number(test['diff'], test['ci'], scale=100, sign=True)} points vs {reference} "
                     f"(lower bound {bound(test['lower_bound'], test['ci'], scale=100)})")
        if result.rate_at_q_star:
            text += f"; {number(result.rate_at_q_star['mean'], result.rate_at_q_star['ci'])} {a.rate_label} payload"
        if result.bits_not_needed and a.lossless:
            text += (f", lossless {number(a.lossless['mean'], a.lossless['ci'])}: "
                     f"{number(result.bits_not_needed['mean'], result.bits_not_needed['ci'])} not needed")
        if result.knee:
            text += "; knee " + knee_text(a, result)
        lines.append(text)
    if a.model_size.get("comparisons"):
        verdicts = ", ".join(f"{r['arch']} {r['verdict']}" for r in a.model_size["comparisons"])
        lines.append(f"  model size at {a.level_text(a.model_size['level'])} vs the largest "
                     f"({a.model_size['largest']}): {verdicts}")
    if a.noise:
        matched = ", ".join(f"JPEG {q['subsampling']} " + ("above q=100" if q["quality"] == "above 100" else
                                                         "below q=1" if q["quality"] == "below 1" else
                                                         f"at {_quality_text(q['quality'])}") for q in a.noise["q_n"])
        lines.append(f"  noise, without a classifier: σ = {number(a.noise['sigma'], a.noise['sigma_ci'])} grey levels "
                     f"(wavelet estimate); removed by {matched}"
                     + (f"; true σ {a.noise['true']['sigma']:.2f}" if a.noise.get("true") else ""))
    if a.failed:
        lines.append("  failed: " + "; ".join(f"{f['run']} ({f['error']})" for f in a.failed[:5])
                     + (f" and {len(a.failed) - 5} more" if len(a.failed) > 5 else ""))
    if a.missing:
        names = [m["run"] for m in a.missing]
        lines.append(f"  missing ({len(names)}): " + ", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))
    return "\n".join(lines)


def markdown_table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _tables(a: Analysis) -> List[str]:
    conf = f"{a.settings['confidence']:.0%}"
    lines = [f"## Accuracy (mean over seeds, {conf} interval, n seeds)", ""]
    cell = lambda r: f"{_pct(r['mean'], r['ci'])} ({r['n']})"
    lines += markdown_table([a.level_label] + a.archs, [
        [a.level_text(level)] + [next((cell(r) for r in a.accuracy if r["arch"] == arch and r["level"] == level), "—")
                                 for arch in a.archs] for level in a.levels]) + [""]
    sequence = _sequence_confidence(a)
    lines += [f"## Difference from the reference per level (points; passes when the one-sided {sequence} lower "
              f"bound > -{a.settings['margin_points']:g})", ""]
    for arch, result in a.per_arch.items():
        if not result.tests:
            continue
        lines += [f"Arch {arch}, reference {_reference_text(a, result)}:", ""]
        verdict = lambda t: ("not worse by more than δ" if t["passed"] else "not shown within δ") if t["tested"] \
            else "not tested (sequence stopped)"
        lines += markdown_table([a.level_label, "difference", f"{sequence} interval", "lower bound", "verdict"], [
            [a.level_text(t["level"]), *parts(t["diff"], t["ci"], scale=100, sign=True),
             bound(t["lower_bound"], t["ci"], scale=100), verdict(t)] for t in result.tests]) + [""]
    lines += [f"## Rates per level ({a.rate_label}; {conf} intervals over items)", ""]
    rows = [[a.level_text(r["level"]), number(r["payload"]["mean"], r["payload"]["ci"]),
             number(r["header"]["mean"], r["header"]["ci"]), number(r["file"]["mean"], r["file"]["ci"]),
             _n_approx_text(r["n_approx"])] for r in a.rates]
    if a.lossless:
        rows.append([f"lossless ({a.lossless.get('codec') or '?'})", number(a.lossless["mean"], a.lossless["ci"]),
                     "", "", ""])
    if a.storage_rate is not None:
        rows.append(["raw storage", f"{a.storage_rate:g}", "", "", ""])
    lines += markdown_table([a.level_label, "payload", "headers", "file", "N_approx"], rows) + [""]
    per_level = a.model_size.get("per_level") or []
    if per_level:
        lines += [f"## Model size per level: difference in differences against {a.model_size['largest']} (points)", ""]
        lines += markdown_table([a.level_label, "arch", "params", "DiD", "Holm p", "verdict"], [
            [a.level_text(r["level"]), r["arch"], f"{r['params']:,}", number(r["did"], r["ci"], scale=100, sign=True),
             f"{r['p_holm']:.2g}", r["verdict"]] for r in per_level]) + [""]
    if any(r.get("convergence_runs") for r in a.accuracy):
        lines += ["## Epochs to reach 95% of the lossless run's best validation accuracy (mean and range over the "
                  "runs that reached it; runs that reached it / runs)", ""]
        cell = lambda r: ("not reached" if r["convergence_epochs"] is None else
                          f"{r['convergence_epochs']:.1f}, range {r['convergence_range'][0]}-{r['convergence_range'][1]}") \
            + f" ({r['converged']}/{r.get('convergence_runs', 0)})"
        lines += markdown_table([a.level_label] + a.archs, [
            [a.level_text(level)] + [next((cell(r) for r in a.accuracy if r["arch"] == arch and r["level"] == level
                                           and r.get("convergence_runs")), "—") for arch in a.archs]
            for level in a.levels]) + [""]
    return lines


def report_markdown(analysis: Analysis, plots: dict) -> str:
    a = analysis
    lines = [f"# {a.experiment}: how much compression {a.dataset} tolerates", "",
             f"Quantizer `{a.quantizer}`, levels: {', '.join(a.level_text(level) for level in a.levels)}; "
             f"architectures: {', '.join(a.archs) or 'none'}. Runs: {a.runs['done']} done, {a.runs['failed']} failed, "
             f"{a.runs['missing']} missing. Accuracy is the test accuracy of the best-validation parameters. "
             f"Margin {_margin(a)}; intervals are {a.settings['confidence']:.0%} and cover test-example noise"
             + (" only (one seed: exploratory)." if a.one_seed else " and training-seed noise.")
             + (f" EXPLORATORY: {a.exploratory_reason}." if a.uncalibrated else ""), "",
             family_sentence(a), "",
             "## Findings", ""]
    if not a.per_arch:
        lines += ["No architecture has a finished compressed level yet: nothing to conclude.", ""]
    for arch in a.archs:
        if arch in a.per_arch:
            lines += [" ".join(_arch_paragraph(a, arch)), ""]
    lines += _model_size_lines(a) + [""]
    if a.noise:
        lines += ["## Noise in the data, without a classifier", "", " ".join(_noise_sentences(a)), ""]
    if a.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in a.warnings] + [""]
    titles = {"accuracy_vs_level": f"Accuracy vs {a.level_label}", "accuracy_vs_params": "Accuracy vs model size",
              "rate_vs_level": f"{a.rate_label.capitalize()} vs {a.level_label}",
              "convergence_vs_level": f"Epochs to target vs {a.level_label}", "examples": "Examples"}
    if plots:
        lines += ["## Plots", ""]
        for name, path in plots.items():
            lines += [f"### {titles.get(name, name)}", "", f"![{titles.get(name, name)}]({pathlib.Path(path).name})", ""]
    lines += _tables(a)
    if a.failed:
        lines += ["## Failed runs", ""] + markdown_table(["run", "reason"], [[f["run"], str(f["error"])]
                                                                            for f in a.failed]) + [""]
    if a.missing:
        lines += ["## Missing runs", "", ", ".join(m["run"] for m in a.missing), ""]
    lines += ["## Method", ""] + [f"- **{name}**: {text}" for name, text in a.method.items()] + [""]
    return "\n".join(lines)


def write_report(sweep_dir, *, resamples: Optional[int] = None, seed: int = 0,
                 analysis: Optional[Analysis] = None) -> pathlib.Path:
    """Analyses the sweep and writes report.md, analysis.json and the plots into `<sweep_dir>/report/`."""
    from helmjax.reporting import plots as plotting  # matplotlib loads only when a report is written

    sweep_dir = pathlib.Path(sweep_dir)
    analysis = analysis or analyze(sweep_dir, resamples=resamples, seed=seed)
    out = layout.report_dir(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = plotting.write_plots(analysis, out, read_examples(sweep_dir, analysis.scale.parse))
    (out / layout.ANALYSIS_FILE).write_text(json.dumps(analysis.to_dict(), indent=1))
    path = out / layout.REPORT_FILE
    path.write_text(report_markdown(analysis, made))
    return path
