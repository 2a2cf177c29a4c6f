# cython: language_level=3
"""Compiled sample kernels: the trapezoid rule and the one pass that reads a sample list.

``advisor_core.data.samples`` is their Python face: a list of samples is valid when it is a
non-empty list of finite numbers >= 0 (not bools); the integral is the trapezoid over evenly
spaced samples. Inputs and outputs are float64; NaN means "no result". Lists are read through
the public C API's borrowed-reference accessors, so the exporters' refresh reads ~12,000 lists
without numpy (docs/results-files.md §2.4).
"""

import math as _math
from array import array as _array

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from libc.math cimport NAN, isfinite, isnan

from advisor_core.data._floats cimport finite_or_nan

cdef extern from "Python.h":
    # Borrowed-reference access: the sample loop touches no reference counts on its fast path.
    Py_ssize_t _list_size "PyList_GET_SIZE" (object)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE" (object)
    PyObject* _list_item "PyList_GET_ITEM" (object, Py_ssize_t)
    PyObject* _tuple_item "PyTuple_GET_ITEM" (object, Py_ssize_t)
    bint _is_exact_float "PyFloat_CheckExact" (PyObject*)
    double _long_as_double "PyLong_AsDouble" (object)
    PyObject* PyErr_Occurred()
    void PyErr_Clear()
    double _float_value "PyFloat_AS_DOUBLE" (PyObject*)

cdef enum:
    # States of a sample series.
    C_ABSENT = 0   # not a list, or an empty list
    C_VALID = 1    # non-empty list of finite numbers >= 0
    C_INVALID = 2  # non-empty list holding something else


cdef double _trapz(const double[::1] v, Py_ssize_t start, Py_ssize_t stop,
                   double step) noexcept nogil:
    # Reference rule: no sample -> 0, one sample -> v0 * step, else h/2 (v0 + vn + 2 sum inner).
    cdef Py_ssize_t n = stop - start
    cdef Py_ssize_t i
    cdef double inner = 0.0
    if n <= 0:
        return 0.0
    if n == 1:
        return v[start] * step
    for i in range(start + 1, stop - 1):
        inner += v[i]
    return step / 2.0 * (v[start] + v[stop - 1] + 2.0 * inner)


cdef bint _plain_numbers(object values, Py_ssize_t n):
    # exact floats and ints (not bools) only: their float64 values are what numpy would make
    cdef Py_ssize_t i
    for i in range(n):
        x = values[i]
        if not (type(x) is float or (type(x) is int)):
            return False
    return True


cdef inline bint _all_exact_floats(list values):
    cdef Py_ssize_t i
    for i in range(_list_size(values)):
        if not _is_exact_float(_list_item(values, i)):
            return False
    return True


def trapezoid(values, double step):
    """Trapezoidal integral of evenly spaced samples (unit: sample unit x seconds).

    [] -> 0.0; one sample -> v0 * step; otherwise step/2 * (v0 + v_last + 2 * sum(inner)).
    """
    cdef Py_ssize_t n, i
    cdef double[::1] buf
    cdef double result, inner = 0.0
    if type(values) is list and _list_size(values) > 1 and _all_exact_floats(values):
        # Validated sample lists (the exporters' case): _trapz's operations in its order, read
        # straight from the list (no buffer copy).
        n = _list_size(values)
        for i in range(1, n - 1):
            inner += _float_value(_list_item(values, i))
        return step / 2.0 * (_float_value(_list_item(values, 0))
                             + _float_value(_list_item(values, n - 1)) + 2.0 * inner)
    if type(values) is list or type(values) is tuple:
        n = len(values)
        if _plain_numbers(values, n):
            # Lists of numbers (the exporters' case) need no numpy: same doubles, same _trapz.
            buf = _array("d", values) if n else _array("d", [0.0])
            with nogil:
                result = _trapz(buf, 0, n, step)
            return result
    import numpy as np  # other sequences and arrays: numpy's conversion rules

    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("trapezoid expects a 1-D sequence of samples")
    cdef const double[::1] v = arr
    with nogil:
        result = _trapz(v, 0, v.shape[0], step)
    return result


# ---------------------------------------------------------------------------------------------
# Sample series (Python lists of numbers): one pass reads and validates the objects and keeps
# what the trapezoid needs (first, last, running sum of the inner samples, count); the integral
# itself is then the same nogil arithmetic as _trapz, so results are bit-identical to it.
# ---------------------------------------------------------------------------------------------

