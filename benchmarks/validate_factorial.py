"""Does the knee follow the noise or the content? The replicated factorial ladder, analysed by effect sizes.

`experiments/factorial_ladder.py` crosses the camera's noise (photons 100, 400, 6400) with the grating's contrast
(x0.7, x1, x1.4), 3 seeds at every level of a dense grid (q = 3 ... 50) and at raw. Each setting's knee (where the
monotone fit of accuracy against ln q drops δ below its plateau: `analysis.curve`) is drawn on the analysis' own
replicates (test examples and training seeds, `contrasts.level_replicates`). On every draw the 9 knees are regressed,

    ln knee = a + b_σ ln σ + b_c ln contrast,

so b_σ is the knee's elasticity with the true noise (its relative change per relative change of σ) and b_c with
the contrast. Printed: both slopes with 95% percentile intervals, and whether each interval lies inside the
equivalence bound ±EQUIVALENCE (chosen before the run: a doubling of σ or of the contrast moving the knee by less
than 15%), outside it, or neither (undecided). Per setting, the paper's own prediction, the knee at q_N (4:2:0, the
sweep's subsampling): "consistent" when q_N lies inside the knee's interval, "contradicted" when outside. Where q_N
lies above the grid the prediction says accuracy already falls between raw and the least compressed level; a q* at
that level or lower (not worse than raw by more than δ) contradicts it.

    python -m benchmarks.validate_factorial [--workdir runs] [--no_train]
"""

import argparse
import json
import math
import pathlib
from typing import Optional

import numpy as np

from benchmarks import validate_noise
from helmjax.analysis import analyze, curve
from helmjax.analysis.sweep_files import read_config
from helmjax.errors import UserError
from helmjax.layout import RESULTS_JSONL, read_jsonl, setting_dir

NAME = "factorial_ladder"
EQUIVALENCE = 0.2  # |b| below this: a doubling moves the knee by less than 2**0.2 - 1 = 15%
CONFIDENCE = 0.95


def knee_draws(result, margin: float) -> np.ndarray:
    """The knee (as a quality) on each of the analysis' replicates; the lowest level where a draw has no drop
    larger than δ (censored: the knee is at or below it) and NaN where the curve has no plateau to drop from."""
    positions, replicates, weights = result.curve
    draws = np.full(len(replicates), float(positions[0]))
    for b, row in enumerate(replicates):
        knee = curve.knee_level(positions, curve.monotone_fit(row, weights), margin)
        if knee is not None:
            draws[b] = knee
    return draws


def elasticities(log_sigma, log_contrast, log_knees: np.ndarray) -> np.ndarray:
    """(..., 3) least-squares (a, b_σ, b_c) of ln knee on ln σ and ln contrast, one fit per row of `log_knees`."""
    design = np.column_stack([np.ones(len(log_sigma)), log_sigma, log_contrast])
    solution, *_ = np.linalg.lstsq(design, np.atleast_2d(log_knees).T, rcond=None)
    return solution.T


def equivalence(ci) -> str:
    low, high = ci
    if -EQUIVALENCE < low and high < EQUIVALENCE:
        return f"within ±{EQUIVALENCE:g}: equivalent to no effect"
    if low >= EQUIVALENCE or high <= -EQUIVALENCE:
        return f"outside ±{EQUIVALENCE:g}: an effect at least that large"
    return f"crosses ±{EQUIVALENCE:g}: undecided"


def prediction(row: dict, knee_ci, top_level: float) -> str:
    """The paper's prediction for one setting (the knee at q_N) against the measured knee."""
    q_n = validate_noise._q_n_value(row)
    if q_n is None:
        return "no q_N"
    if q_n > top_level:
        if row["q_star"] is not None and row["q_star"] != "raw" and float(row["q_star"]) <= top_level:
            return f"contradicted (q_N {'above 100' if q_n > 100 else f'{q_n:.0f}'}; q* = {row['q_star']})"
        return "consistent (q_N above the grid and no q* in it)"
    low, high = knee_ci
    return ("consistent" if low <= q_n <= high else "contradicted") + f" (q_N {q_n:.0f})"


