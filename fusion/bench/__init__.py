"""Benchmarks behind `omnisense bench` (see fusion._registry.BENCHES)."""
