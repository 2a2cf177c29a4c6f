# cython: language_level=3
"""Compiled least-squares kernels (placeholder until the numerics kernels land)."""
