"""Benchmarks: reproducible scenes and reference timings for ``skysweep bench``."""