cdef struct Series:
    int state
    Py_ssize_t n
    double first
    double last
    double inner


cdef inline double _sample(object x):
    # a finite number >= 0 (bools, strings, None excluded), else NaN
    cdef double d
    if PyFloat_Check(x):
        d = PyFloat_AS_DOUBLE(x)
    elif PyLong_Check(x) and not isinstance(x, bool):
        d = _long_as_double(x)
        if d == -1.0 and PyErr_Occurred():
            PyErr_Clear()
            return NAN
    else:
        return NAN
    return d if isfinite(d) and d >= 0.0 else NAN


cdef inline void _add_sample(Series* acc, double d) noexcept nogil:
    if acc.n == 0:
        acc.first = d
    else:
        if acc.n >= 2:
            acc.inner += acc.last  # the previous sample turned out to be an inner one
        acc.last = d
    acc.n += 1


cdef inline Py_ssize_t _float_run(object seq, bint is_list, Py_ssize_t j, Py_ssize_t size,
                                  Series* acc) noexcept:
    # Consumes exact, valid floats from items[j] on; returns where it stopped (an item that is
    # not an exact float, or size), or -1 for an invalid float. No calls: the running sums stay
    # in registers (through a call they are spilled, which doubled the time per sample).
    cdef double d, first = acc.first, last = acc.last, inner = acc.inner
    cdef Py_ssize_t count = acc.n
    cdef PyObject* ptr
    while j < size:
        ptr = _list_item(seq, j) if is_list else _tuple_item(seq, j)
        if not _is_exact_float(ptr):
            break
        d = _float_value(ptr)
        if not (isfinite(d) and d >= 0.0):
            return -1
        if count == 0:
            first = d
        else:
            if count >= 2:
                inner += last
            last = d
        count += 1
        j += 1
    acc.first = first
    acc.last = last
    acc.inner = inner
    acc.n = count
    return j


cdef Series _read_series(object item) except *:
    """State and trapezoid terms of one sample list (ABSENT: not a list/tuple, or empty)."""
    cdef Series out
    cdef double d
    cdef Py_ssize_t j = 0
    cdef bint is_list = type(item) is list
    out.state = C_ABSENT
    out.n = 0
    out.first = out.last = out.inner = 0.0
    if not (is_list or type(item) is tuple) or len(item) == 0:
        return out
    out.state = C_VALID
    while True:
        # The size is re-read after every slow step: converting an int subclass can run Python
        # code that changes the list.
        j = _float_run(item, is_list, j, _list_size(item) if is_list else _tuple_size(item),
                       &out)
        if j < 0:
            out.state = C_INVALID
            return out
        if j >= (_list_size(item) if is_list else _tuple_size(item)):
            return out
        d = _sample(<object>(_list_item(item, j) if is_list else _tuple_item(item, j)))
        if isnan(d):
            out.state = C_INVALID
            return out
        _add_sample(&out, d)
        j += 1


cdef inline double _series_integral(Series series, double step) noexcept nogil:
    # same operations, in the same order, as _trapz over the samples
    if series.state != C_VALID or not (isfinite(step) and step > 0.0):
        return NAN
    if series.n == 1:
        return finite_or_nan(series.first * step)
    return finite_or_nan(step / 2.0 * (series.first + series.last + 2.0 * series.inner))


def series_integral(object item, double step):
    """(state, integral) of one sample list over ``step`` seconds; NaN unless state is VALID."""
    cdef Series series = _read_series(item)
    return series.state, _series_integral(series, step)


def sample_series(object values):
    """(samples, arithmetic mean) of a non-empty list of finite numbers >= 0, else None.

    ``advisor_core.data.samples.sample_series``: the samples are valid by the one rule of sample
    lists (``_read_series``: numbers, not bools, finite, >= 0); ints become floats (a new list), and
    the mean is ``math.fsum(samples) / n`` (None when that overflows).
    """
    cdef double total
    if type(values) is not list or _read_series(values).state != C_VALID:
        return None
    if not _all_exact_floats(values):
        values = [float(x) for x in values]  # valid ints convert: they passed as doubles
    try:
        total = _math.fsum(values)
    except OverflowError:
        return None
    if not isfinite(total):
        return None
    return values, total / len(values)