def analyse(sweep_dir: pathlib.Path, resamples: int) -> dict:
    config = read_config(sweep_dir, [])
    settings = [s for s in config.get("settings") or []
                if (setting_dir(sweep_dir, s["tag"]) / RESULTS_JSONL).exists()]
    rows, draws = [], []
    for index, setting in enumerate(settings):
        # Each setting its own random stream: their replicates are independent, as their runs are.
        a = analyze(setting_dir(sweep_dir, setting["tag"]), resamples=resamples, seed=1 + index)
        result = a.per_arch["A"]
        if result.curve is None:
            raise UserError(f"setting {setting['tag']} has fewer than 2 compressed levels done: no knee")
        margin = a.settings["margin"]
        knees = knee_draws(result, margin)
        true = (a.noise or {}).get("true") or {}
        levels = [float(level) for level in result.levels]
        point = (result.knee or {}).get("knee") if (result.knee or {}).get("shape") == "knee" else levels[0]
        tail = 100 * (1 - CONFIDENCE) / 2
        row = {"setting": setting["tag"], "photons": setting["values"].get("data.photons"),
               "contrast": float(setting["values"]["contrast"]), "true_sigma": true.get("sigma"),
               "reference_acc": result.reference_mean, "q_star": result.q_star,
               "knee": point, "knee_shape": result.knee["shape"], "knee_bracket": result.knee["bracket"],
               "knee_ci": tuple(float(v) for v in np.percentile(knees, [tail, 100 - tail])),
               "censored_share": float(np.mean(knees <= levels[0])),
               "q_n": a.noise.get("q_n") if a.noise else None,
               "accuracy": {str(r["level"]): r["mean"] for r in a.accuracy if r["arch"] == "A"}}
        row["prediction"] = prediction(row, row["knee_ci"], levels[-1])
        done = [r for r in read_jsonl(setting_dir(sweep_dir, setting["tag"]) / RESULTS_JSONL)
                if r.get("status") == "done"]
        # Still improving at the end: the best epoch (by validation loss) was the last one trained.
        row["best_epoch_last"] = {str(level): sum(r["best_epoch"] == r["epochs"] for r in done
                                                  if str(r["level"]) == str(level))
                                  for level in ["raw"] + result.levels}
        rows.append(row)
        draws.append(knees)
    if len(rows) < 4:
        raise UserError(f"{len(rows)} settings done; the regression needs at least 4 (run the ladder first)")
    log_sigma = np.log([r["true_sigma"] for r in rows])
    log_contrast = np.log([r["contrast"] for r in rows])
    point = elasticities(log_sigma, log_contrast, np.log([r["knee"] for r in rows]))[0]
    fits = elasticities(log_sigma, log_contrast, np.log(np.stack(draws, axis=1)))
    tail = 100 * (1 - CONFIDENCE) / 2
    effects = {}
    for name, column in (("b_sigma", 1), ("b_contrast", 2)):
        ci = tuple(float(v) for v in np.percentile(fits[:, column], [tail, 100 - tail]))
        effects[name] = {"estimate": float(point[column]), "ci": ci, "verdict": equivalence(ci)}
    # The paper's rule in slope form: were the knee at q_N, its elasticities would be q_N's (at 4:4:4, where q_N
    # stays inside 1-100 on this data; at 4:2:0 it is "above 100" from 400 photons on).
    q_n = np.array([validate_noise._q_n_value(r, "4:4:4") or np.nan for r in rows], float)
    if np.all((q_n > 0) & (q_n <= 100)):
        predicted = elasticities(log_sigma, log_contrast, np.log(q_n))[0]
        for name, column in (("b_sigma", 1), ("b_contrast", 2)):
            low, high = effects[name]["ci"]
            effects[name]["predicted_by_q_n_444"] = float(predicted[column])
            inside = low <= predicted[column] <= high
            effects[name]["prediction"] = f"{'inside' if inside else 'outside'} the interval"
    return {"settings": rows, "effects": effects, "equivalence_bound": EQUIVALENCE, "confidence": CONFIDENCE,
            "resamples": resamples}


def _text(value: Optional[float], digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--no_train", action="store_true", help="analyse the ladder already on disk only")
    args = parser.parse_args(argv)
    workdir = pathlib.Path(args.workdir)
    sweep_dir = validate_noise.run_ladder(NAME, workdir, not args.no_train)
    record = analyse(sweep_dir, args.resamples)
    print(f"{NAME} ({sweep_dir})")
    print(f"  {'setting':28s} {'σ':>5s} {'ref acc':>7s} {'q*':>4s} {'knee (95%)':>20s} {'censored':>8s} "
          f"{'last':>4s}  paper's prediction")
    for r in record["settings"]:
        knee = f"{_text(r['knee'], 1)} ({_text(r['knee_ci'][0], 1)}-{_text(r['knee_ci'][1], 1)})"
        print(f"  {r['setting']:28s} {r['true_sigma']:5.1f} {100 * r['reference_acc']:7.2f} {str(r['q_star']):>4s} "
              f"{knee:>20s} {r['censored_share']:8.0%} {sum(r['best_epoch_last'].values()):4d}  {r['prediction']}")
    print("  (last: runs whose best epoch was their last, still improving when training stopped)")
    for name, label in (("b_sigma", "per unit ln σ"), ("b_contrast", "per unit ln contrast")):
        e = record["effects"][name]
        print(f"  ln knee {label:22s} {e['estimate']:+.2f} ({e['ci'][0]:+.2f} to {e['ci'][1]:+.2f}): {e['verdict']}"
              + (f"; knee = q_N (4:4:4) predicts {e['predicted_by_q_n_444']:+.2f}, {e['prediction']}"
                 if "prediction" in e else ""))
    out = workdir / "validate_factorial.json"
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"numbers: {out}")
    return 0


if __name__ == "__main__":
    validate_noise.cli(main)
