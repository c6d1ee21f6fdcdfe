"""report.md, analysis.json and the printed summary of a sweep state the sweet spot and the run problems."""

import json

from helmjax.analysis import analyze
from helmjax.analysis.synthetic import SyntheticSweep, write_sweep
from helmjax.report import summary_text, write_report


def test_report_states_the_sweet_spot_and_links_the_plots(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(1, 10, 15, 20, 50, 100)))
    path = write_report(sweep, resamples=200)
    assert path == sweep / "report" / "report.md"
    text = path.read_text()
    saved = json.loads((sweep / "report" / "analysis.json").read_text())
    for arch in ("A", "F"):
        q_star = saved["per_arch"][arch]["q_star"]
        assert q_star in (20, 50)
        assert f"not significantly below the lossless baseline down to **q={q_star}**" in text
    assert "bits per pixel (H_approx) against 24 lossless" in text
    assert "IJG scale" in text and "The hinge fit puts the knee at" in text
    for name in ("accuracy_vs_level", "accuracy_vs_params", "rate_vs_level", "convergence_vs_level", "examples"):
        assert f"]({name}.png)" in text
        assert (sweep / "report" / f"{name}.png").stat().st_size > 10_000
    assert "## Method" in text and "one-sided 95% bootstrap upper bound" in text


def test_summary_names_sweet_spots_and_run_problems(tmp_path):
    spec = SyntheticSweep(missing=[(50, "A", 1)], failed=[(100, "F", 0)])
    analysis = analyze(write_sweep(tmp_path / "sweep", spec), resamples=200)
    summary = summary_text(analysis)
    lines = summary.splitlines()
    assert lines[0] == "synthetic_q_sweep (synthetic, pillow_jpeg): 58 runs done, 1 failed, 1 missing"
    for arch in ("A", "F"):
        q_star = analysis.per_arch[arch].q_star
        assert any(line.startswith(f"  {arch}: q* = q={q_star} (95% CI ") and "bits per pixel" in line
                   for line in lines), summary
    assert "model size at q=" in summary and "the largest (F)" in summary
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
