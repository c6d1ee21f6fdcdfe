"""Does the knee measure the noise? Both ground-truth ladders, and what each number of the report tracks.

Runs (or resumes, or reuses) `noise_ladder` (the camera's sensor noise varied, content fixed) and `content_ladder`
(the grating's contrast varied, noise fixed) through the sweep runner, writes their side-by-side reports, and prints
for the knee, q*, N_approx at q*, the bits not needed at q*, the estimated σ and q_N: the Spearman rank correlation
with the true noise (σ and noise entropy, on the noise ladder) and with the content parameter (on the content
ladder), each with a percentile bootstrap interval over the ladder's settings (6 points, so wide) and the exact
permutation p-value. Draws each number against the truth (`<workdir>/validate_noise/*.png`) and writes the numbers
to `validate_noise.json`.

Conventions for ranks: a knee censored at or below the most compressed level counts as that level; "no q*" (even
the least compressed level fails) as above the least compressed level; q_N "above 100" as 101, "below 1" as 0.

    python -m benchmarks.validate_noise [--workdir runs] [--resamples 2000] [--no_train]
"""

import argparse
import itertools
import json
import pathlib
import sys
import time
from typing import Dict, List, Optional

import numpy as np
from scipy import stats

from helmjax import config as config_lib
from helmjax.errors import UserError
from helmjax.reporting import facets
from helmjax.reporting.number_format import number
from helmjax.sweeps import identity, sweep

LADDERS = ("noise_ladder", "content_ladder")
QUANTITIES = {  # name -> (label, how to read it from a facet row)
    "knee": ("knee (quality, interpolated)", lambda r: r["knee"] if r["knee_shape"] == "knee" else _lowest(r)),
    "q_star": ("q* (quality)", lambda r: r["q_star_position"] if r["q_star"] is not None else _above(r)),
    "n_approx": ("N_approx at q* (mean luma step)",
                 lambda r: (r["n_approx_at_q_star"] or {}).get("mean_luminance_step")),
    "bits_not_needed": ("bits not needed at q* (bits/pixel)", lambda r: (r["bits_not_needed"] or {}).get("mean")),
    "lossless": ("lossless rate (bits/pixel)", lambda r: (r.get("lossless") or {}).get("mean")),
    "sigma_estimate": ("σ estimate (grey levels)", lambda r: r["sigma_estimate"]),
    "q_n": ("q_N at 4:2:0", lambda r: _q_n_value(r)),
    "q_n_444": ("q_N at 4:4:4", lambda r: _q_n_value(r, "4:4:4")),
}


def _levels(row) -> List[float]:
    return sorted(float(a["level"]) for a in row["accuracy"] if a["level"] != "raw")


def _lowest(row) -> Optional[float]:
    levels = _levels(row)
    return levels[0] if levels else None


def _above(row) -> Optional[float]:
    levels = _levels(row)
    return levels[-1] + 1.0 if levels else None


def _q_n_value(row, subsampling: str = "4:2:0") -> Optional[float]:
    for entry in row.get("q_n") or []:
        if entry["subsampling"] == subsampling:
            q = entry["quality"]
            return 101.0 if q == "above 100" else 0.0 if q == "below 1" else float(q)
    return None


def _q_n_text(row) -> str:
    value = _q_n_value(row)
    return "n/a" if value is None else ">100" if value > 100 else "<1" if value < 1 else f"{value:.0f}"


def truths(row: dict) -> Dict[str, Optional[float]]:
    """What is known about a setting: the camera's true noise, and the content parameter (contrast's low end)."""
    content = row.get("contrast")
    return {"true_sigma": row["true_sigma"], "true_entropy": row["true_entropy_bits_per_pixel"],
            "contrast": None if content is None else float(content)}


def spearman(x, y, resamples: int, confidence: float, seed: int = 0) -> dict:
    """Spearman's rho with a percentile bootstrap interval over the points and the exact permutation p-value."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"rho": None, "ci": None, "p": None, "n": int(len(x)),
                "note": "constant" if len(x) >= 3 else "too few points"}
    rho = round(float(stats.spearmanr(x, y).statistic), 10)  # ±1 exactly, not 0.99999999999999989
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(x[pick]) > 0 and np.ptp(y[pick]) > 0:
            draws.append(stats.spearmanr(x[pick], y[pick]).statistic)
    tail = 100 * (1 - confidence) / 2
    ci = tuple(round(float(v), 10) for v in np.nanpercentile(draws, [tail, 100 - tail])) if draws else None
    p = permutation_p(x, y, rho, rng)
    return {"rho": rho, "ci": ci, "p": float(p), "n": int(len(x))}


def permutation_p(x, y, rho: float, rng) -> float:
    """Two-sided p of Spearman's rho under random pairing: exact over all n! pairings up to n = 8, else 9999
    random ones (with the observed one counted)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    n = len(rx)
    if n <= 8:
        orders = np.array(list(itertools.permutations(range(n))))
    else:
        orders = np.array([rng.permutation(n) for _ in range(9999)])
    centred_x = rx - rx.mean()
    shuffled = ry[orders] - ry.mean()
    rhos = shuffled @ centred_x / (np.linalg.norm(centred_x) * np.linalg.norm(shuffled, axis=1))
    extreme = np.count_nonzero(np.abs(rhos) >= abs(rho) - 1e-12)
    return float(extreme / len(orders)) if n <= 8 else float((extreme + 1) / (len(orders) + 1))


