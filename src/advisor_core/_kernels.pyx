# cython: language_level=3
"""Compiled kernels: trapezoid integration, efficiency scores, cost formulas, batch gathering.

Every formula exists once, as a ``cdef inline`` function; the scalar entry points (called by the
per-scenario methods) and the batch kernels (called by the ``*_many`` methods) both use it, so
the two paths give bit-identical results. Inputs and outputs are float64; NaN means "missing"
on input and "no result" (None) on output. Results that overflow to ±inf are NaN too.
The ``gather_*`` functions read scenario dicts into typed columns in one compiled pass; they
transcribe the per-scenario readers of cost.py/scoring.py/scenario.py (tests check identity).

Batch tables are flat ``array.array`` buffers (row r of an [rows, n] table at [r*n, (r+1)*n)),
not numpy arrays: the exporters' cost and QoE processes use these kernels without ever importing
numpy (14 MB of resident memory); the numpy-returning wrappers in cost.py/scoring.py convert.
"""

import math as _math
import sys as _sys
from array import array as _array

from cpython.dict cimport PyDict_Copy
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_Check
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from libc.math cimport NAN, isfinite, isnan, sqrt

cdef extern from "Python.h":
    # Borrowed-reference access: the sample loop touches no reference counts on its fast path.
    Py_ssize_t _list_size "PyList_GET_SIZE" (object)
    Py_ssize_t _tuple_size "PyTuple_GET_SIZE" (object)
    PyObject* _list_item "PyList_GET_ITEM" (object, Py_ssize_t)
    PyObject* _tuple_item "PyTuple_GET_ITEM" (object, Py_ssize_t)
    bint _is_exact_float "PyFloat_CheckExact" (PyObject*)
    double _long_as_double "PyLong_AsDouble" (object)
    PyObject* PyErr_Occurred()
    PyObject* PyDict_GetItemWithError(object, object) except? NULL
    void PyErr_Clear()
    double _float_value "PyFloat_AS_DOUBLE" (PyObject*)
    Py_ssize_t PY_SSIZE_T_MAX
    int _list_set_slice "PyList_SetSlice" (object, Py_ssize_t, Py_ssize_t, PyObject*) except -1

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
SERIES_ABSENT = C_ABSENT
SERIES_VALID = C_VALID
SERIES_INVALID = C_INVALID


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
# The spread of sample lists
# ---------------------------------------------------------------------------------------------

def sample_stdev(list samples, double mean):
    """Sample standard deviation (n - 1) of float ``samples`` around ``mean``, None if n < 2.

    ``sqrt(math.fsum([(x - mean) * (x - mean) ...]) / (n - 1))``; None when that is not finite
    (samples near the float limit).
    """
    cdef Py_ssize_t n = len(samples)
    cdef double d, variance
    if n < 2:
        return None
    squares = []
    for x in samples:
        d = <double>x - mean
        squares.append(d * d)
    try:
        variance = _math.fsum(squares) / (n - 1)
    except OverflowError:  # an intermediate sum beyond the float range
        return None
    return sqrt(variance) if isfinite(variance) else None


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

    ``advisor_core.cost.sample_series``: the samples are valid by the one rule of sample lists
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


# ---------------------------------------------------------------------------------------------
# Gathering scenario fields into typed columns (with the GIL: this is where Python objects are
# read). These are compiled transcriptions of the per-scenario readers in cost.py, scoring.py and
# scenario.total_pixels; tests check the batch and per-scenario results are identical.
# ---------------------------------------------------------------------------------------------

cdef object _MISSING = object()


cdef inline double _num(object value):
    # as_number's rule: finite int/float (not bool) -> float, else NaN
    cdef double d
    # Exact types first: PyFloat_Check of an int walks the type's MRO.
    cdef bint is_int = type(value) is int
    if not is_int and (type(value) is float or PyFloat_Check(value)):
        d = PyFloat_AS_DOUBLE(value)
        return d if isfinite(d) else NAN
    if is_int or (PyLong_Check(value) and not isinstance(value, bool)):
        d = _long_as_double(value)
        if d == -1.0 and PyErr_Occurred():
            PyErr_Clear()  # beyond the float range
            return NAN
        return d
    return NAN


