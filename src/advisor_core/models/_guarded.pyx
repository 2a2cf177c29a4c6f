# cython: language_level=3
"""Prediction beyond the training box and the leverage of new points.

A fitted pipeline is evaluated at the row clipped into the box its training rows span and
continued from there by its linear trend (no polynomial extrapolation); the leverage of a new
row is what its prediction interval scales with.
"""

from libc.float cimport DBL_EPSILON
from libc.math cimport NAN
from libc.string cimport memcpy

from cpython.array cimport array

from advisor_core.models._blas cimport dot
from advisor_core.models._buffers cimport Buffers, check_len, new_doubles
from advisor_core.models._pipeline cimport (
    Pipe,
    centred_design,
    design_row,
    kept_columns,
    pipe_alloc,
    pipe_alloc_predict,
    pipe_init,
    pipe_predict,
    scaler,
)
from advisor_core.models._solver cimport lstsq_core, lstsq_work_size


cdef double EPS = DBL_EPSILON

# Right-hand sides solved per factorisation in ``leverage``: at least LEVERAGE_BLOCK, and as
# many as LEVERAGE_CELLS doubles of right-hand sides and solutions hold (16 MB), so that the
# buffers stay bounded whatever the number of new rows while a design of few rows is not
# factorised again for every 64 new rows (2,000 new rows on 2,000 x 990: 3 factorisations,
# not 32).
cdef Py_ssize_t LEVERAGE_BLOCK = 64
cdef Py_ssize_t LEVERAGE_CELLS = 2_000_000


cdef double continue_trend(const double* x, const double* lo, const double* hi,
                           const unsigned char* rising, const double* slope, Py_ssize_t p,
                           double* clipped) noexcept nogil:
    """Clip x into the box [lo, hi] (written to clipped); return the trend's change from the
    clipped row to x.

    The change is sum_j slope_j (x_j - clipped_j), with slope_j floored at 0 above the box
    where rising[j] (more streams never lower the predicted power).
    """
    cdef Py_ssize_t j
    cdef double step, slope_j, change = 0.0
    for j in range(p):
        if x[j] < lo[j]:
            clipped[j] = lo[j]
        elif x[j] > hi[j]:
            clipped[j] = hi[j]
        else:
            clipped[j] = x[j]
            continue
        step = x[j] - clipped[j]
        slope_j = slope[j]
        if rising[j] and step > 0.0 and slope_j < 0.0:
            slope_j = 0.0
        change += slope_j * step
    return change


cdef int _check_box(Py_ssize_t p, const double[::1] lo, const double[::1] hi,
                    const unsigned char[::1] rising, const double[::1] slope) except -1:
    check_len(lo.shape[0], p, "lo")
    check_len(hi.shape[0], p, "hi")
    check_len(rising.shape[0], p, "rising")
    check_len(slope.shape[0], p, "slope")
    return 0


def clip_continue(const double[:, ::1] Xn, const double[::1] lo, const double[::1] hi,
                  const unsigned char[::1] rising, const double[::1] slope):
    """(clipped rows, trend change per row): Xn clipped into [lo, hi] and the linear trend's
    change from the clipped row to the row (see ``continue_trend``); row-major array('d') and
    array('d')."""
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1], r
    cdef array clipped = new_doubles(n * p, 0.0)
    cdef array change = new_doubles(n, 0.0)
    _check_box(p, lo, hi, rising, slope)
    if n == 0 or p == 0:
        return clipped, change
    with nogil:
        for r in range(n):
            change.data.as_doubles[r] = continue_trend(
                &Xn[r, 0], &lo[0], &hi[0], &rising[0], &slope[0], p,
                clipped.data.as_doubles + r * p)
    return clipped, change


def guarded_predict(const double[:, ::1] Xn, const double[::1] mean, const double[::1] scale,
                    const int[:, ::1] mono, const double[::1] coef, double intercept,
                    const double[::1] lo, const double[::1] hi,
                    const unsigned char[::1] rising, const double[::1] slope):
    """Pipeline prediction at each row clipped into [lo, hi], plus the linear trend's change
    from the clipped row to the row (``continue_trend``): no polynomial extrapolation."""
    cdef Pipe P
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1], r
    cdef double prediction, change
    cdef Buffers buffers
    cdef double* clipped
    cdef array out = new_doubles(n, 0.0)
    check_len(mean.shape[0], p, "mean")
    check_len(scale.shape[0], p, "scale")
    check_len(coef.shape[0], mono.shape[0], "coef")
    _check_box(p, lo, hi, rising, slope)
    if n == 0 or p == 0:
        return out
    buffers = Buffers()
    pipe_init(&P, mono, p, 0)
    pipe_alloc_predict(&P, buffers)
    clipped = buffers.doubles(p)
    with nogil:
        for r in range(n):
            change = continue_trend(&Xn[r, 0], &lo[0], &hi[0], &rising[0], &slope[0], p,
                                    clipped)
            pipe_predict(&P, &mean[0], &scale[0], &coef[0] if P.n_mono > 0 else NULL,
                         intercept, clipped, 1, &prediction)
            out.data.as_doubles[r] = prediction + change
    return out


