# cython: language_level=3
"""The StandardScaler -> PolynomialFeatures -> LinearRegression pipeline, compiled.

Scaling, the polynomial expansion, the centred minimum-norm fit (``_solver``) and prediction,
plus the metrics the model selection reads. No numpy: inputs are typed memoryviews of any
float64 buffer, outputs are flat ``array('d')`` objects (row-major where they hold a matrix),
which numpy wraps without a copy.
"""

from libc.float cimport DBL_EPSILON
from libc.math cimport NAN, isfinite, sqrt
from libc.string cimport memcpy, memset

from cpython.array cimport array

from advisor_core.models._blas cimport dot, pairwise_sum
from advisor_core.models._buffers cimport Buffers, check_len, new_doubles
from advisor_core.models._solver cimport any_nonfinite, lstsq_core, lstsq_work_size


cdef double EPS = DBL_EPSILON


cdef void pipe_init(Pipe* P, const int[:, ::1] mono, Py_ssize_t n_features,
                    Py_ssize_t ncols_tol) noexcept:
    """The problem of a pipeline on n_features features; no buffer yet (pipe_alloc*)."""
    memset(P, 0, sizeof(Pipe))
    P.n_features = n_features
    P.n_mono = mono.shape[0]
    P.degree = mono.shape[1]
    P.mono = &mono[0, 0] if P.n_mono > 0 and P.degree > 0 else NULL
    P.ncols_tol = ncols_tol
    P.n_kept = -1


cdef int pipe_alloc_predict(Pipe* P, Buffers buffers) except -1:
    """The buffers pipe_predict and design_row need."""
    P.scaled = buffers.doubles(P.n_features)
    P.monomials = buffers.doubles(P.n_mono)
    return 0


cdef int pipe_alloc(Pipe* P, Buffers buffers, Py_ssize_t max_rows) except -1:
    """The buffers of a fit on up to max_rows rows (and of prediction)."""
    cdef Py_ssize_t n_mono = P.n_mono
    pipe_alloc_predict(P, buffers)
    P.design = buffers.doubles(max_rows * n_mono)
    P.target = buffers.doubles(max_rows)
    P.column_mean = buffers.doubles(n_mono)
    P.solution = buffers.doubles(n_mono)
    P.work = buffers.doubles(lstsq_work_size(max(max_rows, n_mono), min(max_rows, n_mono), 1))
    P.pivots = buffers.indices(max(max_rows, n_mono))
    P.kept = buffers.indices(n_mono)
    P.active = buffers.flags(P.n_features)
    P.kept_for = buffers.flags(P.n_features)
    return 0


cdef void scaler(const double* X, Py_ssize_t p, const Py_ssize_t* rows, Py_ssize_t m,
                 double* mean, double* scale, bint* active) noexcept nogil:
    """sklearn StandardScaler statistics (same summation order, same constant-feature test)."""
    cdef Py_ssize_t f, i
    cdef double total, feature_mean, d, corr, ss, var
    for f in range(p):
        total = 0.0
        for i in range(m):
            total += X[rows[i] * p + f]
        feature_mean = total / m
        corr = 0.0
        ss = 0.0
        for i in range(m):
            d = X[rows[i] * p + f] - feature_mean
            corr += d
            ss += d * d
        var = (ss - corr * corr / m) / m
        mean[f] = feature_mean
        if var <= m * EPS * var + (m * feature_mean * EPS) * (m * feature_mean * EPS):
            scale[f] = 1.0
            active[f] = False
        else:
            scale[f] = sqrt(var)
            active[f] = True


cdef Py_ssize_t _expand_row(const double* z, Py_ssize_t pa, Py_ssize_t degree,
                            double* out) noexcept nogil:
    """Non-bias monomials of z[0:pa] up to `degree` (<= 3) in PolynomialFeatures order.

    In that order every run of monomials sharing all factors but the last is a scalar times a
    contiguous tail of z, so each value costs one multiplication. Returns the count written.
    """
    cdef Py_ssize_t a, b, c, k = 0
    cdef double zab
    for a in range(pa):
        out[k] = z[a]
        k += 1
    if degree >= 2:
        for a in range(pa):
            for b in range(a, pa):
                out[k] = z[a] * z[b]
                k += 1
    if degree >= 3:
        for a in range(pa):
            for b in range(a, pa):
                zab = z[a] * z[b]
                for c in range(b, pa):
                    out[k] = zab * z[c]
                    k += 1
    return k


