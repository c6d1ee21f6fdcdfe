"""The pictures of a sweep's analysis: accuracy vs level with intervals, the δ band, the knee and q* (the paper's
Figure 3), accuracy vs parameters (Figure 4), rates vs level, epochs to target vs level, and example images.

Matplotlib is imported lazily (Agg backend) so `helmjax.analysis` and the CLI stay light. Every function
takes an `Analysis` and a path, writes one PNG and returns its path (None when there is nothing to draw).
"""

import math
import pathlib
from typing import Dict, Optional

import numpy as np

from helmjax.analysis import RAW, Analysis

DPI = 120
RAW_OFFSET = 1.8  # the lossless baseline sits this factor to the right of the least compressed level on log axes


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _compressed_levels(analysis: Analysis) -> list:
    return [level for level in analysis.levels if level != RAW]


def _x_of(analysis: Analysis):
    """Each level's x: its position on the analysis' axis (left = more compression; log scale), labelled with the
    level itself; "raw" goes just right of the least compressed level."""
    positions = [analysis.position(level) for level in _compressed_levels(analysis)]
    raw_x = (max(positions) if positions else 1.0) * RAW_OFFSET
    return lambda level: raw_x if level == RAW else analysis.position(level)


def _level_axis(ax, analysis: Analysis):
    compressed = _compressed_levels(analysis)
    x_of = _x_of(analysis)
    ticks = compressed + ([RAW] if RAW in analysis.levels else [])
    xs = [x_of(level) for level in compressed]
    if xs and (max(xs) / max(min(xs), 1e-9) > 4 or RAW in analysis.levels):
        ax.set_xscale("log")
    ax.set_xticks([x_of(level) for level in ticks])
    ax.set_xticklabels([analysis.scale.tick(level) for level in ticks], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel(analysis.level_label)


def _save(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _colours(n: int):
    cmap = _pyplot().get_cmap("viridis")
    return [cmap(i / max(n - 1, 1) * 0.9) for i in range(n)]


def accuracy_vs_level(analysis: Analysis, path) -> Optional[pathlib.Path]:
    """One panel per arch: means with their intervals, the δ band under the reference, the monotone fit, the knee
    and its interval, the paper's a + c ln q curve when it fits, and q*."""
    if not analysis.accuracy:
        return None
    plt = _pyplot()
    archs = [arch for arch in analysis.archs if any(row["arch"] == arch for row in analysis.accuracy)]
    columns = min(3, len(archs))
    rows = math.ceil(len(archs) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.6 * rows), squeeze=False, sharey=True)
    x_of = _x_of(analysis)
    margin = 100 * analysis.settings["margin"]
    confidence = analysis.settings["confidence"]
    for ax, arch in zip(axes.ravel(), archs):
        table = [row for row in analysis.accuracy if row["arch"] == arch]
        compressed = [row for row in table if row["level"] != RAW]
        raw = [row for row in table if row["level"] == RAW]
        _errorbar(ax, [x_of(r["level"]) for r in compressed], compressed, "o", "C0",
                  f"mean, {confidence:.0%} interval")
        result = analysis.per_arch.get(arch)
        xs = [x_of(r["level"]) for r in compressed]
        if raw:
            _errorbar(ax, [x_of(RAW)], raw, "s", "black", None)
        if result is not None:
            reference = 100 * result.reference_mean
            ax.axhspan(reference - margin, reference, color="grey", alpha=0.15, label=f"reference - δ ({margin:g} pt)")
            ax.axhline(reference, color="black", lw=0.8, ls="--")
            if result.knee:
                ax.plot([x_of(level) for level in result.levels], 100 * np.asarray(result.knee["fitted"]),
                        color="C1", lw=1.5, label="monotone fit")
                if result.knee["shape"] == "knee":
                    low, high = result.knee["bracket"]
                    ax.axvspan(x_of(low) if low is not None else min(xs), x_of(high) if high is not None else max(xs),
                               color="C1", alpha=0.12, label="knee: between these sampled levels")
            fit = result.log_fit
            if fit and fit["fits"] and xs:
                values = [analysis.scale.log_value(level) for level in result.levels]
                grid = np.geomspace(min(values), max(values), 200)  # the x of a + c ln x, drawn at its position
                positions = grid if analysis.scale.named else [analysis.position(v) for v in grid]
                ax.plot(positions, 100 * (fit["a"] + fit["c"] * np.log(grid)), color="C2", lw=1, ls="--",
                        label=f"a + c ln x, R²={fit['r2']:.2f}")
            if result.q_star not in (None, RAW):
                ax.axvline(x_of(result.q_star), color="C3", lw=1.5,
                           label=f"sweet spot {analysis.level_text(result.q_star)}")
        params = analysis.params.get(arch)
        ax.set_title(f"arch {arch}" + (f" ({params:,} params)" if params else ""), fontsize=10)
        _level_axis(ax, analysis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in axes.ravel()[len(archs):]:
        ax.set_visible(False)
    fig.suptitle(f"{analysis.experiment}: accuracy vs {analysis.level_label} ({analysis.dataset})")
    fig.tight_layout()
    return _save(fig, path)


def _errorbar(ax, xs, rows, marker, colour, label):
    """Means with asymmetric interval bars (percent)."""
    means = np.array([100 * r["mean"] for r in rows])
    low = np.array([100 * (r["ci"][0] if r["ci"][0] is not None else r["mean"]) for r in rows])
    high = np.array([100 * (r["ci"][1] if r["ci"][1] is not None else r["mean"]) for r in rows])
    ax.errorbar(xs, means, yerr=[means - low, high - means], fmt=marker, color=colour, capsize=3, label=label)


def accuracy_vs_params(analysis: Analysis, path) -> Optional[pathlib.Path]:
    """The paper's Figure 4: one line per level, accuracy against model size."""
    if len(analysis.params) < 2:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    levels = _compressed_levels(analysis)
    colours = dict(zip(levels, _colours(len(levels))))
    colours[RAW] = "black"
    for level in analysis.levels:
        table = sorted((row for row in analysis.accuracy if row["level"] == level and row["arch"] in analysis.params),
                       key=lambda row: analysis.params[row["arch"]])
        if not table:
            continue
        _errorbar(ax, [analysis.params[r["arch"]] for r in table], table, "o-", colours[level],
                  analysis.level_text(level))
    for arch, params in analysis.params.items():
        ax.annotate(arch, (params, 0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{analysis.experiment}: accuracy vs model size, per {analysis.level_label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=analysis.level_label, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def rate_vs_level(analysis: Analysis, path) -> Optional[pathlib.Path]:
    """Payload, headers and whole file against the level, the lossless reference, and each arch's q* marked."""
    points = [row for row in analysis.rates if row["file"]["mean"] is not None]
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x_of = _x_of(analysis)
    xs = [x_of(r["level"]) for r in points]
    for key, colour, label in (("payload", "C0", "coded payload"), ("header", "C7", "headers and tables"),
                               ("file", "C1", "whole file")):
        values = [r[key]["mean"] for r in points]
        if any(v is not None for v in values):
            ax.plot(xs, [np.nan if v is None else v for v in values], "o-", color=colour, label=label, ms=4)
    if analysis.lossless:
        ax.axhline(analysis.lossless["mean"], color="black", ls="--", lw=0.8,
                   label=f"lossless: {analysis.lossless['mean']:.3g}")
    if analysis.storage_rate is not None:
        ax.axhline(analysis.storage_rate, color="grey", ls=":", lw=0.8, label=f"raw storage: {analysis.storage_rate:g}")
    rate_of = {r["level"]: r[r["primary"]]["mean"] for r in points}
    for index, (arch, result) in enumerate(analysis.per_arch.items()):
        if result.q_star in rate_of and rate_of[result.q_star] is not None:
            ax.plot([x_of(result.q_star)], [rate_of[result.q_star]], marker="v", ms=10, ls="none",
                    color=f"C{(index + 3) % 10}", label=f"q* of {arch}: {rate_of[result.q_star]:.3g}")
    ax.set_yscale("log")
    _level_axis(ax, analysis)
    ax.set_ylabel(analysis.rate_label)
    ax.set_title(f"{analysis.experiment}: {analysis.rate_label} vs {analysis.level_label}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _save(fig, path)


def convergence_vs_level(analysis: Analysis, path) -> Optional[pathlib.Path]:
    """Mean epochs to reach the target (95% of the lossless run's best), one line per arch."""
    table = [row for row in analysis.accuracy if row.get("convergence_epochs") is not None]
    if not table:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x_of = _x_of(analysis)
    for index, arch in enumerate(analysis.archs):
        rows = [row for row in table if row["arch"] == arch]
        if rows:
            ax.plot([x_of(r["level"]) for r in rows], [r["convergence_epochs"] for r in rows], "o-",
                    color=f"C{index % 10}", label=arch)
    _level_axis(ax, analysis)
    ax.set_ylabel("epochs to 95% of raw's best val acc")
    ax.set_title(f"{analysis.experiment}: epochs to target vs {analysis.level_label}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title="arch", title_fontsize=8)
    return _save(fig, path)


def example_grid(analysis: Analysis, examples: Dict, path, max_levels: int = 8) -> Optional[pathlib.Path]:
    """Rows: example images; columns: raw then levels from least to most compression (at most `max_levels`)."""
    numeric = sorted((level for level in examples if level != RAW), key=analysis.position, reverse=True)
    if len(numeric) > max_levels:
        picks = np.unique(np.round(np.linspace(0, len(numeric) - 1, max_levels)).astype(int))
        numeric = [numeric[i] for i in picks]
    columns = ([RAW] if RAW in examples else []) + numeric
    if not columns:
        return None
    count = min(len(examples[level]) for level in columns)
    count = min(count, 4)
    if count == 0:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(count, len(columns), figsize=(1.5 * len(columns), 1.55 * count), squeeze=False)
    rate_of = {row["level"]: row[row["primary"]]["mean"] for row in analysis.rates}
    for column, level in enumerate(columns):
        for row in range(count):
            image = np.asarray(examples[level][row])
            ax = axes[row, column]
            ax.imshow(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image,
                      cmap="gray" if image.ndim == 2 or image.shape[-1] == 1 else None, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        rate = rate_of.get(level)
        title = analysis.level_text(level) + (f"\n{rate:.2f} bpp" if rate is not None and analysis.rate_name == "bpp"
                                              else "")
        axes[0, column].set_title(title, fontsize=8)
    fig.suptitle(f"{analysis.experiment}: examples per {analysis.level_label}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def write_plots(analysis: Analysis, directory, examples: Optional[Dict] = None) -> Dict[str, pathlib.Path]:
    """All plots into `directory`; returns name -> path of those that had something to draw."""
    directory = pathlib.Path(directory)
    made = {
        "accuracy_vs_level": accuracy_vs_level(analysis, directory / "accuracy_vs_level.png"),
        "accuracy_vs_params": accuracy_vs_params(analysis, directory / "accuracy_vs_params.png"),
        "rate_vs_level": rate_vs_level(analysis, directory / "rate_vs_level.png"),
        "convergence_vs_level": convergence_vs_level(analysis, directory / "convergence_vs_level.png"),
        "examples": example_grid(analysis, examples or {}, directory / "examples.png"),
    }
    return {name: path for name, path in made.items() if path is not None}


def accuracy_by_setting(facets, path, x: str = "level") -> Optional[pathlib.Path]:
    """A sweep with grid axes: one panel per arch, one line per setting (`reporting.facets`), accuracy with its
    intervals against the level (`x="level"`, settings of one quantizer only) or against the primary rate
    (`x="rate"`: bits per pixel or second, the axis every codec shares); the lossless level is left out of the rate
    plot's lines and drawn as a horizontal mark."""
    facets = [(setting, a) for setting, a in facets if a.accuracy]
    if not facets or (x == "level" and len({a.quantizer for _, a in facets}) > 1):
        return None
    plt = _pyplot()
    archs = list(dict.fromkeys(arch for _, a in facets for arch in a.archs))
    fig, axes = plt.subplots(1, len(archs), figsize=(5.4 * len(archs), 4.0), squeeze=False, sharey=True)
    colours = _colours(len(facets))
    for ax, arch in zip(axes.ravel(), archs):
        drawn = False
        for colour, (setting, a) in zip(colours, facets):
            rows = [r for r in a.accuracy if r["arch"] == arch]
            from helmjax.sweeps.axes import value_text
            label = ", ".join(f"{k}={value_text(v)}" for k, v in setting["values"].items())
            if x == "level":
                x_of = _x_of(a)
                points = [(x_of(r["level"]), r) for r in rows]
            else:
                rate = {r["level"]: r[r["primary"]]["mean"] for r in a.rates
                        if r.get("primary") and r[r["primary"]]["mean"] is not None}
                points = [(rate[r["level"]], r) for r in rows if r["level"] != RAW and r["level"] in rate]
                raw = [r for r in rows if r["level"] == RAW]
                if raw:
                    ax.axhline(100 * raw[0]["mean"], color=colour, lw=0.8, ls=":")
            if not points:
                continue
            points.sort(key=lambda p: p[0])
            _errorbar(ax, [p[0] for p in points], [p[1] for p in points], "o", colour, label)
            ax.plot([p[0] for p in points], [100 * p[1]["mean"] for p in points], color=colour, lw=1)
            drawn = True
        if x == "level" and drawn:
            _level_axis(ax, facets[0][1])
        elif drawn:
            ax.set_xscale("log")
            ax.set_xlabel(f"{facets[0][1].rate_label} (coded payload; dotted: each setting's lossless accuracy)")
        ax.set_title(f"arch {arch}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0, 0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"{facets[0][1].experiment}: accuracy by setting")
    fig.tight_layout()
    return _save(fig, path)