cdef int _leverage_blocks(Pipe* P, const double[:, ::1] Xn, const double* mean,
                          const double* scale, Py_ssize_t n, Py_ssize_t n_kept,
                          bint design_transposed, Buffers buffers, double* h) except? -2:
    """h[r] = 1/n + ||w||^2 with w the min-norm solution of Zc' w = v_r (v_r the centred design
    row of Xn[r]), ``block`` rows per factorisation; returns the rank of Zc, -1 when the
    SVD did not converge.

    ||w||^2 = v' (Zc' Zc)^+ v. The solver gets S = Zc' (n_kept x n): itself when tall (the
    design is stored row-major, i.e. transposed, exactly when n < n_kept), else through S' = Zc.
    """
    cdef bint tall = design_transposed
    cdef Py_ssize_t mf = n_kept if tall else n, nf = n if tall else n_kept
    cdef Py_ssize_t n_new = Xn.shape[0], start = 0, count, r, a, rank
    cdef Py_ssize_t block = max(LEVERAGE_BLOCK, min(n_new, LEVERAGE_CELLS // (n + n_kept)))
    cdef double rcond = EPS * (n if n > P.ncols_tol else P.ncols_tol)
    cdef double* factor = buffers.doubles(n * n_kept)
    cdef double* rhs = buffers.doubles(n_kept * block)
    cdef double* solution = buffers.doubles(n * block)
    cdef double* work = buffers.doubles(lstsq_work_size(mf, nf, block))
    cdef Py_ssize_t* pivots = buffers.indices(n + n_kept)
    with nogil:
        # One factorisation per block of new rows (the solver overwrites its matrix); at
        # least one, which also gives the rank when there is no new row.
        while True:
            count = min(n_new - start, block)
            for r in range(count):
                design_row(P, &Xn[start + r, 0], mean, scale, rhs + r * n_kept)
                for a in range(n_kept):
                    rhs[a + r * n_kept] -= P.column_mean[a]
            memcpy(factor, P.design, n * n_kept * sizeof(double))
            rank = lstsq_core(factor, mf, mf, nf, not tall, rhs, n_kept, count, rcond,
                              solution, n, work, pivots)
            if rank < 0:
                return -1
            for r in range(count):
                h[start + r] = 1.0 / n + dot(solution + r * n, solution + r * n, n)
            start += count
            if start >= n_new:
                return rank


def leverage(const double[:, ::1] X, const int[:, ::1] mono, Py_ssize_t ncols_tol,
             const double[:, ::1] Xn):
    """(rank, h): numerical rank of the fit's centred design Zc and, per row x0 of Xn,
    h = 1/n + v' (Zc' Zc)^+ v with v the centred design row of x0 (the leverage of a new point,
    so that Var(prediction) = sigma^2 h). Uses the fit's own rank cut-off and centring."""
    cdef Pipe P
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], n_new = Xn.shape[0], i, n_kept, rank
    cdef array h = new_doubles(n_new, NAN)
    cdef Buffers buffers
    cdef double* mean
    cdef double* scale
    cdef Py_ssize_t* rows
    cdef bint transposed
    if n < 1:
        raise ValueError("cannot compute leverage on 0 rows")
    check_len(Xn.shape[1], p, "rows of Xn")
    buffers = Buffers()
    pipe_init(&P, mono, p, ncols_tol)
    pipe_alloc(&P, buffers, n)
    mean = buffers.doubles(p)
    scale = buffers.doubles(p)
    rows = buffers.indices(n)
    with nogil:
        for i in range(n):
            rows[i] = i
        scaler(&X[0, 0], p, rows, n, mean, scale, P.active)
        n_kept = kept_columns(&P)
        if n_kept > 0:
            transposed = centred_design(&P, &X[0, 0], rows, NULL, n, n, mean, scale, n_kept)
    if n_kept == 0:
        for i in range(n_new):
            h.data.as_doubles[i] = 1.0 / n
        return 0, h
    rank = _leverage_blocks(&P, Xn, mean, scale, n, n_kept, transposed, buffers,
                            h.data.as_doubles)
    if rank < 0:
        raise ValueError("leverage: the SVD did not converge")
    return rank, h
