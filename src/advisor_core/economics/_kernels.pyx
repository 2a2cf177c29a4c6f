# cython: language_level=3
"""Compiled kernels: trapezoid integration, sample series, efficiency scores, cost formulas.

Every formula exists once, as a ``cdef inline`` function. Inputs and outputs are float64; NaN
means "missing" on input and "no result" (None) on output. Results that overflow to ±inf are NaN
too.

The batch kernels (``score_batch``, ``costs_batch``) do arithmetic on the typed columns that
``advisor_core.economics.columns`` lays out from the records (``advisor_core.data.record``); they never look at
a scenario. Tables are flat ``array.array`` buffers (row r of an [rows, n] table at
[r*n, (r+1)*n)), not numpy arrays: the exporters' cost and QoE processes use these kernels
without ever importing numpy (14 MB of resident memory).
"""

import math as _math
from array import array as _array

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.math cimport NAN, isfinite, isnan

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
    # Scoring algorithm codes (scoring.py maps names to these).
    C_THROUGHPUT = 0
    C_PIXELS = 1
    C_QUALITY = 2
    C_QOE = 3
    # States of a sample series.
    C_ABSENT = 0   # not a list, or an empty list
    C_VALID = 1    # non-empty list of finite numbers >= 0
    C_INVALID = 2  # non-empty list holding something else

ALGO_THROUGHPUT_PER_WATT = C_THROUGHPUT
ALGO_PIXELS_PER_JOULE = C_PIXELS
ALGO_QUALITY_PER_WATT = C_QUALITY
ALGO_QOE_EFFICIENCY = C_QOE

cdef enum:
    # Rows of the column table (advisor_core.economics.columns); COLUMNS names them in this order.
    R_WATTS = 0
    R_DURATION = 1
    R_PIXELS = 2
    R_VIEWERS = 3
    R_CORE_S = 4
    R_BITRATE = 5
    R_STREAMS = 6
    R_ENERGY_J = 7
    R_VMAF = 8
    R_COUNT = 9

#: Row names of the column table the batch kernels read, in order (units: W, s, pixels,
#: viewers, core-s, Mbps, streams, J, VMAF points).
COLUMNS = (
    "power_w", "duration_s", "pixels", "viewers", "core_s", "bitrate_mbps", "streams",
    "energy_j", "vmaf",
)


cdef object _filled(str code, Py_ssize_t size, object value):
    return _array(code, [value]) * size


cdef inline double _finite(double x) noexcept nogil:
    return x if isfinite(x) else NAN


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
        return _finite(series.first * step)
    return _finite(step / 2.0 * (series.first + series.last + 2.0 * series.inner))


def series_integral(object item, double step):
    """(state, integral) of one sample list over ``step`` seconds; NaN unless state is VALID."""
    cdef Series series = _read_series(item)
    return series.state, _series_integral(series, step)


