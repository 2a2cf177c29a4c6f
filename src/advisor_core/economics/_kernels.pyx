# cython: language_level=3
"""Compiled kernels of the economics: efficiency scores and cost formulas over a column table.

Every formula exists once, as a ``cdef inline`` function. Inputs and outputs are float64; NaN
means "missing" on input and "no result" (None) on output. Results that overflow to ±inf are NaN
too.

The batch kernels (``score_batch``, ``costs_batch``) do arithmetic on the typed columns that
``advisor_core.economics.columns`` lays out from the records (``advisor_core.data.record``); they
never look at a scenario. Tables are flat ``array.array`` buffers (row r of an [rows, n] table at
[r*n, (r+1)*n)), not numpy arrays: the exporters' cost and QoE processes use these kernels
without ever importing numpy (14 MB of resident memory).
"""

from array import array as _array

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from libc.math cimport NAN, isnan

from advisor_core.data._floats cimport finite_or_nan

cdef enum:
    # Scoring algorithm codes (scoring.py maps names to these).
    C_THROUGHPUT = 0
    C_PIXELS = 1
    C_QUALITY = 2
    C_QOE = 3

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
        return finite_or_nan(throughput / watts)
    if algo == C_PIXELS:
        if not (energy > 0.0 and pixels > 0.0):
            return NAN
        return finite_or_nan(pixels / energy)
    if algo == C_QUALITY:
        # VMAF points per watt; VMAF 0 is a valid (zero) score
        if not (vmaf >= 0.0 and vmaf <= 100.0 and watts > 0.0):
            return NAN
        return finite_or_nan(vmaf / watts)
    if algo == C_QOE:
        # quality-weighted pixels per joule
        if not (vmaf >= 0.0 and vmaf <= 100.0 and energy > 0.0 and pixels > 0.0):
            return NAN
        return finite_or_nan(pixels * (vmaf / 100.0) / energy)
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
    return finite_or_nan(watts / 1000.0 * (duration / 3600.0) * price)


cdef inline double _compute_cost(double duration, double cpu_hourly,
                                 double gpu_hourly) noexcept nogil:
    if cpu_hourly == 0.0 and gpu_hourly == 0.0:
        return 0.0
    if isnan(duration):
        return NAN
    return finite_or_nan(duration / 3600.0 * (cpu_hourly + gpu_hourly))


cdef inline double _total(double energy, double compute) noexcept nogil:
    if isnan(energy) and isnan(compute):
        return NAN
    return finite_or_nan((0.0 if isnan(energy) else energy) + (0.0 if isnan(compute) else compute))


cdef inline double _per_pixel(double total, double pixels) noexcept nogil:
    # A 0.0 total means "no data" here: kept from the reference (the docstring of
    # advisor_core.economics.cost).
    if isnan(total) or total == 0.0 or not (pixels > 0.0):
        return NAN
    return finite_or_nan(total / pixels)


cdef inline double _per_watch_hour(double total, double duration, double viewers) noexcept nogil:
    cdef double viewer_hours
    if isnan(total) or not (duration > 0.0) or not (viewers > 0.0):
        return NAN
    viewer_hours = duration / 3600.0 * viewers
    if not (viewer_hours > 0.0):  # underflow of tiny positive inputs
        return NAN
    return finite_or_nan(total / viewer_hours)


cdef inline double _la_compute_cost(double core_s, double price_core_s) noexcept nogil:
    if price_core_s == 0.0:
        return 0.0
    if isnan(core_s):
        return NAN
    return finite_or_nan(core_s * price_core_s)


cdef inline double _la_energy_cost(double joules, double price_j) noexcept nogil:
    if price_j == 0.0:
        return 0.0
    if isnan(joules):
        return NAN
    return finite_or_nan(joules * price_j)


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