cdef Py_ssize_t kept_columns(Pipe* P) noexcept nogil:
    """Fill P.kept with the monomials whose features are all active; return their count.

    Monomials of constant features are never built: they are zero columns whose min-norm
    coefficient is exactly 0. The map depends only on which features are active, so the
    previous one is reused when they are unchanged (resamples and folds nearly always are).
    """
    cdef Py_ssize_t f, j, t, n_kept = 0
    cdef bint all_active
    if P.n_kept >= 0:
        for f in range(P.n_features):
            if P.active[f] != P.kept_for[f]:
                break
        else:
            return P.n_kept
    for j in range(P.n_mono):
        all_active = True
        for t in range(P.degree):
            if P.mono[j * P.degree + t] >= 0 and not P.active[P.mono[j * P.degree + t]]:
                all_active = False
        if all_active:
            P.kept[n_kept] = j
            n_kept += 1
    P.n_kept = n_kept
    memcpy(P.kept_for, P.active, P.n_features * sizeof(bint))
    return n_kept


cdef void design_row(Pipe* P, const double* x, const double* mean, const double* scale,
                     double* out) noexcept nogil:
    """Kept monomials of the scaled active features of x (one row of the fit's design)."""
    cdef Py_ssize_t f, n_active = 0
    for f in range(P.n_features):
        if P.active[f]:
            P.scaled[n_active] = (x[f] - mean[f]) / scale[f]
            n_active += 1
    # The expansion of the compacted active features yields exactly the kept columns, in the
    # same relative order as the full expansion (P.kept maps them back).
    _expand_row(P.scaled, n_active, P.degree, out)


cdef bint centred_design(Pipe* P, const double* X, const Py_ssize_t* rows, const double* wts,
                         Py_ssize_t n_distinct, Py_ssize_t m, const double* mean,
                         const double* scale, Py_ssize_t n_kept) noexcept nogil:
    """The design of X[rows[0:n_distinct]] in P.design, centred, rows weighted by sqrt(wts).

    The column means (over m rows: each distinct row counts wts[i] times, once without wts)
    go to P.column_mean: numpy's pairwise sum when unweighted, so that they match np.mean.
    Wide designs (fewer rows than columns) are stored transposed, one row's monomials
    contiguous, as the solver factorises them; returns True then.
    """
    cdef bint transposed = n_distinct < n_kept
    cdef Py_ssize_t ld = n_kept if transposed else n_distinct
    cdef Py_ssize_t i, a
    cdef double w, col_mean
    cdef double* D = P.design
    memset(P.column_mean, 0, n_kept * sizeof(double))
    for i in range(n_distinct):
        if transposed:
            design_row(P, X + rows[i] * P.n_features, mean, scale, D + i * ld)
            w = 1.0 if wts == NULL else wts[i]
            for a in range(n_kept):
                P.column_mean[a] += w * D[a + i * ld]
        else:
            design_row(P, X + rows[i] * P.n_features, mean, scale, P.monomials)
            for a in range(n_kept):
                D[i + a * ld] = P.monomials[a]
    if transposed:
        for a in range(n_kept):
            P.column_mean[a] /= m
        for i in range(n_distinct):
            w = 1.0 if wts == NULL else sqrt(wts[i])
            for a in range(n_kept):
                D[a + i * ld] = (D[a + i * ld] - P.column_mean[a]) * w
        return True
    for a in range(n_kept):
        if wts == NULL:
            P.column_mean[a] = pairwise_sum(D + a * ld, n_distinct) / m
        else:
            P.column_mean[a] = dot(D + a * ld, wts, n_distinct) / m
        col_mean = P.column_mean[a]
        for i in range(n_distinct):
            D[i + a * ld] -= col_mean
    if wts != NULL:
        for i in range(n_distinct):
            w = sqrt(wts[i])
            for a in range(n_kept):
                D[i + a * ld] *= w
    return False


