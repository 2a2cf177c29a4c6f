# cython: language_level=3
"""Out-of-fold predictions of the compiled pipeline, each fold predicted the way a fitted model
predicts (inside its training box, continued by its linear trend beyond it)."""

from libc.math cimport NAN
from libc.stdint cimport int64_t

from cpython.array cimport array

from advisor_core.models._buffers cimport Buffers, check_len, new_doubles
from advisor_core.models._guarded cimport continue_trend
from advisor_core.models._pipeline cimport Pipe, pipe_alloc, pipe_fit, pipe_init, pipe_predict


cdef struct FoldModel:
    # A pipeline fitted on one fold's training rows, and its linear trend.
    double* mean
    double* scale
    double* coef
    double intercept
    double* trend_mean
    double* trend_scale
    double* slope             # the trend's slope per unit of each raw feature
    double trend_intercept
    double* lo                # the training rows' box
    double* hi


cdef int _alloc_fold(FoldModel* fold, Buffers buffers, Py_ssize_t p,
                     Py_ssize_t n_mono) except -1:
    fold.mean = buffers.doubles(p)
    fold.scale = buffers.doubles(p)
    fold.coef = buffers.doubles(n_mono)
    fold.trend_mean = buffers.doubles(p)
    fold.trend_scale = buffers.doubles(p)
    fold.slope = buffers.doubles(p)
    fold.lo = buffers.doubles(p)
    fold.hi = buffers.doubles(p)
    return 0


cdef bint _fit_fold(Pipe* P, Pipe* L, const double[:, ::1] X, const double[::1] y,
                    const Py_ssize_t* rows, Py_ssize_t m, FoldModel* fold) noexcept nogil:
    """Fit the pipeline P and the trend L on X[rows[0:m]], with the rows' box; False when a
    fit failed."""
    cdef Py_ssize_t p = X.shape[1], i, j
    if pipe_fit(P, &X[0, 0], &y[0], rows, m, NULL, NULL, 0, fold.mean, fold.scale,
                fold.coef, &fold.intercept) != 0:
        return False
    if pipe_fit(L, &X[0, 0], &y[0], rows, m, NULL, NULL, 0, fold.trend_mean,
                fold.trend_scale, fold.slope, &fold.trend_intercept) != 0:
        return False
    for j in range(p):
        fold.slope[j] = fold.slope[j] / fold.trend_scale[j]
        fold.lo[j] = X[rows[0], j]
        fold.hi[j] = fold.lo[j]
    for i in range(1, m):
        for j in range(p):
            if X[rows[i], j] < fold.lo[j]:
                fold.lo[j] = X[rows[i], j]
            elif X[rows[i], j] > fold.hi[j]:
                fold.hi[j] = X[rows[i], j]
    return True


def cv_predict(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
               Py_ssize_t ncols_tol, const int[:, ::1] lin_mono, Py_ssize_t lin_ncols_tol,
               const int64_t[::1] fold, Py_ssize_t k, const unsigned char[::1] rising):
    """Out-of-fold predictions: for each fold f < k, fit the pipeline and its linear trend on
    the rows with fold != f and predict the rows of fold f the way a fitted model predicts
    (``guarded_predict`` inside the fold's training box). NaN where a fold's fit failed."""
    cdef Pipe P, L
    cdef FoldModel model
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], f, i, m
    cdef double prediction, change
    cdef Buffers buffers
    cdef double* clipped
    cdef Py_ssize_t* rows
    cdef array out = new_doubles(n, NAN)
    cdef double* predictions = out.data.as_doubles
    check_len(y.shape[0], n, "y")
    check_len(fold.shape[0], n, "fold")
    check_len(rising.shape[0], p, "rising")
    check_len(lin_mono.shape[0], p, "rows of lin_mono")
    if n == 0 or k < 1:
        return out
    buffers = Buffers()
    pipe_init(&P, mono, p, ncols_tol)
    pipe_init(&L, lin_mono, p, lin_ncols_tol)
    pipe_alloc(&P, buffers, n)
    pipe_alloc(&L, buffers, n)
    _alloc_fold(&model, buffers, p, P.n_mono)
    clipped = buffers.doubles(p)
    rows = buffers.indices(n)
    with nogil:
        for f in range(k):
            m = 0
            for i in range(n):
                if fold[i] != f:
                    rows[m] = i
                    m += 1
            if m == 0 or m == n or not _fit_fold(&P, &L, X, y, rows, m, &model):
                continue
            for i in range(n):
                if fold[i] != f:
                    continue
                change = continue_trend(&X[i, 0], model.lo, model.hi, &rising[0], model.slope,
                                        p, clipped)
                pipe_predict(&P, model.mean, model.scale, model.coef if P.n_mono > 0 else NULL,
                             model.intercept, clipped, 1, &prediction)
                predictions[i] = prediction + change
    return out