def sample_series(object values):
    """(samples, arithmetic mean) of a non-empty list of finite numbers >= 0, else None.

    ``advisor_core.data.samples.sample_series``: the samples are valid by the one rule of sample lists
    (``_read_series``: numbers, not bools, finite, >= 0); ints become floats (a new list), and
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


cdef inline object _optional(double v):
    return None if isnan(v) else v


def optional_list(const double[::1] values):
    """Python list of the values with NaN as None."""
    cdef Py_ssize_t n = values.shape[0], i
    cdef list out = PyList_New(n)
    for i in range(n):
        item = _optional(values[i])
        Py_INCREF(item)  # PyList_SET_ITEM steals a reference
        PyList_SET_ITEM(out, i, item)
    return out


def optional_rows(const double[::1] table, const unsigned char[::1] ok):
    """Rows of a flat [rows, n] table (n = len(ok)) as lists; NaN and ok == 0 give None."""
    cdef Py_ssize_t n = ok.shape[0], rows, r, i
    if n == 0:
        return []
    rows = table.shape[0] // n
    cdef list out = PyList_New(rows)
    cdef list row
    for r in range(rows):
        row = PyList_New(n)
        for i in range(n):
            item = _optional(table[r * n + i]) if ok[i] else None
            Py_INCREF(item)
            PyList_SET_ITEM(row, i, item)
        Py_INCREF(row)
        PyList_SET_ITEM(out, r, row)
    return out


# ---------------------------------------------------------------------------------------------
# Efficiency scores
# ---------------------------------------------------------------------------------------------

cdef inline double _score(int algo, double bitrate, double streams, double watts, double energy,
                          double pixels, double vmaf) noexcept nogil:
    cdef double throughput
    if algo == C_THROUGHPUT:
        # Mbps per watt
        if not (watts > 0.0):
            return NAN
        throughput = bitrate * streams
        if not (throughput > 0.0):
            return NAN
        return _finite(throughput / watts)
    if algo == C_PIXELS:
        if not (energy > 0.0 and pixels > 0.0):
            return NAN
        return _finite(pixels / energy)
    if algo == C_QUALITY:
        # VMAF points per watt; VMAF 0 is a valid (zero) score
        if not (vmaf >= 0.0 and vmaf <= 100.0 and watts > 0.0):
            return NAN
        return _finite(vmaf / watts)
    if algo == C_QOE:
        # quality-weighted pixels per joule
        if not (vmaf >= 0.0 and vmaf <= 100.0 and energy > 0.0 and pixels > 0.0):
            return NAN
        return _finite(pixels * (vmaf / 100.0) / energy)
    return NAN


def score_batch(const signed char[::1] algo, const double[::1] table):
    """Efficiency scores of n scenarios (float64 array.array, NaN = none), n = len(algo).

    ``table`` is the [COLUMNS, n] column table; ``algo`` the score algorithm of each scenario.
    """
    cdef Py_ssize_t n = algo.shape[0]
    cdef Py_ssize_t i
    if table.shape[0] != R_COUNT * n:
        raise ValueError("score_batch: expected a column table of len(COLUMNS) rows")
    out_arr = _filled("d", n, NAN)
    if n == 0:
        return out_arr
    cdef double[::1] out = out_arr
    with nogil:
        for i in range(n):
            out[i] = _score(algo[i], table[R_BITRATE * n + i], table[R_STREAMS * n + i],
                            table[R_WATTS * n + i], table[R_ENERGY_J * n + i],
                            table[R_PIXELS * n + i], table[R_VMAF * n + i])
    return out_arr


# ---------------------------------------------------------------------------------------------
# Costs (currency units; prices per kWh, per hour, per core-second, per joule)
# ---------------------------------------------------------------------------------------------

cdef inline double _energy_cost(double watts, double duration, double price) noexcept nogil:
    # A zero price costs nothing, whatever the data (reference rule, checked first).
    if price == 0.0:
        return 0.0
    if isnan(watts) or isnan(duration):
        return NAN
    return _finite(watts / 1000.0 * (duration / 3600.0) * price)


cdef inline double _compute_cost(double duration, double cpu_hourly,
                                 double gpu_hourly) noexcept nogil:
    if cpu_hourly == 0.0 and gpu_hourly == 0.0:
        return 0.0
    if isnan(duration):
        return NAN
    return _finite(duration / 3600.0 * (cpu_hourly + gpu_hourly))


cdef inline double _total(double energy, double compute) noexcept nogil:
    if isnan(energy) and isnan(compute):
        return NAN
    return _finite((0.0 if isnan(energy) else energy) + (0.0 if isnan(compute) else compute))


cdef inline double _per_pixel(double total, double pixels) noexcept nogil:
    # A 0.0 total means "no data" here: kept from the reference (advisor_core.economics.cost docstring).
    if isnan(total) or total == 0.0 or not (pixels > 0.0):
        return NAN
    return _finite(total / pixels)


cdef inline double _per_watch_hour(double total, double duration, double viewers) noexcept nogil:
    cdef double viewer_hours
    if isnan(total) or not (duration > 0.0) or not (viewers > 0.0):
        return NAN
    viewer_hours = duration / 3600.0 * viewers
    if not (viewer_hours > 0.0):  # underflow of tiny positive inputs
        return NAN
    return _finite(total / viewer_hours)


cdef inline double _la_compute_cost(double core_s, double price_core_s) noexcept nogil:
    if price_core_s == 0.0:
        return 0.0
    if isnan(core_s):
        return NAN
    return _finite(core_s * price_core_s)


cdef inline double _la_energy_cost(double joules, double price_j) noexcept nogil:
    if price_j == 0.0:
        return 0.0
    if isnan(joules):
        return NAN
    return _finite(joules * price_j)


def costs_batch(const double[::1] table, Py_ssize_t n, double legacy_viewers,
                double la_viewers, bint viewers_from_field, double price_kwh, double cpu_hourly,
                double gpu_hourly, double price_core_s, double price_j):
    """All ten costs of n scenarios, flat float64 [10 * n] array.array (NaN = none).

    ``table`` is the [COLUMNS, n] column table. Rows out: legacy energy, compute, total, per
    pixel, per watch hour (``legacy_viewers``), then the same five load-aware (``la_viewers``,
    or each scenario's ``viewers`` column when ``viewers_from_field``).
    """
    if n < 0 or table.shape[0] != R_COUNT * n:
        raise ValueError("costs_batch: expected a column table of len(COLUMNS) rows")
    out_arr = _filled("d", 10 * n, NAN)
    if n == 0:
        return out_arr
    cdef double[::1] out = out_arr
    with nogil:
        _costs(table, out, n, legacy_viewers, la_viewers, viewers_from_field, price_kwh,
               cpu_hourly, gpu_hourly, price_core_s, price_j)
    return out_arr


cdef void _costs(const double[::1] table, double[::1] out, Py_ssize_t n, double legacy_viewers,
                 double la_viewers, bint viewers_from_field, double price_kwh, double cpu_hourly,
                 double gpu_hourly, double price_core_s, double price_j) noexcept nogil:
    cdef Py_ssize_t i
    cdef double e, c, t, viewers, duration, pixels
    for i in range(n):
        duration = table[R_DURATION * n + i]
        pixels = table[R_PIXELS * n + i]
        e = _energy_cost(table[R_WATTS * n + i], duration, price_kwh)
        c = _compute_cost(duration, cpu_hourly, gpu_hourly)
        t = _total(e, c)
        out[0 * n + i] = e
        out[1 * n + i] = c
        out[2 * n + i] = t
        out[3 * n + i] = _per_pixel(t, pixels)
        out[4 * n + i] = _per_watch_hour(t, duration, legacy_viewers)
        e = _la_energy_cost(table[R_ENERGY_J * n + i], price_j)
        c = _la_compute_cost(table[R_CORE_S * n + i], price_core_s)
        t = _total(e, c)
        viewers = table[R_VIEWERS * n + i] if viewers_from_field else la_viewers
        out[5 * n + i] = e
        out[6 * n + i] = c
        out[7 * n + i] = t
        out[8 * n + i] = _per_pixel(t, pixels)
        out[9 * n + i] = _per_watch_hour(t, duration, viewers)