cdef inline double _pos(object value):
    cdef double d = _num(value)
    return d if d > 0.0 else NAN


def as_number(object value):
    """``value`` as a finite float, or None for null, bools, strings, NaN and infinities.

    Exact floats come back as the same object; ints (not bools) are converted, and ints beyond
    the float range are None. ``advisor_core.scenario.as_number`` is this function.
    """
    cdef double d
    if type(value) is float:
        return value if isfinite(PyFloat_AS_DOUBLE(value)) else None
    d = _num(value)
    return None if isnan(d) else d


def positive_number(object value):
    """``as_number(value)`` when it is > 0, else None (``scenario.positive_number``)."""
    cdef double d
    if type(value) is float:
        d = PyFloat_AS_DOUBLE(value)
        return value if d > 0.0 and isfinite(d) else None
    d = _pos(value)
    return None if isnan(d) else d


cdef inline double _nonneg(object value):
    cdef double d = _num(value)
    return d if d >= 0.0 else NAN


# Top-level scenario fields the gather kernels read (_FIELD_NAMES in this order).
cdef enum:
    F_NAME = 0
    F_BITRATE = 1
    F_RESOLUTION = 2
    F_FPS = 3
    F_DURATION = 4
    F_POWER = 5
    F_GPU_POWER = 6
    F_OUTPUTS = 7
    F_PIXELS_PROCESSED = 8
    F_VIEWERS = 9
    F_STEP = 10
    F_CPU = 11
    F_GPU = 12
    F_POWER_WATTS = 13
    F_VMAF = 14
    F_COUNT = 15

cdef tuple _FIELD_NAMES = (
    "name", "bitrate", "resolution", "fps", "duration", "power", "gpu_power", "outputs",
    "pixels_processed", "viewers", "step_seconds", "cpu_usage_cores", "gpu_usage_cores",
    "power_watts", "vmaf_score",
)

cdef class _Fields:
    # The scenario being read: get(f) is ``scenario.get(key)`` (bitrate: ``get(key, "0k")``).
    cdef dict scenario

    def __cinit__(self):
        self.scenario = {}

    cdef inline object get(self, int f):
        cdef PyObject* value = PyDict_GetItemWithError(self.scenario, _FIELD_NAMES[f])
        if value == NULL:
            return "0k" if f == F_BITRATE else None
        return <object>value

    cdef int read(self, dict s) except -1:
        self.scenario = s
        return 0


cdef double _mean_watts(_Fields s):
    # cost.mean_power_watts
    cdef double watts, gpu_watts
    power = s.get(F_POWER)
    if not isinstance(power, dict) or not power:
        return NAN
    watts = _nonneg((<dict>power).get("mean_watts"))
    if isnan(watts):
        return NAN
    gpu = s.get(F_GPU_POWER)
    if isinstance(gpu, dict):
        raw = (<dict>gpu).get("mean_watts")
        if raw is not None:
            gpu_watts = _nonneg(raw)
            if isnan(gpu_watts):
                return NAN
            watts = watts + gpu_watts
            if not isfinite(watts):
                return NAN
    return watts


cdef double _energy_j(_Fields s):
    # cost.energy_joules
    power = s.get(F_POWER)
    if not isinstance(power, dict):
        return NAN
    return _pos((<dict>power).get("total_energy_joules"))


cdef inline double _area(object text, object resolution, dict areas):
    # width x height of a resolution text, NaN when invalid; ``areas`` memoises resolution()
    # for the duration of one gather call
    area = areas.get(text) if isinstance(text, str) else None
    if area is None:
        size = resolution(text)
        if size is None:
            area = 0
        else:
            area = <long long>size[0] * <long long>size[1]
        if isinstance(text, str):
            areas[text] = area
    if area == 0:
        return NAN
    return <double>(<long long>area)


