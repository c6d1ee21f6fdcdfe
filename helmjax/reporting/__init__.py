"""Reporting: the results table, the report (report.md, analysis.json), its plots, and how numbers are printed."""
