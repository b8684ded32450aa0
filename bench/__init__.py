"""Apolo benchmarks: ``python -m bench.run`` (full) or ``python -m bench.run --smoke``."""
