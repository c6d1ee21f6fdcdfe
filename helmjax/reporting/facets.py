"""A sweep with grid axes (`helmjax.sweeps.axes`) side by side: each setting is analysed and reported as a sweep of
its own (`settings/<tag>/report/`), then one table per setting and arch (q*, knee, rates, the data's noise, runs
that did not learn), accuracy per level, `facets.json` (the numbers, for `benchmarks.validate_noise`) and plots of
accuracy against the level and against bits per pixel, one line per setting. Its family is every (setting, arch)
fixed sequence of the report (`analysis.families`): each setting is analysed knowing how many there are.
"""

import json
import pathlib
from typing import List, Optional, Tuple

from helmjax import layout
from helmjax.analysis import RAW, Analysis, analyze, codec_comparison, families
from helmjax.analysis.findings import json_safe, sequences
from helmjax.analysis.sweep_files import read_config
from helmjax.reporting import mismatch, report as single
from helmjax.reporting.number_format import number
from helmjax.sweeps.axes import value_text
from helmjax.layout import read_jsonl, setting_dir

Facet = Tuple[dict, Analysis]  # (the setting's record in the parent's sweep.json, its analysis)


def has_settings(sweep_dir) -> bool:
    return bool(read_config(pathlib.Path(sweep_dir), []).get("settings"))


def analyze_settings(sweep_dir, *, resamples: Optional[int] = None, seed: int = 0,
                     family: Optional[str] = None) -> List[Facet]:
    """Every setting that has a directory, analysed on its own, in the grid's order, with the family of the whole
    side-by-side report: its k (setting, arch) sequences are counted first, and `family` (else the sweep's
    `analysis.family`) says whether each is tested at α or at α/k."""
    sweep_dir = pathlib.Path(sweep_dir)
    config = read_config(sweep_dir, [])
    family = family or (config.get("analysis") or {}).get("family")
    present = [(setting, setting_dir(sweep_dir, setting["tag"])) for setting in config.get("settings") or []]
    # A setting not reached yet has no results: left out.
    present = [(setting, directory) for setting, directory in present if (directory / layout.RESULTS_JSONL).exists()]
    k = sum(len(sequences(directory)) for _, directory in present)
    return [(setting, analyze(directory, resamples=resamples, seed=seed, family=family, report_sequences=k))
            for setting, directory in present]


def report_family(facets: List[Facet]) -> Optional[families.Family]:
    """The side-by-side report's family: its settings' rule and k, told as this report's."""
    if not facets:
        return None
    a = facets[0][1]
    return families.Family(a.family["rule"], a.settings["confidence"], a.family["sequences"],
                           noun="(setting, architecture) sequence")


def _q_n(noise: Optional[dict], subsampling: Optional[str] = None):
    """q_N at the sweep's subsampling (the first recorded) or the one asked for: a number, or a text such as
    "above 100"."""
    for entry in (noise or {}).get("q_n", []):
        if subsampling in (None, entry["subsampling"]):
            return entry
    return None


def facet_rows(facets: List[Facet]) -> List[dict]:
    """One row of plain numbers per (setting, arch): what validate_noise correlates with the truth, and the
    report's family (the same in every row)."""
    rows = []
    family = report_family(facets)
    for setting, a in facets:
        noise = a.noise or {}
        true = noise.get("true") or {}
        for arch, result in a.per_arch.items():
            knee = result.knee or {}
            test = next((t for t in result.tests if t["level"] == result.q_star), None)
            rows.append({
                "setting": setting["tag"], **setting["values"], "arch": arch, "quantizer": a.quantizer,
                "reference_acc": result.reference_mean, "q_star": result.q_star,
                "q_star_position": None if result.q_star is None else a.position(result.q_star),
                "q_star_diff": test and test["diff"], "q_star_diff_ci": test and test["ci"],
                "rate_at_q_star": result.rate_at_q_star, "bits_not_needed": result.bits_not_needed,
                "lossless": a.lossless,
                "n_approx_at_q_star": result.n_approx_at_q_star,
                "knee_shape": knee.get("shape"), "knee": knee.get("knee"), "knee_bracket": knee.get("bracket"),
                "sigma_estimate": noise.get("sigma"), "sigma_estimate_ci": noise.get("sigma_ci"),
                "q_n": noise.get("q_n"), "true_sigma": true.get("sigma"),
                "true_entropy_bits_per_pixel": true.get("entropy_bits_per_pixel"),
                "exploratory": not result.seeds_covered or not result.calibrated,
                "not_learned": [r for r in a.at_chance if r["arch"] == arch],
                "accuracy": [{"level": r["level"], "mean": r["mean"], "ci": r["ci"], "n": r["n"]}
                             for r in a.accuracy if r["arch"] == arch],
                "rates": [{"level": r["level"], "primary": r[r["primary"]]} for r in a.rates
                          if r.get("primary") and r[r["primary"]]["mean"] is not None],
                "family": family.to_dict(),
            })
    return rows


