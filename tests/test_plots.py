"""Plots of a synthetic sweep are written, are real PNGs with content, and survive thin or partial sweeps."""

import json

from helmjax.reporting import plots
from helmjax.analysis import analyze
from helmjax.analysis.sweep_files import read_examples
from helmjax.testing.synthetic_sweep import SyntheticSweep, mp3_like_rates, write_sweep

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_BYTES = 10_000  # an empty axes is ~5 KB at this size; a drawn plot is several times more


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > MIN_BYTES, (path, len(data))


def test_all_plots_of_a_full_sweep(tmp_path):
    sweep = write_sweep(tmp_path / "sweep", SyntheticSweep(levels=(1, 10, 20, 50, 100)))
    analysis = analyze(sweep, resamples=100)
    made = plots.write_plots(analysis, tmp_path / "out", read_examples(sweep))
    assert sorted(made) == ["accuracy_vs_level", "accuracy_vs_params", "convergence_vs_level", "examples",
                            "rate_vs_level"]
    for path in made.values():
        _assert_png(path)


def test_plots_of_a_thin_sweep_draw_what_they_can(tmp_path):
    # One arch, one compressed level, no raw run, no example images, no metrics: some plots have nothing to show.
    spec = SyntheticSweep(levels=(20,), include_raw=False, archs={"A": 701_386}, plateau={"A": 0.8},
                          rates=mp3_like_rates, quantizer="mp3")
    sweep = write_sweep(tmp_path / "sweep", spec)
    for metrics in sweep.glob("runs/*/metrics.jsonl"):
        metrics.unlink()
    analysis = analyze(sweep, resamples=50)
    made = plots.write_plots(analysis, tmp_path / "out", read_examples(sweep))
    assert sorted(made) == ["accuracy_vs_level", "rate_vs_level"]
    for path in made.values():
        _assert_png(path)


def test_no_runs_no_plots(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.jsonl").write_text("")
    (sweep / "sweep.json").write_text(json.dumps({"grid": {"level": [10], "arch": ["A"], "seed": [0]}}))
    assert plots.write_plots(analyze(sweep), tmp_path / "out") == {}
