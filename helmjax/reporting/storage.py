"""The storage report: the fitted storage law (`analysis.storage_law`) and the answer to each budget, with the
plots of accuracy against bits per image (iso-storage lines) and of the best bits per image against the budget.

Written for a sweep whose settings differ in `data.train_fraction` (results with more than one `n_train`).
"""

import json
import pathlib
from typing import Dict, List, Sequence

import numpy as np

from helmjax import layout
from helmjax.analysis import storage_law
from helmjax.analysis.findings import json_safe
from helmjax.errors import UserError
from helmjax.reporting.number_format import number

UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30,
         "tib": 2 ** 40}


def parse_bytes(text) -> float:
    """`"300kB"`, `"1.5GB"`, `"2GiB"` or a number of bytes -> bytes (kB = 1000 bytes, KiB = 1024)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        cleaned = str(text).strip().lower().replace(" ", "")
        unit = next((u for u in sorted(UNITS, key=len, reverse=True) if cleaned.endswith(u) and u != "b"), None)
        unit = unit or ("b" if cleaned.endswith("b") else "")
        try:
            value = float(cleaned[: len(cleaned) - len(unit)] if unit else cleaned) * UNITS.get(unit, 1)
        except ValueError:
            raise UserError(f"budget {text!r} is not a size; write e.g. 300kB, 1.5GB or 2e6 (bytes)") from None
    if not value > 0:
        raise UserError(f"budget {text!r} must be a positive size, e.g. 300kB")
    return value


def size_text(n_bytes: float) -> str:
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= factor:
            return f"{n_bytes / factor:.3g} {unit}"
    return f"{n_bytes:.0f} bytes"


def has_sizes(rows: Sequence[dict]) -> bool:
    return len({r.get("n_train") for r in rows if r.get("n_train")}) > 1


def _correct_of(sweep_dir: pathlib.Path):
    def read(row):
        base = layout.setting_dir(sweep_dir, row["setting"]) if row.get("setting") else sweep_dir
        return layout.read_test_correct(layout.run_dir(base, row["run"]))
    return read


def analyze(sweep_dir: pathlib.Path, rows: Sequence[dict], q_stars: Dict[str, object], budgets: Sequence[float],
            *, confidence: float = 0.95, resamples: int = 200, seed: int = 0) -> List[dict]:
    """Per architecture: the law (or why there is none) and each budget's answer."""
    out = []
    for arch in sorted({r["arch"] for r in rows}):
        mine = [r for r in rows if r["arch"] == arch]
        points = storage_law.grid_points(mine, _correct_of(pathlib.Path(sweep_dir)))
        law = storage_law.fit_law(points, resamples=resamples, confidence=confidence, seed=seed)
        available = max((p.n for p in points), default=0)
        entry = {"arch": arch, "law": law, "available": available, "q_star": q_stars.get(arch), "answers": [],
                 "why": None}
        if law is None:
            entry["why"] = ("the grid has too few sizes or levels to fit five parameters (need 2 sizes, 2 rates "
                            "and 6 grid points)")
        elif not law.describes_data:
            entry["why"] = (f"the law does not describe this grid: it predicts a left-out grid point with an RMS "
                            f"error of {100 * law.loo_rms:.2g} accuracy points, more than twice the "
                            f"{100 * law.noise_rms:.2g} points a grid point's mean is measured to")
        else:
            entry["answers"] = [storage_law.answer_budget(law, b, available, q_stars.get(arch)) for b in budgets]
        out.append(entry)
    return out


def param_text(law: storage_law.StorageLaw, name: str, scale: float = 1.0) -> str:
    """A fitted parameter with its interval, or "at the fit's bound" where the fit ran into one of the limits it
    searches within (the data then do not determine it)."""
    k = storage_law.PARAMS.index(name)
    estimate = law.parameter(name)
    low, high = storage_law.LOWER[k], storage_law.UPPER[k]
    for side, bound in (("lower", low), ("upper", high)):
        if abs(estimate["mean"] - bound) <= 1e-6 * max(1.0, abs(bound)):
            return f"{bound * scale:g} (at the fit's {side} bound: not determined by the data)"
    return number(estimate["mean"], estimate["ci"], scale=scale)


def _acc(error: dict) -> str:
    """Predicted accuracy (%) from a predicted error with its interval."""
    return number(1 - error["mean"], (1 - error["ci"][1], 1 - error["ci"][0]), scale=100)