def _q_n_text(entry: Optional[dict]) -> str:
    if not entry:
        return "n/a"
    quality, (low, high) = entry["quality"], entry["ci"]
    if isinstance(quality, str):
        return quality
    spread = "" if isinstance(low, str) or isinstance(high, str) or low == high else f" ({low:.0f} to {high:.0f})"
    return f"{quality:.0f}{spread}"


def summary_text(facets: List[Facet]) -> str:
    family = report_family(facets)
    lines = [family.sentence()] if family else []
    for setting, a in facets:
        label = ", ".join(f"{k}={value_text(v)}" for k, v in setting["values"].items())
        lines.append(f"[{label}]")
        lines += ["  " + line for line in single.summary_text(a, family=False).splitlines()[1:]]
        stuck = [r["run"] for r in a.at_chance]
        if stuck:
            lines.append(f"  not above chance: {', '.join(stuck[:6])}{' ...' if len(stuck) > 6 else ''}")
    return "\n".join(lines)


def _bits(value: float, unit: str) -> str:
    return f"{value:.3g} {unit}"


def bracket_text(row: dict, unit: str) -> str:
    """Where a codec's threshold lies between two sampled levels, in file bits: "between 0.47 and 0.89 bpp"."""
    low, high = row["bracket"]["low"], row["bracket"]["high"]
    if high is None and low is None:
        return "not placed (no level tested)"
    if high is None:
        return f"above {_bits(low, unit)} (its least compressed level, {row['bracket']['failed_text']}, failed)"
    if low is None:
        return f"at or below {_bits(high, unit)} (every sampled level passed)" if row["bracket"]["failed"] is None \
            else f"at or below {_bits(high, unit)} (the failing level's rate is unknown)"
    return f"between {low:.3g} and {_bits(high, unit)}"


