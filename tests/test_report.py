"""report.md, analysis.json and the printed summary of a sweep state the sweet spot and the run problems."""

import json

from helmjax.analysis import analyze
from helmjax.testing.synthetic_sweep import SyntheticSweep, write_sweep
from helmjax.reporting.report import summary_text, write_report


def test_report_states_the_sweet_spot_and_links_the_plots(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(1, 10, 15, 20, 50, 100)))
    path = write_report(sweep, resamples=200)
    assert path == sweep / "report" / "report.md"
    text = path.read_text()
    saved = json.loads((sweep / "report" / "analysis.json").read_text())
    for arch in ("A", "F"):
        q_star = saved["per_arch"][arch]["q_star"]
        assert q_star == 20
        assert f"not worse than raw by more than δ = 1 accuracy point down to **q={q_star}**" in text
        lower = saved["per_arch"][arch]["tests"][3]["lower_bound"]
        assert saved["per_arch"][arch]["tests"][3]["level"] == 20 and lower > -0.01
    assert "significant" not in text  # non-inferiority is shown by a margin, never by a failed test
    assert "bits per pixel of coded payload (headers and tables excluded)" in text
    assert "The same data losslessly (synthetic lossless (known rate)) takes 14." in text
    # N_approx as the quantizer's record gives it (pillow_jpeg's step at q=20), at q* and around the knee.
    assert "N_approx at q*: scale percent 250, mean luminance step 141.5, mean chrominance step 215.5." in text
    assert "Knee: the monotone fit falls δ below its plateau" in text and "N_approx there: scale percent" in text
    assert "*Exploratory*" not in text
    assert "fits with c = +" in text and " to +" in text.split("fits with c = +")[1].split("points per")[0]
    for name in ("accuracy_vs_level", "accuracy_vs_params", "rate_vs_level", "convergence_vs_level", "examples"):
        assert f"]({name}.png)" in text
        assert (sweep / "report" / f"{name}.png").stat().st_size > 10_000
    assert "## Method" in text and "fixed-sequence test" in text


def test_one_seed_report_says_exploratory_and_numbers_follow_their_intervals(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(1, 10, 20, 50, 100), seeds=(0,)))
    analysis = analyze(sweep, resamples=200)
    text = write_report(sweep, analysis=analysis).read_text()
    assert "*Exploratory*: one seed per level" in text and "test-example noise only" in text
    assert "EXPLORATORY" in summary_text(analysis)
    raw = next(r for r in analysis.accuracy if r["arch"] == "A" and r["level"] == "raw")
    from helmjax.reporting.number_format import number
    assert f"raw reaches {number(raw['mean'], raw['ci'], scale=100).replace(' (', '% (', 1)}" in text


def test_summary_names_sweet_spots_and_run_problems(tmp_path):
    spec = SyntheticSweep(missing=[(50, "A", 1)], failed=[(100, "F", 0)])
    analysis = analyze(write_sweep(tmp_path / "sweep", spec), resamples=200)
    summary = summary_text(analysis)
    lines = summary.splitlines()
    assert lines[0] == "synthetic_q_sweep (synthetic, pillow_jpeg): 58 runs done, 1 failed, 1 missing"
    for arch in ("A", "F"):
        q_star = analysis.per_arch[arch].q_star
        assert any(line.startswith(f"  {arch}: q* = q={q_star}, ") and "points vs raw (lower bound" in line
                   and "bits per pixel payload" in line and "; knee between q=" in line and " and q=" in line
                   for line in lines), summary
    assert "model size at q=" in summary and "vs the largest (F): A no difference shown" in summary
    assert "failed: q100-F-s0 (NaN loss at step 120: lower the learning rate)" in summary
    assert "missing (1): q50-A-s1" in summary
    report = write_report(tmp_path / "sweep", analysis=analysis).read_text()
    assert "## Failed runs" in report and "## Missing runs" in report and "50-A-s1" in report


def test_report_of_a_sweep_without_results_says_so(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text("")
    text = write_report(sweep).read_text()
    assert "nothing to conclude" in text and "the results hold no runs yet" in text
    assert summary_text(analyze(sweep)).startswith("sweep (?, ?): 0 runs done")


def test_numbers_carry_no_more_digits_than_their_interval_supports():
    from helmjax.reporting.number_format import bound, decimals, number
    assert number(0.99412, (0.9891, 0.9978), scale=100) == "99.4 (98.9 to 99.8)"
    assert number(8.2345, (8.11, 8.36)) == "8.23 (8.11 to 8.36)"  # half-width 0.125: its first digit is a 1
    assert number(-0.0031, (-0.012, 0.006), scale=100, sign=True) == "-0.3 (-1.2 to +0.6)"
    assert number(44.6, (42.1, 47.3)) == "45 (42 to 47)"
    assert number(None) == "n/a" and number(5.77777) == "5.78"
    assert decimals(0.0, 0.0) == 2
    assert bound(-0.00912, (-0.012, 0.006), scale=100) == "-0.9"


def test_a_level_at_n_of_n_is_reported_inside_100_percent(tmp_path):
    """Every seed of raw and of the levels from the knee up scores 2000/2000; the report's accuracies end at
    100% (a symmetric t interval printed "100.00% (99.95 to 100.05)")."""
    import re
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(1, 10, 15, 20, 50, 100), seed_noise=0.01,
                                                           plateau={"A": 1.05, "F": 1.05}))
    text = write_report(sweep, resamples=200).read_text()
    table = text.split("## Accuracy (mean over seeds")[1].split("## Difference")[0]
    cells = re.findall(r"([\d.]+)% \(([\d.]+) to ([\d.]+)\)", table)
    assert len(cells) == 14 and sum(float(mean) == float(high) == 100.0 for mean, _, high in cells) >= 6
    assert all(0.0 <= float(low) <= float(mean) <= float(high) <= 100.0 for mean, low, high in cells), cells
    for arch in ("A", "F"):
        reaches = re.search(rf"\*\*Arch {arch}\*\*[^:]*: raw reaches ([\d.]+)% \(([\d.]+) to ([\d.]+)\)", text)
        assert reaches and float(reaches.group(3)) == 100.0 and float(reaches.group(2)) < 100.0
    saved = json.loads((sweep / "report" / "analysis.json").read_text())
    for result in saved["per_arch"].values():
        assert all(-1.0 <= t["ci"][0] <= t["lower_bound"] <= t["ci"][1] <= 1.0 for t in result["tests"])