def markdown(entries: List[dict], level_text) -> List[str]:
    lines = ["## Storage budget: how many images at how many bits", "",
             "The storage law err(n, L) = E + a·(n/n_max)^(−α) + b·(L/L_max)^(−β) (Mentzer and Montanari, "
             "arXiv 2407.17954) fitted by weighted least squares to the test error of every (training-set size n, "
             "level) of the grid; L is the payload in bits per image (the raw level at the lossless rate of the same "
             "images); intervals are bootstrap percentiles over seeds and test examples. A budget counts the "
             "training images as stored files (headers included); each answer is the measured level and the number "
             "of images (at most all of them) with the lowest predicted error, against storing every image "
             "losslessly (as many as fit) and every image at q*.", ""]
    for entry in entries:
        law = entry["law"]
        lines.append(f"**{entry['arch']}**")
        lines.append("")
        if law is not None:
            cell = lambda name, scale=1: param_text(law, name, scale)
            ratio = law.optimal_bits_exponent
            ratio_text = ("not determined (α or β at the fit's bound)" if "bound" in param_text(law, "alpha")
                          + param_text(law, "beta") else number(ratio["mean"], ratio["ci"]))
            lines += [f"- fit: E = {cell('E', 100)} points of error, α = {cell('alpha')}, β = {cell('beta')}; "
                      f"a = {cell('a', 100)} and b = {cell('b', 100)} points at n_max = {law.scale[0]:.0f} images "
                      f"and L_max = {law.scale[1]:.0f} bits",
                      f"- the best bits per image grow as budget^(α/(α+β)), α/(α+β) = {ratio_text}",
                      f"- leave-one-grid-point-out prediction error: RMS {100 * law.loo_rms:.2g} points, largest "
                      f"{100 * float(np.max(np.abs(law.loo))):.2g} points, against {100 * law.noise_rms:.2g} points "
                      f"of measurement error per grid point (RMS); the law is used when the first is at most twice "
                      f"the last"]
        if entry["why"]:
            lines += [f"- no budget answer: {entry['why']}"]
            if law is not None:
                worst = np.argsort(-np.abs(law.loo))[:3]
                lines.append("- largest misses (predicted minus measured accuracy, left out): " + ", ".join(
                    f"n = {law.points[k].n} at {level_text(law.points[k].level)}: {-100 * law.loo[k]:+.1f} points"
                    for k in worst))
            lines.append("")
            continue
        header = ["budget", "best: level", "images", "payload bits/image (bits/pixel)", "stored", "predicted acc (%)",
                  "lossless: images", "predicted acc (%)", "gain (points)", "all at q*: level, images",
                  "predicted acc (%)", "gain (points)", "same level in bootstrap"]
        table = []
        for answer in entry["answers"]:
            best = answer["best"]
            if best is None:
                table.append([size_text(answer["budget_bytes"]), answer["why"]] + [""] * (len(header) - 2))
                continue
            flag = " (extrapolated in n)" if best.extrapolated else ""
            bpp = storage_law.level_costs(entry["law"])[best.level].payload_bpp
            row = [size_text(answer["budget_bytes"]), level_text(best.level), f"{best.n}{flag}",
                   f"{best.payload_bits:.0f}" + ("" if bpp is None else f" ({bpp:.3g})"), size_text(best.stored_bytes),
                   _acc(best.error)]
            for name in ("lossless", "all at q*"):
                naive = next((c for c in answer["naive"] if c.name == name), None)
                gain = next((g for g in answer["gain"] if g["against"] == name), None)
                if naive is None or naive.n < 1:
                    row += ["n/a", "n/a", "n/a"]
                    continue
                where = f"{naive.n}" if name == "lossless" else f"{level_text(naive.level)}, {naive.n}"
                same = naive.level == best.level and naive.n == best.n
                row += [where + (" (extrapolated)" if naive.extrapolated else ""), _acc(naive.error),
                        "same choice" if same else number(gain["diff"]["mean"], gain["diff"]["ci"], scale=100,
                                                          sign=True)]
            row.append(f"{100 * answer['same_level_share']:.0f}%")
            table.append(row)
        from helmjax.reporting.report import markdown_table
        lines += [""] + markdown_table(header, table) + [""]
    return lines


def to_json(entries: List[dict]) -> list:
    out = []
    for entry in entries:
        law = entry["law"]
        item = {"arch": entry["arch"], "available": entry["available"], "q_star": entry["q_star"],
                "why_no_answer": entry["why"]}
        if law is not None:
            item.update({name: law.parameter(name) for name in storage_law.PARAMS})
            item.update(scale={"n_max": law.scale[0], "bits_max": law.scale[1]},
                        optimal_bits_exponent=law.optimal_bits_exponent, loo_rms=law.loo_rms,
                        loo=law.loo.tolist(), noise_rms=law.noise_rms, describes_data=law.describes_data,
                        points=[{"n": p.n, "level": p.level, "payload_bits": p.payload_bits,
                                 "payload_bits_per_pixel": p.payload_bpp,
                                 "file_bytes": p.file_bytes, "error": p.mean, "seeds": len(p.errors)}
                                for p in law.points])
        item["answers"] = [{
            "budget_bytes": a["budget_bytes"],
            "best": None if a["best"] is None else vars(a["best"]) | {"stored_bytes": a["best"].stored_bytes},
            "naive": [vars(c) for c in a["naive"]], "gain": a.get("gain"),
            "same_level_share": a.get("same_level_share")} for a in entry["answers"]]
        out.append(item)
    return json_safe(out)


