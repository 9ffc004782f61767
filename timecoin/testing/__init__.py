"""Helpers for tests and benchmarks that drive real timecoin processes and fake components."""