cdef inline double _rendition(object raw_fps, object text, object resolution, dict areas):
    # pixels per second of one rendition, NaN when invalid (scenario._renditions)
    cdef double fps = _pos(raw_fps)
    if isnan(fps):
        return NAN
    return _area(text, resolution, areas) * fps


cdef inline double _entry_rendition(dict entry, object resolution, dict areas):
    # the same for an ``outputs`` entry (its resolution is read only with a valid fps)
    cdef double fps = _pos(entry.get("fps"))
    if isnan(fps):
        return NAN
    return _area(entry.get("resolution"), resolution, areas) * fps


# Before 3.12, sum() of floats adds them one by one, left to right (from the int 0, which adds
# exactly): a C loop gives the same double. 3.12 made it compensated, so there sum() is called.
cdef bint _PLAIN_SUM = _sys.version_info < (3, 12)


cdef double _pixels(_Fields s, double seconds, object resolution, dict areas, list terms):
    # scenario.total_pixels (seconds = its positive duration or NaN): sum of width x height x
    # fps over the renditions, x seconds; else the scenario's pixels_processed count.
    # ``terms`` is a scratch list reused across the scenarios of one call.
    cdef double term, total = NAN, pixels
    cdef Py_ssize_t found = 0
    if isnan(seconds):
        return _pos(s.get(F_PIXELS_PROCESSED))
    outputs = s.get(F_OUTPUTS)
    if isinstance(outputs, list):
        for entry in <list>outputs:
            if not isinstance(entry, dict):
                continue
            term = _entry_rendition(<dict>entry, resolution, areas)
            if isnan(term):
                continue
            found += 1
            if found == 1:
                total = term
            elif _PLAIN_SUM:
                total += term
            else:
                if found == 2:
                    _list_set_slice(terms, 0, PY_SSIZE_T_MAX, NULL)  # clear
                    terms.append(total)
                terms.append(term)
    if found == 0:
        total = _rendition(s.get(F_FPS), s.get(F_RESOLUTION), resolution, areas)
        if isnan(total):
            return _pos(s.get(F_PIXELS_PROCESSED))
        found = 1
    if found >= 2 and not _PLAIN_SUM:
        total = <double>sum(terms)
    pixels = total * seconds
    return pixels if isfinite(pixels) else NAN


cdef object _filled(str code, Py_ssize_t size, object value):
    return _array(code, [value]) * size


cdef class _Parsers:
    # The scenario.py parsers and the per-call memos of their results (names, bitrates and
    # resolutions repeat within a run), shared by the scenarios of one gather call, and the
    # reader of the current scenario's fields.
    cdef object bitrate_mbps, stream_count, resolution
    cdef dict areas, rates, counts
    cdef list terms  # scratch list of _pixels
    cdef _Fields fields

    def __cinit__(self, bitrate_mbps, stream_count, resolution):
        self.bitrate_mbps = bitrate_mbps
        self.stream_count = stream_count
        self.resolution = resolution
        self.areas = {}
        self.rates = {}
        self.counts = {}
        self.terms = []
        self.fields = _Fields()


cdef int _cost_fields(_Fields s, double[::1] table, Py_ssize_t n, Py_ssize_t i,
                      _Parsers p) except -1:
    # column i of gather_cost_fields' table
    cdef double step, seconds
    cdef Series gpu
    seconds = _pos(s.get(F_DURATION))
    table[0 * n + i] = _mean_watts(s)
    table[1 * n + i] = seconds
    table[2 * n + i] = _pixels(s, seconds, p.resolution, p.areas, p.terms)
    table[3 * n + i] = _pos(s.get(F_VIEWERS))
    step = _pos(s.get(F_STEP))
    table[4 * n + i] = _series_integral(_read_series(s.get(F_CPU)), step)
    gpu = _read_series(s.get(F_GPU))
    table[5 * n + i] = 0.0 if gpu.state == C_ABSENT else _series_integral(gpu, step)
    table[6 * n + i] = _series_integral(_read_series(s.get(F_POWER_WATTS)), step)
    return 0


