"""Benchmark scripts; each writes JSON under bench/results/."""
