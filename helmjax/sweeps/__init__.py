"""Sweeps: the grid of runs, the identity of a sweep directory, and running it."""
