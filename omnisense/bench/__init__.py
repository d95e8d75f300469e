"""Benchmarks behind `omnisense bench` (see omnisense._registry.BENCHES)."""