def gather_cost_fields(list scenarios, object resolution):
    """Columns for costs_batch: (ok uint8 [n], table float64 [7 * n], row-major, flat).

    Rows: mean watts (W), duration (s), pixels, viewers field, CPU core-seconds, GPU
    core-seconds (0.0 without GPU samples), joules of power_watts. ok is 0 for non-dicts.
    """
    cdef Py_ssize_t n = len(scenarios), i
    ok_arr = _filled("B", n, 0)
    table_arr = _filled("d", 7 * n, NAN)
    cdef unsigned char[::1] ok = ok_arr
    cdef double[::1] table = table_arr
    cdef _Parsers p = _Parsers(None, None, resolution)
    for i in range(n):
        item = scenarios[i]
        if not isinstance(item, dict):
            continue
        ok[i] = 1
        p.fields.read(<dict>item)
        _cost_fields(p.fields, table, n, i, p)
    return ok_arr, table_arr


cdef int _score_fields(_Fields s, int fixed_algo, double[::1] table, Py_ssize_t n, Py_ssize_t i,
                       _Parsers p, bint shared, double watts, double pixels) except -1:
    # Column i of gather_score_fields' table; returns the algorithm. With ``shared``, ``watts``
    # and ``pixels`` are _mean_watts(s) and _pixels(s, ...) already read by _cost_fields.
    cdef int algo = fixed_algo
    cdef double energy
    if algo < 0:
        algo = C_THROUGHPUT
        outputs = s.get(F_OUTPUTS)
        if s.get(F_VMAF) is not None:
            algo = C_QOE
        elif isinstance(outputs, list) and len(<list>outputs) > 1:
            algo = C_PIXELS
    if algo == C_THROUGHPUT:
        name = s.get(F_NAME)
        key = name if isinstance(name, str) else None
        if key is None:
            streams = 1.0  # stream_count: a name that is not a str states no count
        else:
            streams = p.counts.get(key, _MISSING)
            if streams is _MISSING:
                count = p.stream_count(key)
                streams = 1.0 if count is None else _num(count)
                p.counts[key] = streams
        table[1 * n + i] = <double>streams
        text = s.get(F_BITRATE)
        key = text if isinstance(text, str) else None
        rate = p.rates.get(key, _MISSING) if key is not None else _MISSING
        if rate is _MISSING:
            rate = p.bitrate_mbps(text)
            if key is not None:
                p.rates[key] = rate
        if rate is not None:
            table[0 * n + i] = <double>rate
        table[2 * n + i] = watts if shared else _mean_watts(s)
    elif algo == C_QUALITY:
        table[2 * n + i] = watts if shared else _mean_watts(s)
        table[5 * n + i] = _num(s.get(F_VMAF))
    else:
        energy = _energy_j(s)
        table[3 * n + i] = energy
        if not isnan(energy):
            table[4 * n + i] = pixels if shared else _pixels(
                s, _pos(s.get(F_DURATION)), p.resolution, p.areas, p.terms)
        if algo == C_QOE:
            table[5 * n + i] = _num(s.get(F_VMAF))
    return algo