def plots(entries: List[dict], budgets: Sequence[float], directory: pathlib.Path, level_text) -> Dict[str, pathlib.Path]:
    """Accuracy against payload bits per image (measured points, the law per size, dashed iso-storage lines) and
    the best bits per image against the budget; one pair per architecture with a law."""
    from helmjax.reporting.plots import _pyplot, _save
    plt = _pyplot()
    made = {}
    for entry in entries:
        law = entry["law"]
        if law is None:
            continue
        sizes = sorted({p.n for p in law.points})
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(sizes)))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        bits = np.geomspace(min(p.payload_bits for p in law.points) / 1.5, max(p.payload_bits for p in law.points) * 1.5,
                            200)
        for n, colour in zip(sizes, colours):
            pts = sorted((p for p in law.points if p.n == n), key=lambda p: p.payload_bits)
            ax.plot([p.payload_bits for p in pts], [100 * (1 - p.mean) for p in pts], "o", color=colour)
            ax.plot(bits, 100 * (1 - law.predict(n, bits)), "-", color=colour, label=f"n = {n}")
        header = float(np.median([p.file_bytes * 8 / p.payload_bits for p in law.points]))
        for budget in budgets:  # n = budget / file size, with the file size at the grid's header ratio
            n = np.minimum(entry["available"], budget * 8 / (bits * header))
            ok = n >= 1
            ax.plot(bits[ok], 100 * (1 - law.predict(n[ok], bits[ok])), "--", color="grey", lw=1)
            if ok.any():
                k = int(np.flatnonzero(ok)[len(np.flatnonzero(ok)) // 2])
                ax.annotate(size_text(budget), (bits[k], 100 * (1 - law.predict(n[k], bits[k]))), fontsize=7,
                            color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("payload bits per image (L)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{entry['arch']}: the storage law per training-set size; dashed: equal storage")
        ax.legend(fontsize=7)
        made[f"storage_law_{entry['arch']}"] = _save(fig, directory / f"storage_law_{entry['arch']}.png")
        span = np.geomspace(min(p.file_bytes for p in law.points) * min(sizes),
                            max(p.file_bytes for p in law.points) * max(sizes), 40)
        curve = storage_law.optimal_bits_curve(law, span, entry["available"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(span, [c["continuous_bits"] for c in curve], "-", label="law, continuous L")
        ax.plot(span, [c["best_measured_bits"] for c in curve], "o", ms=3, label="best measured level")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("budget (bytes of training images)")
        ax.set_ylabel("best payload bits per image")
        ax.legend(fontsize=7)
        made[f"optimal_bits_{entry['arch']}"] = _save(fig, directory / f"optimal_bits_{entry['arch']}.png")
    return made


def summary(entries: List[dict], level_text) -> List[str]:
    """The printed lines: the exponents and each budget's answer, or why there is none."""
    lines = []
    for entry in entries:
        law = entry["law"]
        head = f"storage law ({entry['arch']})"
        if law is not None:
            head += (f": α = {param_text(law, 'alpha')}, β = {param_text(law, 'beta')}, "
                     f"leave-one-out RMS {100 * law.loo_rms:.2g} points")
        lines.append(head)
        if entry["why"]:
            lines.append(f"  no budget answer: {entry['why']}")
        for answer in entry["answers"]:
            best = answer["best"]
            if best is None:
                lines.append(f"  {size_text(answer['budget_bytes'])}: {answer['why']}")
                continue
            naive = "; ".join(f"{c.name}: {c.n} images, {_acc(c.error)}%" for c in answer["naive"] if c.n >= 1)
            lines.append(f"  {size_text(answer['budget_bytes'])}: {best.n} images at {level_text(best.level)} "
                         f"({best.payload_bits:.0f} bits each), predicted {_acc(best.error)}% accuracy"
                         + (f" (against {naive})" if naive else ""))
    return lines


def write(sweep_dir: pathlib.Path, rows: Sequence[dict], q_stars: Dict[str, object], budgets: Sequence[float],
          directory: pathlib.Path, level_text, *, confidence: float = 0.95, resamples: int = 200, seed: int = 0
          ) -> tuple:
    """storage.json and the plots; returns (the report section's lines, the printed summary lines)."""
    entries = analyze(sweep_dir, rows, q_stars, budgets, confidence=confidence, resamples=resamples, seed=seed)
    (directory / "storage.json").write_text(json.dumps(to_json(entries), indent=1))
    made = plots(entries, budgets, directory, level_text)
    section = markdown(entries, level_text) + [line for name, path in made.items()
                                               for line in (f"![{name}]({path.name})", "")]
    return section, summary(entries, level_text)