cdef int pipe_fit(Pipe* P, const double* X, const double* y, const Py_ssize_t* rows,
                  Py_ssize_t m, const Py_ssize_t* distinct_rows, const double* wts,
                  Py_ssize_t n_distinct, double* mean, double* scale, double* coef,
                  double* intercept) noexcept nogil:
    """Fit scaler -> expansion -> centred min-norm least squares on X[rows]; 0 on success.

    With wts != NULL the rows are a resample given as its distinct rows distinct_rows[0:n_distinct]
    with multiplicities wts: the design is built once per distinct row and weighted by
    sqrt(count), which has the same least-squares objective, the same solution set and the same
    singular values as the duplicated design, at a fraction of the cost.
    coef gets one entry per monomial (bias excluded).
    """
    cdef Py_ssize_t i, a, n_kept, rank
    cdef double y_mean, total, rcond
    cdef bint transposed
    if m < 1:
        return -1
    if wts == NULL:
        distinct_rows = rows
        n_distinct = m
    scaler(X, P.n_features, rows, m, mean, scale, P.active)
    n_kept = kept_columns(P)
    total = 0.0
    for i in range(m):
        total += y[rows[i]]
    y_mean = total / m
    for i in range(n_distinct):
        P.target[i] = y[distinct_rows[i]] - y_mean
        if wts != NULL:
            P.target[i] *= sqrt(wts[i])
    transposed = centred_design(P, X, distinct_rows, wts, n_distinct, m, mean, scale, n_kept)
    rcond = EPS * (m if m > P.ncols_tol else P.ncols_tol)
    if transposed:
        rank = lstsq_core(P.design, n_kept, n_kept, n_distinct, True, P.target, n_distinct, 1,
                          rcond, P.solution, n_kept, P.work, P.pivots)
    else:
        rank = lstsq_core(P.design, n_distinct, n_distinct, n_kept, False, P.target,
                          n_distinct, 1, rcond, P.solution, n_kept, P.work, P.pivots)
    if rank < 0:
        return -2
    memset(coef, 0, P.n_mono * sizeof(double))
    total = y_mean
    for a in range(n_kept):
        coef[P.kept[a]] = P.solution[a]
        total -= P.column_mean[a] * P.solution[a]
        if not isfinite(P.solution[a]):
            return -3
    if not isfinite(total):
        return -3
    intercept[0] = total
    return 0


cdef void pipe_predict(const Pipe* P, const double* mean, const double* scale,
                       const double* coef, double intercept, const double* Xn,
                       Py_ssize_t nrows, double* out) noexcept nogil:
    """out[r] = intercept + sum_j coef[j] * monomial_j((Xn[r] - mean) / scale)."""
    cdef Py_ssize_t r, f
    cdef const double* row
    for r in range(nrows):
        row = Xn + r * P.n_features
        for f in range(P.n_features):
            P.scaled[f] = (row[f] - mean[f]) / scale[f]
        _expand_row(P.scaled, P.n_features, P.degree, P.monomials)
        out[r] = intercept + dot(coef, P.monomials, P.n_mono)


def scaler_stats(const double[:, ::1] X):
    """(mean, scale) of the columns of X like sklearn's StandardScaler (population std)."""
    cdef Py_ssize_t m = X.shape[0], p = X.shape[1], i
    cdef array mean = new_doubles(p, 0.0)
    cdef array scale = new_doubles(p, 1.0)
    cdef Buffers buffers = Buffers()
    cdef Py_ssize_t* rows
    cdef bint* active
    if m == 0 or p == 0:
        return mean, scale
    rows = buffers.indices(m)
    active = buffers.flags(p)
    with nogil:
        for i in range(m):
            rows[i] = i
        scaler(&X[0, 0], p, rows, m, mean.data.as_doubles, scale.data.as_doubles, active)
    return mean, scale


def poly_expand(const double[:, ::1] X, const int[:, ::1] mono, bint include_bias):
    """Row-major (n, [1 +] J) columns [1,] monomial_j(X) of the monomial table (sklearn order)."""
    cdef Py_ssize_t n = X.shape[0], n_mono = mono.shape[0], degree = mono.shape[1]
    cdef Py_ssize_t offset = 1 if include_bias else 0, width = n_mono + offset, i, j, t
    cdef double v
    cdef array out = new_doubles(n * width, 0.0)
    cdef double* o = out.data.as_doubles
    with nogil:
        for i in range(n):
            if offset:
                o[i * width] = 1.0
            for j in range(n_mono):
                v = 1.0
                for t in range(degree):
                    if mono[j, t] >= 0:
                        v = v * X[i, mono[j, t]]
                o[i * width + j + offset] = v
    return out


def fit_pipeline(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
                 Py_ssize_t ncols_tol):
    """Fit scaler -> expansion -> least squares: (mean, scale, coef per monomial, intercept)."""
    if X.shape[0] < 1:
        raise ValueError("cannot fit on 0 rows")
    check_len(y.shape[0], X.shape[0], "y")
    return fit_rows(&X[0, 0], X.shape[0], X.shape[1], &y[0], mono, ncols_tol)