def gather_score_fields(list scenarios, int fixed_algo, object bitrate_mbps,
                        object stream_count, object resolution):
    """Columns for score_batch: (algo int8 [n], table float64 [6 * n], row-major, flat: bitrate,
    streams, watts, energy, pixels, vmaf). fixed_algo < 0 selects per scenario like ``auto``.

    ``stream_count`` is called with str names only (other names state no count).
    """
    cdef Py_ssize_t n = len(scenarios), i
    algo_arr = _filled("b", n, C_THROUGHPUT if fixed_algo < 0 else fixed_algo)
    table_arr = _filled("d", 6 * n, NAN)
    cdef signed char[::1] algos = algo_arr
    cdef double[::1] table = table_arr
    cdef _Parsers p = _Parsers(bitrate_mbps, stream_count, resolution)
    for i in range(n):
        item = scenarios[i]
        if isinstance(item, dict):
            p.fields.read(<dict>item)
            algos[i] = _score_fields(p.fields, fixed_algo, table, n, i, p, False, NAN, NAN)
    return algo_arr, table_arr


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


def score(int algo, double bitrate, double streams, double watts, double energy, double pixels,
          double vmaf):
    """One efficiency score (NaN = none); see score_batch."""
    return _score(algo, bitrate, streams, watts, energy, pixels, vmaf)


def score_batch(const signed char[::1] algo, const double[::1] table):
    """Efficiency scores of many scenarios (float64 array.array, NaN = none).

    ``table`` is gather_score_fields' flat [6, n] table: bitrate Mbps, streams, watts W,
    energy J, pixels count, vmaf 0..100.
    """
    cdef Py_ssize_t n = algo.shape[0]
    cdef Py_ssize_t i
    if table.shape[0] != 6 * n:
        raise ValueError("score_batch: expected the 6-row table of gather_score_fields")
    out_arr = _filled("d", n, NAN)
    if n == 0:
        return out_arr
    cdef double[::1] out = out_arr
    with nogil:
        for i in range(n):
            out[i] = _score(algo[i], table[i], table[n + i], table[2 * n + i],
                            table[3 * n + i], table[4 * n + i], table[5 * n + i])
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
    # A 0.0 total means "no data" here: kept from the reference (advisor_core.cost docstring).
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


cdef inline double _la_compute_cost(double cpu_core_s, double gpu_core_s,
                                    double price_core_s) noexcept nogil:
    if price_core_s == 0.0:
        return 0.0
    if isnan(cpu_core_s) or isnan(gpu_core_s):
        return NAN
    return _finite((cpu_core_s + gpu_core_s) * price_core_s)


cdef inline double _la_energy_cost(double joules, double price_j) noexcept nogil:
    if price_j == 0.0:
        return 0.0
    if isnan(joules):
        return NAN
    return _finite(joules * price_j)


def energy_cost(double watts, double duration, double price_kwh):
    """Legacy energy cost: W/1000 x s/3600 x price per kWh (NaN = none)."""
    return _energy_cost(watts, duration, price_kwh)


def compute_cost(double duration, double cpu_hourly, double gpu_hourly):
    """Legacy compute cost: s/3600 x (CPU + GPU hourly price) (NaN = none)."""
    return _compute_cost(duration, cpu_hourly, gpu_hourly)


def total_cost(double energy, double compute):
    """Sum of two cost parts, a missing part counting 0; NaN when both are missing."""
    return _total(energy, compute)


def cost_per_pixel(double total, double pixels):
    """Total cost / pixels; NaN for a missing or 0.0 total or no pixels."""
    return _per_pixel(total, pixels)


def cost_per_watch_hour(double total, double duration, double viewers):
    """Total cost / (hours x viewers) (NaN = none)."""
    return _per_watch_hour(total, duration, viewers)


def load_aware_compute_cost(double cpu_core_s, double gpu_core_s, double price_core_s):
    """(CPU + GPU core-seconds) x price per core-second (NaN = none)."""
    return _la_compute_cost(cpu_core_s, gpu_core_s, price_core_s)


def load_aware_energy_cost(double joules, double price_j):
    """Joules x price per joule (NaN = none)."""
    return _la_energy_cost(joules, price_j)


