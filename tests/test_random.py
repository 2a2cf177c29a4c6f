"""advisor_core._random against numpy's own Generator: the same bootstrap indices, bit for bit."""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import advisor_core
from advisor_core import _random
from advisor_core._random import resample_indices

SEEDS = [0, 1, 42, 12345, 2**32 - 1, 2**32, 2**63 + 5, 2**64, 2**128 + 3, 3**190]
SMALL_N = [1, 2, 3, 7, 15, 200, 1000]
# Ranges around the 32-bit/64-bit switches of numpy's bounded fill: 2**32 - 1 and 2**31 + 11
# reject often in Lemire's 32-bit method, 2**32 takes raw 32-bit words, larger n the 64-bit method
# (2**62 + 3 rejects ~25 % of draws there).
LARGE_N = [2**31 + 11, 2**32 - 1, 2**32, 2**32 + 1, 2**33 + 1, 2**62 + 3, 2**63 - 1, 2**63]


def numpy_indices(n: int, n_bootstrap: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n)).ravel().tolist()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SMALL_N)
@pytest.mark.parametrize("n_bootstrap", [0, 1, 3, 100])
def test_equals_numpy(seed: int, n: int, n_bootstrap: int) -> None:
    got = resample_indices(n, n_bootstrap, seed)
    assert isinstance(got, array) and got.typecode == "q" and got.itemsize == 8
    assert got.tolist() == numpy_indices(n, n_bootstrap, seed)


@pytest.mark.parametrize("emulated", [False, True])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("high", LARGE_N + SMALL_N)
def test_bounded_draws_equal_numpy_for_large_ranges(high: int, seed: int, emulated: bool) -> None:
    # resample_indices(n, ...) would draw n * n_bootstrap indices: the large ranges are checked
    # through the same fill routine with a short output.
    expected = np.random.default_rng(seed).integers(0, high, size=500).tolist()
    assert _random._integers(high, 500, seed, emulated).tolist() == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_two_halves_arithmetic_equals_native(seed: int) -> None:
    # The MSVC build runs the emulated path only; on GCC/Clang both must agree with numpy.
    expected = resample_indices(37, 40, seed).tolist()
    assert _random._integers(37, 37 * 40, seed, True).tolist() == expected
    assert expected == numpy_indices(37, 40, seed)


def test_native_128_bit_build_on_gcc_and_clang() -> None:
    if sys.platform == "win32":
        pytest.skip("MSVC has no 128-bit integer type: the two-halves path is the only one")
    assert _random.HAVE_INT128


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 300),
    n_bootstrap=st.integers(0, 30),
    seed=st.one_of(st.integers(0, 2**32), st.integers(0, 2**400)),
)
def test_equals_numpy_hypothesis(n: int, n_bootstrap: int, seed: int) -> None:
    assert resample_indices(n, n_bootstrap, seed).tolist() == numpy_indices(n, n_bootstrap, seed)


@settings(max_examples=100, deadline=None)
@given(high=st.integers(1, 2**63), seed=st.integers(0, 2**130), emulated=st.booleans())
def test_bounded_draws_equal_numpy_hypothesis(high: int, seed: int, emulated: bool) -> None:
    expected = np.random.default_rng(seed).integers(0, high, size=64).tolist()
    assert _random._integers(high, 64, seed, emulated).tolist() == expected


def test_numpy_integer_sizes_are_accepted() -> None:
    # n often comes from an array shape or len(); numpy integers index like ints.
    expected = numpy_indices(9, 4, 7)
    assert resample_indices(np.int64(9), np.int32(4), 7).tolist() == expected


def test_large_int_subclass_seed() -> None:
    class Seed(int):
        pass

    assert resample_indices(5, 3, Seed(2**70)).tolist() == numpy_indices(5, 3, 2**70)