def codec_lines(facets: List[Facet], codecs: List[dict]) -> List[str]:
    """The codec comparison (`analysis.codec_comparison`), when the settings are several quantizers: file bits for
    every format (payload secondary, with what it holds per format), each codec's threshold bracket, and an order
    between two codecs only where their brackets do not overlap."""
    if not codecs:
        return []
    a = facets[0][1]
    margin, confidence = a.settings["margin_points"], a.settings["confidence"]
    unit = "bpp" if a.rate_name == "bpp" else a.rate_label
    reference = codecs[0]["reference"]
    lines = ["## Codecs at equal accuracy", "",
             f"Per codec, its q* (the most compressed level not worse than its raw by more than δ = {margin:g} "
             f"accuracy points, one-sided, at the α the family sentence above gives) and the bits there, with "
             f"{confidence:.0%} intervals over images: the fewest bits this codec needs among its sampled levels. "
             f"Bits are counted one way for every format: {codec_comparison.FILE_BITS}. Saved: against {reference} "
             f"at its own q*, paired image by image (both not worse than raw by more than δ; not a test that their "
             f"accuracies are equal). The payload columns (¹) are secondary: each format's payload is a different "
             f"part of its file.", "",
             "The grid limits the ranking: a codec's threshold (its fewest file bits not worse than raw by more than "
             "δ) lies between its last passing level (q*) and the first level that failed (tested, not shown within "
             "δ), two sampled levels. A codec is said to need fewer bits than another only when its bracket lies "
             "wholly below the other's; where brackets overlap this grid cannot order the two (sample levels "
             "between them to do so).", ""]
    for arch in dict.fromkeys(row["arch"] for row in codecs):
        rows = {row["setting"]: row for row in codecs if row["arch"] == arch}
        placed = [f"{tag}'s threshold lies {bracket_text(row, unit)}" for tag, row in rows.items()]
        ordered = [(tag, other) for tag, row in rows.items() for other in row["fewer_bits_than"]]
        claims = [f"{x} needs fewer bits than {y} ({x} is within δ at {_bits(rows[x]['bracket']['high'], unit)}, "
                  f"{y} not shown within δ at {_bits(rows[y]['bracket']['low'], unit)})" for x, y in ordered]
        tags = list(rows)
        apart = [f"{x} and {y}" for i, x in enumerate(tags) for y in tags[i + 1:]
                 if (x, y) not in ordered and (y, x) not in ordered]
        lines.append(f"- Arch {arch}: " + "; ".join(placed) + ". "
                     + ("; ".join(claims) + ". " if claims else "")
                     + (f"Not ordered by this grid: {', '.join(apart)}." if apart else ""))
        lines += [f"  - {tag}: {text}" for tag, row in rows.items() for text in saving_lines(row, unit, confidence)]
        lines += spread_lines(list(rows.values()))
    lines.append("")
    table = []
    for row in codecs:
        cell = lambda entry, **kw: number(entry["mean"], entry["ci"], **kw) if entry else "n/a"
        saved = [cell(row[key], scale=scale, sign=True) if row["setting"] != reference else "reference"
                 for key, scale in (("saved", 1), ("saved_share", 100), ("payload_saved", 1),
                                    ("payload_saved_share", 100))]
        table.append([row["setting"], row["arch"], row["q_star_text"], bracket_text(row, unit), cell(row["file"]),
                      saved[0], saved[1], cell(row["payload"]), saved[2], saved[3]])
    lines += single.markdown_table(["codec", "arch", "q*", f"threshold ({unit}, file)", f"file {unit} at q*",
                                    f"file {unit} saved vs {reference}", "file saved (%)", f"payload {unit} at q* ¹",
                                    f"payload {unit} saved ¹", "payload saved (%) ¹"], table)
    formats = dict.fromkeys((row["quantizer"], row["payload_includes"]) for row in codecs)
    lines += ["", "¹ Payload, as each format's parser separates it: "
              + "; ".join(f"{quantizer}: {text}" for quantizer, text in formats) + "."]
    return lines + [""]


def _share_text(value: Optional[float], open_end: str) -> str:
    return open_end if value is None else f"{100 * value:.0f}%"


def saving_lines(row: dict, unit: str, confidence: float) -> List[str]:
    """What the grid allows the saving to be, and the accuracy at equal rate, for one codec against the reference."""
    out = []
    for key, share, kind in (("saved_range", "saved_share", "file"), ("payload_saved_range", "payload_saved_share",
                                                                      "payload")):
        bounds, point = row.get(key), row.get(share)
        if bounds and point:
            out.append(f"{kind} saved {number(point['mean'], point['ci'], scale=100)}% at the two q* (interval over "
                       f"images); with both thresholds anywhere in their brackets, between "
                       f"{_share_text(bounds['low'], 'no lower bound')} and "
                       f"{_share_text(bounds['high'], 'no upper bound')} (the grid's bounds)")
    equal = row.get("equal_rate")
    if equal:
        out.append(f"at equal {equal['kind']} rate: {number(equal['accuracy'], equal['accuracy_ci'], scale=100)}% at "
                   f"its q* ({equal['rate']:.3g} {unit}) against the reference's "
                   f"{number(equal['reference_accuracy'], equal['reference_accuracy_ci'], scale=100)}% at "
                   f"{equal['reference_level_text']} ({equal['reference_rate']:.3g} {unit}, no fewer bits): "
                   f"{number(equal['diff'], equal['ci'], scale=100, sign=True)} points ({confidence:.0%} interval, "
                   f"independent runs)")
    return out