def costs_batch(const double[::1] fields, Py_ssize_t n, double legacy_viewers,
                double la_viewers,
                bint viewers_from_field, double price_kwh, double cpu_hourly, double gpu_hourly,
                double price_core_s, double price_j):
    """All ten costs of n gathered scenarios, flat float64 [10 * n] array.array (NaN = none).

    ``fields`` is gather_cost_fields' flat [7, n] table. Rows: legacy energy, compute, total,
    per pixel, per watch hour (``legacy_viewers``), then the same five load-aware (``la_viewers``,
    or each scenario's viewers field when ``viewers_from_field``).
    """
    if n < 0 or fields.shape[0] != 7 * n:
        raise ValueError("costs_batch: expected the 7-row table of gather_cost_fields")
    out_arr = _filled("d", 10 * n, NAN)
    if n == 0:
        return out_arr
    cdef double[::1] out = out_arr
    with nogil:
        _costs(fields, out, n, legacy_viewers, la_viewers, viewers_from_field, price_kwh,
               cpu_hourly, gpu_hourly, price_core_s, price_j)
    return out_arr


cdef void _costs(const double[::1] fields, double[::1] out, Py_ssize_t n, double legacy_viewers,
                 double la_viewers, bint viewers_from_field, double price_kwh, double cpu_hourly,
                 double gpu_hourly, double price_core_s, double price_j) noexcept nogil:
    cdef Py_ssize_t i
    cdef double e, c, t, viewers
    for i in range(n):
        e = _energy_cost(fields[0 * n + i], fields[1 * n + i], price_kwh)
        c = _compute_cost(fields[1 * n + i], cpu_hourly, gpu_hourly)
        t = _total(e, c)
        out[0 * n + i] = e
        out[1 * n + i] = c
        out[2 * n + i] = t
        out[3 * n + i] = _per_pixel(t, fields[2 * n + i])
        out[4 * n + i] = _per_watch_hour(t, fields[1 * n + i], legacy_viewers)
        e = _la_energy_cost(fields[6 * n + i], price_j)
        c = _la_compute_cost(fields[4 * n + i], fields[5 * n + i], price_core_s)
        t = _total(e, c)
        viewers = fields[3 * n + i] if viewers_from_field else la_viewers
        out[5 * n + i] = e
        out[6 * n + i] = c
        out[7 * n + i] = t
        out[8 * n + i] = _per_pixel(t, fields[2 * n + i])
        out[9 * n + i] = _per_watch_hour(t, fields[1 * n + i], viewers)


# ---------------------------------------------------------------------------------------------
# Ranking support
# ---------------------------------------------------------------------------------------------

def dicts_only(object scenarios):
    """The dict entries of an iterable as a list (the list itself when every entry is a dict)."""
    cdef Py_ssize_t i
    if scenarios is None:
        return []
    if type(scenarios) is list:
        for i in range(len(<list>scenarios)):
            if not isinstance((<list>scenarios)[i], dict):
                break
        else:
            return scenarios
    return [s for s in scenarios if isinstance(s, dict)]


def scored_copies(list scenarios, const double[::1] scores):
    """Shallow copies of the scenario dicts with ``efficiency_score`` set (None for NaN)."""
    cdef Py_ssize_t n = len(scenarios), i
    if scores.shape[0] != n:
        raise ValueError("scored_copies: one score per scenario expected")
    cdef list out = PyList_New(n)
    cdef dict copy
    for i in range(n):
        copy = PyDict_Copy(<dict?>scenarios[i])
        copy["efficiency_score"] = _optional(scores[i])
        Py_INCREF(copy)
        PyList_SET_ITEM(out, i, copy)
    return out


def ranked_order(list copies, const double[::1] scores):
    """Copies best score first (stable, NaN last) with ``efficiency_rank`` 1..k on scored ones."""
    if scores.shape[0] != len(copies):
        raise ValueError("ranked_order: one score per copy expected")
    return _ranked(copies, scores)


