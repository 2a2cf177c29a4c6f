# cython: language_level=3
"""Bootstrap refits of the compiled pipeline and numpy's linear percentiles of their
predictions (the loops of ``advisor_core.models.resampling``)."""

from libc.math cimport NAN, floor, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport qsort
from libc.string cimport memset

from cpython.array cimport array

from advisor_core.models._buffers cimport Buffers, check_len, new_doubles
from advisor_core.models._pipeline cimport Pipe, pipe_alloc, pipe_fit, pipe_init, pipe_predict


cdef bint _distinct_rows(const int64_t* idx, Py_ssize_t n, Py_ssize_t* rows,
                         Py_ssize_t* count, Py_ssize_t* distinct_rows, double* wts,
                         Py_ssize_t* n_distinct) noexcept nogil:
    """One resample's rows (idx[0:n]), its distinct rows and their multiplicities (wts);
    False when an index is outside 0..n-1."""
    cdef Py_ssize_t i, found = 0
    for i in range(n):
        rows[i] = <Py_ssize_t> idx[i]
        if rows[i] < 0 or rows[i] >= n:
            return False
    memset(count, 0, n * sizeof(Py_ssize_t))
    for i in range(n):
        count[rows[i]] += 1
    for i in range(n):
        if count[i] > 0:
            distinct_rows[found] = i
            wts[found] = <double> count[i]
            found += 1
    n_distinct[0] = found
    return True


def bootstrap(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
              Py_ssize_t ncols_tol, const double[:, ::1] Xn, const int64_t[::1] idx,
              double[::1] out, unsigned char[::1] ok, Py_ssize_t start, Py_ssize_t stop):
    """Refit on resamples start..stop-1 (idx row-major, n per resample) and predict Xn.

    Row s of ``out`` (row-major, len(Xn) per resample) receives the predictions of resample s;
    ``ok[s]`` is 1 when its fit succeeded with finite predictions, else 0. Releases the GIL, so
    threads can share disjoint ranges of one call's buffers.
    """
    cdef Pipe P
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], n_new = Xn.shape[0], s, i, n_distinct
    cdef double intercept
    cdef bint good
    cdef Buffers buffers
    cdef double* mean
    cdef double* scale
    cdef double* coef
    cdef double* wts
    cdef double* predictions
    cdef Py_ssize_t* rows
    cdef Py_ssize_t* distinct_rows
    cdef Py_ssize_t* count
    check_len(y.shape[0], n, "y")
    check_len(Xn.shape[1], p, "rows of Xn")
    if start < 0 or stop < start or stop * n > idx.shape[0] or stop > ok.shape[0]:
        raise ValueError("resample range outside idx or ok")
    if stop * n_new > out.shape[0]:
        raise ValueError("out is too small")
    if start == stop or n == 0 or n_new == 0:
        for s in range(start, stop):
            ok[s] = 0 if n == 0 else 1
        return
    buffers = Buffers()
    pipe_init(&P, mono, p, ncols_tol)
    pipe_alloc(&P, buffers, n)
    mean = buffers.doubles(p)
    scale = buffers.doubles(p)
    coef = buffers.doubles(P.n_mono)
    wts = buffers.doubles(n)
    rows = buffers.indices(n)
    distinct_rows = buffers.indices(n)
    count = buffers.indices(n)
    with nogil:
        for s in range(start, stop):
            ok[s] = 0
            if not _distinct_rows(&idx[s * n], n, rows, count, distinct_rows, wts, &n_distinct):
                continue
            if pipe_fit(&P, &X[0, 0], &y[0], rows, n, distinct_rows, wts, n_distinct,
                        mean, scale, coef, &intercept) != 0:
                continue
            predictions = &out[s * n_new]
            pipe_predict(&P, mean, scale, coef, intercept, &Xn[0, 0], n_new, predictions)
            good = True
            for i in range(n_new):
                if not isfinite(predictions[i]):
                    good = False
            if good:
                ok[s] = 1


cdef int _cmp_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*> a)[0], y = (<const double*> b)[0]
    return (x > y) - (x < y)


cdef double _lerp(double a, double b, double t) noexcept nogil:
    # numpy's _lerp, operation for operation (the t >= 0.5 branch keeps lerp(a, b, 1) == b).
    cdef double diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


cdef double _percentile_sorted(const double* values, Py_ssize_t n, double q) noexcept nogil:
    """numpy's 'linear' percentile (q in [0, 1]) of sorted values: virtual index (n - 1) q,
    neighbours clipped."""
    cdef double virtual_index = (n - 1) * q
    cdef Py_ssize_t below
    if virtual_index >= n - 1:
        return values[n - 1]
    below = <Py_ssize_t> floor(virtual_index)
    return _lerp(values[below], values[below + 1], virtual_index - <double> below)


def percentile_pair(const double[::1] values, const unsigned char[::1] ok, Py_ssize_t cols,
                    double q_low, double q_high):
    """Per column, numpy.percentile(..., [q_low, q_high]) (linear) over the rows with ok[row].

    ``values`` is row-major with ``cols`` values per row, all finite on the rows used. Returns
    (low, high) as array('d'); a column without usable rows gives NaN.
    """
    cdef Py_ssize_t n_rows = ok.shape[0], r, c, n_used = 0
    cdef double fraction_low = q_low / 100.0, fraction_high = q_high / 100.0
    cdef array low = new_doubles(cols, NAN)
    cdef array high = new_doubles(cols, NAN)
    cdef Buffers buffers
    cdef double* column
    if n_rows * cols > values.shape[0]:
        raise ValueError("values is smaller than ok x cols")
    if not (0.0 <= fraction_low <= 1.0 and 0.0 <= fraction_high <= 1.0):
        raise ValueError("percentiles must be in [0, 100]")
    for r in range(n_rows):
        if ok[r]:
            n_used += 1
    if n_used == 0 or cols == 0:
        return low, high
    buffers = Buffers()
    column = buffers.doubles(n_used)
    with nogil:
        for c in range(cols):
            n_used = 0
            for r in range(n_rows):
                if ok[r]:
                    column[n_used] = values[r * cols + c]
                    n_used += 1
            qsort(column, n_used, sizeof(double), _cmp_double)
            low.data.as_doubles[c] = _percentile_sorted(column, n_used, fraction_low)
            high.data.as_doubles[c] = _percentile_sorted(column, n_used, fraction_high)
    return low, high