def spread_lines(rows: List[dict]) -> List[str]:
    """Settings of one quantizer (learning seeds, say): how far their q* and savings spread."""
    out = []
    for quantizer in dict.fromkeys(row["quantizer"] for row in rows):
        same = [row for row in rows if row["quantizer"] == quantizer]
        if len(same) < 2:
            continue
        kind = "payload" if all(row["payload_saved_share"] for row in same if row["saved_share"]) else "file"
        shares = [row["payload_saved_share" if kind == "payload" else "saved_share"]["mean"] for row in same
                  if row["saved_share"]]
        text = f"  - {quantizer} over its {len(same)} settings: q* " + ", ".join(row["q_star_text"] for row in same)
        if shares:
            text += (f"; {kind} saved at q* from {100 * min(shares):.0f}% to {100 * max(shares):.0f}% (the spread "
                     f"between settings, beside each one's interval over images)")
        out.append(text)
    return out


def report_markdown(sweep_dir: pathlib.Path, facets: List[Facet], plots: dict, codecs: List[dict] = (),
                    sections: List[str] = ()) -> str:
    config = read_config(sweep_dir, [])
    axis_names = [axis[0] for axis in config.get("grid", {}).get("axes", [])]
    lines = [f"# {config.get('name', sweep_dir.name)}: {len(facets)} settings of {', '.join(axis_names)}", "",
             "Each setting is a sweep of its own; its full report (methods, intervals, warnings) is linked in the "
             "first column. q* is the most compressed level not worse than the reference by more than δ (one-sided "
             "non-inferiority, fixed sequence); the knee is where the monotone fit falls δ below its plateau, "
             "given as the sampled levels around it. σ is the data's noise estimated from the images alone "
             "(wavelet), q_N the JPEG quality that removes that much (mean squared error = σ²); true σ and the "
             "noise entropy come from the camera model where the data is simulated. What these numbers track across "
             "settings is measured in VALIDATION.md, not assumed here.", ""]
    family = report_family(facets)
    if family:
        lines += [family.sentence(), ""]
    # Several formats: the file, the one definition of bits they share (`codec_comparison.FILE_BITS`).
    several = len({a.quantizer for _, a in facets}) > 1
    header = ["setting", "arch", "reference acc (%)", "q*", "vs reference (points)",
              "file rate at q*" if several else "payload at q*", "knee",
              "σ estimate", "q_N", "true σ", "noise entropy (bits/pixel)", "not learned"]
    table = []
    for setting, a in facets:
        link = f"[{setting['tag']}](settings/{setting['tag']}/report/report.md)"
        noise = a.noise or {}
        true = noise.get("true") or {}
        for arch, result in a.per_arch.items():
            test = next((t for t in result.tests if t["level"] == result.q_star), None)
            ref = next((r for r in a.accuracy if r["arch"] == arch and r["level"] == result.reference), None)
            knee_text = single.knee_text(a, result) if result.knee else "n/a"
            rate = result.rate_at_q_star
            if several:
                rate = next((r["file"] for r in a.rates if r["level"] == result.q_star), None)
            table.append([
                link, arch, number(ref["mean"], ref["ci"], scale=100) if ref else "n/a",
                "none" if result.q_star is None else a.level_text(result.q_star),
                number(test["diff"], test["ci"], scale=100, sign=True) if test else "n/a",
                number(rate["mean"], rate["ci"]) if rate and rate["mean"] is not None else "n/a",
                knee_text, number(noise.get("sigma"), noise.get("sigma_ci")) if noise else "n/a",
                _q_n_text(_q_n(noise)), f"{true['sigma']:.2f}" if true else "n/a",
                f"{true['entropy_bits_per_pixel']:.2f}" if true else "n/a",
                str(sum(r["arch"] == arch for r in a.at_chance))])
    lines += single.markdown_table(header, table) + [""]
    lines += ["## Accuracy per level (%, mean over seeds, interval, n seeds)", ""]
    for setting, a in facets:
        for arch in a.archs:
            rows = [r for r in a.accuracy if r["arch"] == arch]
            cells = [f"{a.level_text(r['level'])}: {number(r['mean'], r['ci'], scale=100)} ({r['n']})" for r in rows]
            lines.append(f"- **{setting['tag']}**, {arch}: " + "; ".join(cells))
    lines.append("")
    lines += codec_lines(facets, codecs)
    lines += list(sections)
    stuck = [(setting["tag"], r) for setting, a in facets for r in a.at_chance]
    if stuck:
        lines += ["## Runs that did not learn", "",
                  "Test accuracy not above chance (one-sided exact binomial test). 'failed optimisation': the lossless "
                  "level or another seed of the same level did learn, so this run is not a measurement; 'every seed "
                  "at chance': the level may have erased the classes, or training failed at every seed.", ""]
        lines += [f"- {tag}: {r['run']}: {100 * r['test_acc']:.1f}% (chance {100 * r['chance']:.1f}%): {r['verdict']}"
                  for tag, r in stuck] + [""]
    for name, path in plots.items():
        lines += [f"![{name}]({path.name})", ""]
    return "\n".join(lines)