cdef list _ranked(list copies, const double[::1] scores):
    cdef Py_ssize_t n = len(copies), i, rank = 0
    cdef list keys = [scores[i] for i in range(n)]
    cdef list scored = [i for i in range(n) if not isnan(scores[i])]
    # list.sort is stable, also with reverse=True: equal scores keep their input order.
    scored.sort(key=keys.__getitem__, reverse=True)
    cdef list out = []
    for i in scored:
        item = copies[i]
        rank += 1
        (<dict?>item)["efficiency_rank"] = rank
        out.append(item)
    out.extend([copies[i] for i in range(n) if isnan(scores[i])])  # unscored, in input order
    return out


# ---------------------------------------------------------------------------------------------
# Ranking and costs in one pass
# ---------------------------------------------------------------------------------------------

def rank_with_costs(list scenarios, tuple score_args, object cost_args):
    """(ranked copies, ok uint8 [n], costs float64 [10 * n]) in one pass over the scenarios.

    ``score_args`` are gather_score_fields' (fixed_algo, bitrate_mbps, stream_count, resolution);
    ``cost_args`` are costs_batch's (legacy_viewers, la_viewers, viewers_from_field, price_kwh,
    cpu_hourly, gpu_hourly, price_core_s, price_j), or None for no costs (empty table).
    The results equal ranked_order(scored_copies(dicts, scores), scores) over the dict entries
    and costs_batch(gather_cost_fields(...)) over all entries. Each scenario is read once, while
    its dict is in cache: the fields that scores and costs share (power, duration, pixels) are
    gathered once, and the copy is made right away.
    """
    cdef Py_ssize_t n = len(scenarios), i, j, k = 0
    cdef int fixed_algo = score_args[0]
    cdef _Parsers p = _Parsers(score_args[1], score_args[2], score_args[3])
    cdef bint with_costs = cost_args is not None
    ok_arr = _filled("B", n, 0)
    fields_arr = _filled("d", 7 * n if with_costs else 0, NAN)
    scores_arr = _filled("d", n, NAN)
    cdef unsigned char[::1] ok = ok_arr
    cdef double[::1] fields = fields_arr
    cdef double[::1] scores = scores_arr
    cdef double[::1] one = _filled("d", 6, NAN)  # score inputs of one scenario ([6, 1] table)
    cdef list copies = []
    cdef int algo
    cdef double value
    cdef dict copy
    for i in range(n):
        item = scenarios[i]
        if not isinstance(item, dict):
            continue
        ok[i] = 1
        for j in range(6):
            one[j] = NAN
        p.fields.read(<dict>item)
        if with_costs:
            _cost_fields(p.fields, fields, n, i, p)
            algo = _score_fields(p.fields, fixed_algo, one, 1, 0, p, True, fields[i],
                                 fields[2 * n + i])
        else:
            algo = _score_fields(p.fields, fixed_algo, one, 1, 0, p, False, NAN, NAN)
        value = _score(algo, one[0], one[1], one[2], one[3], one[4], one[5])
        scores[k] = value
        copy = PyDict_Copy(item)
        copy["efficiency_score"] = _optional(value)
        copies.append(copy)
        k += 1
    ranked = _ranked(copies, scores[:k])
    if not with_costs:
        return ranked, ok_arr, _filled("d", 0, NAN)
    cdef double legacy_viewers, la_viewers, price_kwh, cpu_hourly, gpu_hourly, price_core_s
    cdef double price_j
    cdef bint viewers_from_field
    (legacy_viewers, la_viewers, viewers_from_field, price_kwh, cpu_hourly, gpu_hourly,
     price_core_s, price_j) = cost_args
    costs_arr = _filled("d", 10 * n, NAN)
    cdef double[::1] costs = costs_arr
    if n:
        with nogil:
            _costs(fields, costs, n, legacy_viewers, la_viewers, viewers_from_field, price_kwh,
                   cpu_hourly, gpu_hourly, price_core_s, price_j)
    return ranked, ok_arr, costs_arr
