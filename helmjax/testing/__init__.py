"""Test harnesses: the crash harness (kill a sweep at random moments, compare with an uninterrupted one) and
synthetic sweeps with known truths (for the analysis and its calibration)."""