def _storage_lines(sweep_dir: pathlib.Path, facets: List[Facet], budgets, out: pathlib.Path, seed: int) -> tuple:
    """The storage section (`reporting.storage`) and its summary lines when the settings differ in training-set
    size; q* for the naive choice is each arch's at the largest size."""
    from helmjax.reporting import storage
    rows = read_jsonl(sweep_dir / layout.RESULTS_JSONL)
    if not facets or not storage.has_sizes(rows):
        return [], []
    config = read_config(sweep_dir, [])
    if budgets is None:
        budgets = [storage.parse_bytes(b) for b in config.get("analysis", {}).get("budget") or []]
    largest = max(rows, key=lambda r: r.get("n_train") or 0).get("setting")
    q_stars = {arch: result.q_star for setting, a in facets if setting["tag"] == largest
               for arch, result in a.per_arch.items()}
    a = facets[0][1]
    return storage.write(sweep_dir, rows, q_stars, budgets, out, a.level_text,
                         confidence=a.settings["confidence"], seed=seed)


def write_facet_report(sweep_dir, *, resamples: Optional[int] = None, seed: int = 0, budgets=None
                       ) -> Tuple[pathlib.Path, str]:
    """Each setting's own report, then the side-by-side report, facets.json and plots in `<sweep_dir>/report/`;
    returns (report path, summary text). `budgets` (bytes) override the config's `analysis.budget`."""
    from helmjax.reporting import plots as plotting

    sweep_dir = pathlib.Path(sweep_dir)
    facets = analyze_settings(sweep_dir, resamples=resamples, seed=seed)
    for setting, a in facets:
        single.write_report(setting_dir(sweep_dir, setting["tag"]), analysis=a)
    out = layout.report_dir(sweep_dir)
    out.mkdir(parents=True, exist_ok=True)
    made = {name: path for name, path in (
        ("accuracy_vs_level_by_setting", plotting.accuracy_by_setting(facets, out / "accuracy_vs_level_by_setting.png",
                                                                      x="level")),
        ("accuracy_vs_rate_by_setting", plotting.accuracy_by_setting(facets, out / "accuracy_vs_rate_by_setting.png",
                                                                     x="rate"))) if path is not None}
    (out / layout.FACETS_FILE).write_text(json.dumps(json_safe(facet_rows(facets)), indent=1))
    codecs = codec_comparison.compare(facets, resamples=resamples or 1000, seed=seed)
    if codecs:
        (out / "codecs.json").write_text(json.dumps(json_safe(codecs), indent=1))
    sections = mismatch.markdown(facets) if mismatch.has_axis(facets) else []
    storage_section, storage_summary = _storage_lines(sweep_dir, facets, budgets, out, seed)
    path = out / layout.REPORT_FILE
    path.write_text(report_markdown(sweep_dir, facets, made, codecs, sections + storage_section))
    return path, "\n".join([summary_text(facets)] + storage_summary)


__all__ = ["RAW", "analyze_settings", "facet_rows", "has_settings", "summary_text", "write_facet_report"]