def run_ladder(name: str, workdir: pathlib.Path, train: bool) -> pathlib.Path:
    config = config_lib.load_experiment(name)
    if not train:
        return identity.find_sweep_dir(workdir, config)
    sweep_dir = identity.resolve_sweep_dir(workdir, config)
    t0 = time.perf_counter()
    out = sweep.run_sweep(config, workdir, sweep_dir=sweep_dir, progress=False)
    print(f"{name}: {len(out.trained)} runs trained, {len(out.skipped)} reused, {len(out.failed)} failed "
          f"({time.perf_counter() - t0:.0f} s)")
    return sweep_dir


def plot(rows_by_ladder: dict, path: pathlib.Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(QUANTITIES), figsize=(3.0 * len(QUANTITIES), 6.0), squeeze=False)
    for row_axes, (ladder, truth_key, truth_label) in zip(axes, (("noise_ladder", "true_sigma", "true σ (grey levels)"),
                                                                ("content_ladder", "contrast", "grating contrast (low end)"))):
        rows = rows_by_ladder.get(ladder, [])
        for ax, (key, (label, read)) in zip(row_axes, QUANTITIES.items()):
            xs = [truths(r)[truth_key] for r in rows]
            ys = [read(r) for r in rows]
            points = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=4)
            if ladder == "noise_ladder":
                ax.set_xscale("symlog", linthresh=0.5)
            ax.set_xlabel(truth_label, fontsize=7)
            ax.set_title(f"{label}\n({ladder})", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--no_train", action="store_true", help="analyse the ladders already on disk only")
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    rows_by_ladder, record = {}, {"correlations": [], "ladders": {}}
    for name in LADDERS:
        sweep_dir = run_ladder(name, workdir, not args.no_train)
        path, _ = facets.write_facet_report(sweep_dir)
        rows = [r for r in json.loads((sweep_dir / "report" / "facets.json").read_text()) if r["arch"] == "A"]
        rows_by_ladder[name] = rows
        record["ladders"][name] = {"report": str(path), "settings": rows}
        print(f"\n{name} ({path})")
        print(f"  {'setting':22s} {'true σ':>7s} {'entropy':>7s} {'ref acc':>17s} {'q*':>5s} {'knee':>14s} "
              f"{'σ est':>20s} {'q_N':>10s} {'not learned':>11s}")
        for r in rows:
            bracket = r["knee_bracket"] or [None, None]
            knee = (f"{bracket[0]}-{bracket[1]}" if r["knee_shape"] == "knee" else "censored")
            print(f"  {r['setting']:22s} {r['true_sigma']:7.2f} {r['true_entropy_bits_per_pixel']:7.2f} "
                  f"{number(r['reference_acc'], None, scale=100):>17s} {str(r['q_star']):>5s} {knee:>14s} "
                  f"{number(r['sigma_estimate'], r['sigma_estimate_ci']):>20s} "
                  f"{_q_n_text(r):>10s} {len(r['not_learned']):11d}")
    print("\nSpearman rank correlation (bootstrap interval over settings; exact permutation p)")
    for ladder, truth_key in (("noise_ladder", "true_sigma"), ("noise_ladder", "true_entropy"),
                              ("content_ladder", "contrast"), ("content_ladder", "true_sigma")):
        rows = rows_by_ladder.get(ladder, [])
        for key, (label, read) in QUANTITIES.items():
            result = spearman([truths(r)[truth_key] for r in rows], [read(r) for r in rows],
                              args.resamples, args.confidence)
            result.update(ladder=ladder, truth=truth_key, quantity=key)
            record["correlations"].append(result)
            text = (result.get("note") if result["rho"] is None else
                    f"{number(result['rho'], result['ci'])}, p = {result['p']:.2g}")
            print(f"  {ladder:15s} {truth_key:13s} {label:36s} rho = {text}")
    out = workdir / "validate_noise"
    plot(rows_by_ladder, out / "estimates_vs_truth.png")
    (out / "validate_noise.json").write_text(json.dumps(record, indent=1, default=str))
    print(f"\nplots and numbers: {out}")
    return 0


def cli(entry) -> None:
    """Runs a validation command's `main`: a UserError is one line on stderr and exit status 2."""
    try:
        sys.exit(entry())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli(main)
