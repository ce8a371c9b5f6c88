"""Benchmarks and load tools (run from the repository root: python -m bench.NAME)."""