def test_seed_none_draws_fresh_entropy() -> None:
    first = resample_indices(1000, 5, None)
    second = resample_indices(1000, 5, None)
    assert len(first) == len(second) == 5000
    assert all(0 <= i < 1000 for i in first) and all(0 <= i < 1000 for i in second)
    # Equal 5000-draw streams from two 128-bit seeds: probability 1000**-5000.
    assert first != second


def test_seed_none_is_uniform_enough() -> None:
    draws = resample_indices(10, 2000, None)
    counts = [draws.count(k) for k in range(10)]
    # 20000 draws, 2000 expected per value, sd ~42: 6 sd margin.
    assert all(1750 < c < 2250 for c in counts), counts


def test_n_one_gives_zeros_and_n_bootstrap_zero_gives_empty() -> None:
    assert resample_indices(1, 4, 3).tolist() == [0, 0, 0, 0]
    assert resample_indices(50, 0, 3).tolist() == []


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0, 3, 0), ValueError, "n must be >= 1"),
        ((-5, 3, 0), ValueError, "n must be >= 1"),
        ((2**63 + 1, 0, 0), ValueError, "n must be <= 2\\*\\*63"),
        ((5, -1, 0), ValueError, "n_bootstrap must be >= 0"),
        ((2**40, 2**40, 0), ValueError, "exceed the addressable size"),
        ((5, 3, -1), ValueError, "seed must be non-negative"),
        ((5.0, 3, 0), TypeError, "n must be an int, not float"),
        ((5, 3.0, 0), TypeError, "n_bootstrap must be an int, not float"),
        ((True, 3, 0), TypeError, "n must be an int, not bool"),
        ((5, False, 0), TypeError, "n_bootstrap must be an int, not bool"),
        (("5", 3, 0), TypeError, "n must be an int, not str"),
        ((5, 3, True), TypeError, "seed must be a non-negative int or None, not builtins.bool"),
        ((5, 3, 1.5), TypeError, "not builtins.float"),
        ((5, 3, Fraction(1)), TypeError, "not fractions.Fraction"),
        ((5, 3, "abc"), TypeError, "not builtins.str"),
        ((5, 3, [1, 2]), TypeError, "not builtins.list"),
        ((5, 3, np.int64(3)), TypeError, "not numpy.int64"),
        ((5, 3, np.random.default_rng(0)), TypeError, "numpy.random.default_rng"),
        ((5, 3, np.random.SeedSequence(0)), TypeError, "not numpy.random.bit_generator"),
    ],
)
def test_bad_arguments(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        resample_indices(*args)


@pytest.mark.parametrize(
    ("args", "error"),
    [((-5, 3, 0), ValueError), ((2**63 + 1, 1, 0), ValueError),
     ((5, -1, 0), ValueError), ((5, 3, -1), ValueError), ((5, 3, 1.5), TypeError),
     ((5, 3, "abc"), TypeError), ((2**40, 2**40, 0), ValueError)],
)
def test_bad_arguments_numpy_rejects_them_too(args: tuple, error: type) -> None:
    n, n_bootstrap, seed = args
    with pytest.raises(error):
        np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))


def test_n_zero_is_an_error_where_numpy_returns_an_empty_array() -> None:
    # Deliberate difference: numpy checks the size (3 * 0 == 0) before the bounds, so
    # integers(0, 0, size=(3, 0)) is an empty array; an empty bootstrap sample is a caller bug.
    assert np.random.default_rng(0).integers(0, 0, size=(3, 0)).size == 0
    with pytest.raises(ValueError, match="n must be >= 1"):
        resample_indices(0, 3, 0)


def test_import_does_not_load_numpy() -> None:
    code = (
        "import sys\n"
        "from advisor_core._random import resample_indices\n"
        "assert resample_indices(20, 3, 0) and resample_indices(20, 3, None)\n"
        "assert 'numpy' not in sys.modules, sorted(m for m in sys.modules if 'numpy' in m)\n"
    )
    src = str(Path(advisor_core.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)
