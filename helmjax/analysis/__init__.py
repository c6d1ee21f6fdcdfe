"""Analysis of a finished (or partial) sweep: accuracy vs level, the Helmholtz fit, sweet spot, noise bits.

`analyze(sweep_dir) -> Analysis` is the entry point; `helmjax.reporting.report` turns an Analysis into report.md and
plots. This package never imports matplotlib.
"""

from helmjax.analysis.findings import Analysis, ArchResult, analyze
from helmjax.layout import RAW

__all__ = ["Analysis", "ArchResult", "analyze", "RAW"]
