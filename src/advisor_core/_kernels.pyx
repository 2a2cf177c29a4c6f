# cython: language_level=3
"""Compiled scoring and integration kernels (placeholder until the domain kernels land)."""