def fit_column(const double[::1] x, const double[::1] y, const int[:, ::1] mono,
               Py_ssize_t ncols_tol):
    """fit_pipeline on one feature given as a 1-D buffer x; ValueError unless x and y are
    non-empty, of one length and finite (one call where the stream-count curve's fit is
    mostly call overhead)."""
    cdef Py_ssize_t m = x.shape[0]
    if m < 1:
        raise ValueError("cannot fit on 0 rows")
    check_len(y.shape[0], m, "y")
    if any_nonfinite(&x[0], m) or any_nonfinite(&y[0], m):
        raise ValueError("x and y must contain only finite values")
    return fit_rows(&x[0], m, 1, &y[0], mono, ncols_tol)


cdef tuple fit_rows(const double* X, Py_ssize_t m, Py_ssize_t p, const double* y,
                    const int[:, ::1] mono, Py_ssize_t ncols_tol):
    """The fit of fit_pipeline on the m x p row-major X (m >= 1) and y."""
    cdef Pipe P
    cdef Py_ssize_t i
    cdef int status
    cdef double intercept = 0.0
    cdef Buffers buffers = Buffers()
    cdef Py_ssize_t* rows
    cdef array mean = new_doubles(p, 0.0)
    cdef array scale = new_doubles(p, 1.0)
    cdef array coef = new_doubles(mono.shape[0], 0.0)
    pipe_init(&P, mono, p, ncols_tol)
    pipe_alloc(&P, buffers, m)
    rows = buffers.indices(m)
    with nogil:
        for i in range(m):
            rows[i] = i
        status = pipe_fit(&P, X, y, rows, m, NULL, NULL, 0, mean.data.as_doubles,
                          scale.data.as_doubles, coef.data.as_doubles, &intercept)
    if status != 0:
        raise ValueError("least-squares fit failed (no convergence or non-finite result)")
    return mean, scale, coef, intercept


def predict_pipeline(const double[:, ::1] Xn, const double[::1] mean, const double[::1] scale,
                     const int[:, ::1] mono, const double[::1] coef, double intercept):
    """Predictions of a fitted pipeline for the rows of Xn (coef per monomial, bias excluded)."""
    cdef Pipe P
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1]
    cdef array out = new_doubles(n, 0.0)
    cdef Buffers buffers
    check_len(mean.shape[0], p, "mean")
    check_len(scale.shape[0], p, "scale")
    check_len(coef.shape[0], mono.shape[0], "coef")
    if n == 0:
        return out
    buffers = Buffers()
    pipe_init(&P, mono, p, 0)
    pipe_alloc_predict(&P, buffers)
    with nogil:
        pipe_predict(&P, &mean[0] if p > 0 else NULL, &scale[0] if p > 0 else NULL,
                     &coef[0] if P.n_mono > 0 else NULL, intercept, &Xn[0, 0], n,
                     out.data.as_doubles)
    return out


def mean(const double[::1] x):
    """np.mean of x, bit for bit (pairwise summation); NaN when empty."""
    if x.shape[0] == 0:
        return NAN
    return pairwise_sum(&x[0], x.shape[0]) / x.shape[0]


def r2(const double[::1] y_true, const double[::1] y_pred):
    """sklearn r2_score (force_finite: a constant target gives 1.0 if perfect, else 0.0); NaN
    for fewer than 2 samples."""
    cdef Py_ssize_t n = y_true.shape[0], i
    cdef double y_mean, num = 0.0, den = 0.0, d
    check_len(y_pred.shape[0], n, "y_pred")
    if n < 2:
        return NAN
    y_mean = pairwise_sum(&y_true[0], n) / n
    for i in range(n):
        d = y_true[i] - y_pred[i]
        num += d * d
        d = y_true[i] - y_mean
        den += d * d
    if num == 0.0:
        return 1.0
    if den == 0.0:
        return 0.0
    return 1.0 - num / den


def rmse(const double[::1] y_true, const double[::1] y_pred):
    """Root mean squared error; NaN when empty."""
    cdef Py_ssize_t n = y_true.shape[0], i
    cdef double s = 0.0, d
    check_len(y_pred.shape[0], n, "y_pred")
    if n == 0:
        return NAN
    for i in range(n):
        d = y_true[i] - y_pred[i]
        s += d * d
    return sqrt(s / n)
