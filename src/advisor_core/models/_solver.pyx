# cython: language_level=3
"""Minimum-norm least squares: pivoted Householder QR, complete orthogonal decomposition, and a
one-sided Jacobi SVD when the numerical rank is ambiguous.

Matrices are column-major; the inner loops (Householder updates, norms) are C in
``_qr_kernels.c``. The numpy entry point is ``_lstsq.pyx``; the regression pipeline
(``_pipeline.pyx``) calls ``lstsq_core`` directly.
"""

from libc.float cimport DBL_EPSILON
from libc.math cimport fabs, hypot, isfinite, pow, sqrt
from libc.string cimport memcpy, memset

from advisor_core.models._blas cimport axpy, dot


cdef extern from "_qr_kernels.h" nogil:
    double advisor_nrm2(const double* x, Py_ssize_t n)
    void advisor_downdate(const double* a, Py_ssize_t len, double* vn1, double* vn2)
    void advisor_reflect_cols(const double* v, double tau, double* A, Py_ssize_t lda,
                              Py_ssize_t len, Py_ssize_t ncols, double* vn1, double* vn2)
    void advisor_rz_apply(double* A, Py_ssize_t lda, Py_ssize_t i, Py_ssize_t r, Py_ssize_t n,
                          double tau, double* w)
    double advisor_inv_fro2(const double* A, Py_ssize_t lda, Py_ssize_t r, double* w)
    int advisor_any_nonfinite(const double* x, Py_ssize_t n)


cdef double EPS = DBL_EPSILON
cdef int MAX_SWEEPS = 80


cdef bint any_nonfinite(const double* x, Py_ssize_t n) noexcept nogil:
    """True when x[0:n] holds a NaN or an infinity."""
    return advisor_any_nonfinite(x, n) != 0


def all_finite(const double[::1] x):
    """True when no value of x is a NaN or an infinity."""
    if x.shape[0] == 0:
        return True
    return not any_nonfinite(&x[0], x.shape[0])


cdef double _house(double* x, Py_ssize_t n) noexcept nogil:
    """LAPACK dlarfg: overwrite x with (beta, v[1:]) so that H x = beta e1; return tau."""
    cdef double alpha, xnorm, beta, tau, inv
    cdef Py_ssize_t i
    if n <= 1:
        return 0.0
    alpha = x[0]
    xnorm = advisor_nrm2(x + 1, n - 1)
    if xnorm == 0.0:
        return 0.0
    if 1e-150 < xnorm < 1e150 and fabs(alpha) < 1e150:
        beta = sqrt(alpha * alpha + xnorm * xnorm)
    else:
        beta = hypot(alpha, xnorm)
    if alpha >= 0.0:
        beta = -beta
    tau = (beta - alpha) / beta
    inv = 1.0 / (alpha - beta)
    for i in range(1, n):
        x[i] *= inv
    x[0] = beta
    return tau


cdef Py_ssize_t lstsq_work_size(Py_ssize_t mf, Py_ssize_t nf, Py_ssize_t nrhs) noexcept nogil:
    """Doubles of workspace lstsq_core needs for an mf x nf factor (mf >= nf)."""
    return 6 * (mf + nf) + nf * nf + (mf + 3 * nf + 4) * nrhs + 16


cdef bint _trailing_negligible(double* A, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t n,
                               Py_ssize_t i, double* vn1, double* vn2,
                               double stop_tol) noexcept nogil:
    """True when the trailing block A[i:, i:] has Frobenius norm <= stop_tol (checked exactly).

    Downdated norms can stay far above the truth until LAPACK's recomputation rule fires, so a
    tiny last pivot also triggers the exact check, which then refreshes the norms if the block
    is not negligible yet.
    """
    cdef Py_ssize_t j
    cdef double ss = 0.0
    for j in range(i, n):
        ss += vn1[j] * vn1[j]
    if sqrt(ss) > stop_tol and not (i > 0 and fabs(A[(i - 1) + (i - 1) * lda]) <= stop_tol):
        return False
    ss = 0.0
    for j in range(i, n):
        ss += dot(A + j * lda + i, A + j * lda + i, m - i)
    if sqrt(ss) <= stop_tol:
        return True
    for j in range(i, n):
        vn1[j] = advisor_nrm2(A + j * lda + i, m - i)
        vn2[j] = vn1[j]
    return False


cdef void _swap_columns(double* A, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t i, Py_ssize_t j,
                        Py_ssize_t* jpvt, double* vn1, double* vn2) noexcept nogil:
    """Move column j to position i (its norms to vn1/vn2[j]'s place, as dlaqp2 does)."""
    cdef Py_ssize_t row, index
    cdef double t
    for row in range(m):
        t = A[row + j * lda]
        A[row + j * lda] = A[row + i * lda]
        A[row + i * lda] = t
    index = jpvt[j]
    jpvt[j] = jpvt[i]
    jpvt[i] = index
    vn1[j] = vn1[i]
    vn2[j] = vn2[i]


cdef Py_ssize_t _qrp(double* A, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t n,
                     double* B, Py_ssize_t ldb, Py_ssize_t nrhs,
                     Py_ssize_t* jpvt, double* tau, double* vn1, double* vn2,
                     Py_ssize_t start, double stop_tol) noexcept nogil:
    """Householder QR with column pivoting (LAPACK dlaqp2) from step `start`, Q^T applied to B.

    vn1/vn2/jpvt must hold the column norms and order on entry. Stops before a step whose
    trailing block has Frobenius norm <= stop_tol and returns the number of completed steps.
    """
    cdef Py_ssize_t steps = m if m < n else n
    cdef Py_ssize_t i, j, pivot, length
    cdef double diagonal
    cdef double* col
    for i in range(start, steps):
        if stop_tol > 0.0 and _trailing_negligible(A, lda, m, n, i, vn1, vn2, stop_tol):
            return i
        pivot = i
        for j in range(i + 1, n):
            if vn1[j] > vn1[pivot]:
                pivot = j
        if pivot != i:
            _swap_columns(A, lda, m, i, pivot, jpvt, vn1, vn2)
        col = A + i * lda + i
        length = m - i
        tau[i] = _house(col, length)
        if tau[i] != 0.0:
            diagonal = col[0]
            col[0] = 1.0
            advisor_reflect_cols(col, tau[i], A + (i + 1) * lda + i, lda, length, n - i - 1,
                                 vn1 + i + 1, vn2 + i + 1)
            advisor_reflect_cols(col, tau[i], B + i, ldb, length, nrhs, NULL, NULL)
            col[0] = diagonal
        else:
            for j in range(i + 1, n):
                advisor_downdate(A + j * lda + i, length, vn1 + j, vn2 + j)
    return steps


cdef void _rz(double* A, Py_ssize_t lda, Py_ssize_t r, Py_ssize_t n, double* tauz,
              double* w) noexcept nogil:
    """Reduce the r x n upper trapezoid [R11 R12] to [T 0] Z (LAPACK dlatrz), column-oriented.

    Row i's reflector acts on entries i and r..n-1; its vector is stored in A[i, r:n].
    Z = H_0 H_1 ... H_{r-1}. w needs n + 2 doubles.
    """
    cdef Py_ssize_t i, j
    cdef double tau
    for i in range(r - 1, -1, -1):
        # Gather row i's (alpha, x) contiguously in w, build the reflector, scatter back.
        w[0] = A[i + i * lda]
        for j in range(r, n):
            w[1 + j - r] = A[i + j * lda]
        tau = _house(w, n - r + 1)
        tauz[i] = tau
        A[i + i * lda] = w[0]
        for j in range(r, n):
            A[i + j * lda] = w[1 + j - r]
        if tau != 0.0 and i > 0:
            advisor_rz_apply(A, lda, i, r, n, tau, w)


cdef inline void _rz_reflect(const double* A, Py_ssize_t lda, Py_ssize_t r, Py_ssize_t n,
                             double tau, Py_ssize_t i, double* z) noexcept nogil:
    cdef Py_ssize_t j
    cdef double s
    if tau == 0.0:
        return
    s = z[i]
    for j in range(r, n):
        s += A[i + j * lda] * z[j]
    s *= tau
    z[i] -= s
    for j in range(r, n):
        z[j] -= s * A[i + j * lda]


cdef void _apply_zt(const double* A, Py_ssize_t lda, Py_ssize_t r, Py_ssize_t n,
                    const double* tauz, double* z) noexcept nogil:
    """z <- Z^T z = H_{r-1} ... H_0 z for the reflectors stored by _rz."""
    cdef Py_ssize_t i
    for i in range(r):
        _rz_reflect(A, lda, r, n, tauz[i], i, z)


cdef void _apply_z(const double* A, Py_ssize_t lda, Py_ssize_t r, Py_ssize_t n,
                   const double* tauz, double* z) noexcept nogil:
    """z <- Z z = H_0 ... H_{r-1} z for the reflectors stored by _rz."""
    cdef Py_ssize_t i
    for i in range(r - 1, -1, -1):
        _rz_reflect(A, lda, r, n, tauz[i], i, z)


cdef void _apply_q(const double* A, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t k,
                   const double* tau, double* x) noexcept nogil:
    """x <- H_0 ... H_{k-1} x for the QR reflectors stored below the diagonal of A."""
    cdef Py_ssize_t i
    cdef double s
    for i in range(k - 1, -1, -1):
        if tau[i] == 0.0:
            continue
        s = x[i] + dot(A + i * lda + i + 1, x + i + 1, m - i - 1)
        s *= tau[i]
        x[i] -= s
        axpy(-s, A + i * lda + i + 1, x + i + 1, m - i - 1)


cdef void _backsolve(const double* A, Py_ssize_t lda, Py_ssize_t r, double* c) noexcept nogil:
    """Solve T y = c in place for the upper-triangular leading r x r block T of A."""
    cdef Py_ssize_t j
    for j in range(r - 1, -1, -1):
        c[j] /= A[j + j * lda]
        if j > 0:
            axpy(-c[j], A + j * lda, c, j)


cdef void _fwdsolve_t(const double* A, Py_ssize_t lda, Py_ssize_t r, double* c) noexcept nogil:
    """Solve T^T y = c in place for the upper-triangular leading r x r block T of A."""
    cdef Py_ssize_t i
    for i in range(r):
        c[i] = (c[i] - dot(A + i * lda, c, i)) / A[i + i * lda]


cdef double _sigma_min_lower_bound(const double* A, Py_ssize_t lda, Py_ssize_t r,
                                   double* w) noexcept nogil:
    """1 / ||T^-1||_F <= sigma_min(T) for the leading r x r upper-triangular block of A.

    Costs r^3 / 6 multiply-adds (vectorised), a fraction of the QR that produced T.
    """
    cdef double ss = advisor_inv_fro2(A, lda, r, w)
    if not isfinite(ss) or ss == 0.0:
        return 0.0
    return 1.0 / sqrt(ss)


cdef bint _jacobi_sweeps(double* W, double* C, Py_ssize_t k, Py_ssize_t nrhs) noexcept nogil:
    """Rotate the columns of W (k x k) until they are orthogonal, applying each rotation to
    the rows of C (k x nrhs) too; False without convergence in MAX_SWEEPS sweeps."""
    cdef Py_ssize_t i, p, q, l, sweep = 0
    cdef double alpha, beta, gamma, zeta, t, cs, sn, wp, wq, cp, cq
    cdef double tolj = EPS * (k if k > 1 else 1)
    cdef bint rotated = True
    cdef double* colp
    cdef double* colq
    while rotated:
        if sweep >= MAX_SWEEPS:
            return False
        sweep += 1
        rotated = False
        for p in range(k - 1):
            colp = W + p * k
            for q in range(p + 1, k):
                colq = W + q * k
                alpha = dot(colp, colp, k)
                beta = dot(colq, colq, k)
                if alpha == 0.0 or beta == 0.0:
                    continue
                gamma = dot(colp, colq, k)
                if fabs(gamma) <= tolj * sqrt(alpha) * sqrt(beta):
                    continue
                rotated = True
                zeta = (beta - alpha) / (2.0 * gamma)
                if fabs(zeta) > 1e150:
                    t = 0.5 / zeta
                else:
                    t = 1.0 / (fabs(zeta) + sqrt(1.0 + zeta * zeta))
                    if zeta < 0.0:
                        t = -t
                cs = 1.0 / sqrt(1.0 + t * t)
                sn = cs * t
                for i in range(k):
                    wp = colp[i]
                    wq = colq[i]
                    colp[i] = cs * wp - sn * wq
                    colq[i] = sn * wp + cs * wq
                for l in range(nrhs):
                    cp = C[p + l * k]
                    cq = C[q + l * k]
                    C[p + l * k] = cs * cp - sn * cq
                    C[q + l * k] = sn * cp + cs * cq
    return True


cdef int _jacobi_solve(const double* A, Py_ssize_t lda, Py_ssize_t k, bint use_rows,
                       const double* c, Py_ssize_t ldc, Py_ssize_t nrhs, double rcond,
                       double* Z, Py_ssize_t ldz, double* W, double* C) noexcept nogil:
    """SVD-based min-norm solve with the k x k upper-triangular T of A by one-sided Jacobi.

    use_rows: solve T z = c with Jacobi on M = T^T; else solve T^T z = c with M = T. Either way
    M J = W has orthogonal columns and z = sum_j W[:, j] (J^T c)_j / |W[:, j]|^2 over the
    singular values |W[:, j]| > rcond * max. Returns the rank, -1 without convergence.
    """
    cdef Py_ssize_t i, j, l, rank = 0
    cdef double t, smax = 0.0, tol
    memset(W, 0, k * k * sizeof(double))
    for i in range(k):
        for j in range(i + 1):
            if use_rows:
                W[i + j * k] = A[j + i * lda]
            else:
                W[j + i * k] = A[j + i * lda]
    for l in range(nrhs):
        memcpy(C + l * k, c + l * ldc, k * sizeof(double))
    if not _jacobi_sweeps(W, C, k, nrhs):
        return -1
    for j in range(k):
        t = dot(W + j * k, W + j * k, k)
        if t > smax:
            smax = t
    tol = rcond * sqrt(smax)
    for l in range(nrhs):
        memset(Z + l * ldz, 0, k * sizeof(double))
    for j in range(k):
        t = dot(W + j * k, W + j * k, k)
        if t == 0.0 or sqrt(t) <= tol:
            continue
        rank += 1
        for l in range(nrhs):
            axpy(C[j + l * k] / t, W + j * k, Z + l * ldz, k)
    return rank


cdef Py_ssize_t _rank_above(const double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf,
                            Py_ssize_t steps, double stop_tol) noexcept nogil:
    """The smallest r <= steps whose trailing block F[r:, r:] has Frobenius norm <= stop_tol.

    The QR may run past the rank (it notices negligible blocks late), so walk back from steps.
    """
    cdef Py_ssize_t j, r = steps
    cdef double row2, trail2 = 0.0
    for j in range(steps, nf):
        trail2 += dot(F + j * ldf + steps, F + j * ldf + steps, mf - steps)
    while r > 0:
        row2 = 0.0
        for j in range(r - 1, nf):
            row2 += F[(r - 1) + j * ldf] * F[(r - 1) + j * ldf]
        if sqrt(trail2 + row2) > stop_tol:
            break
        trail2 += row2
        r -= 1
    return r


cdef void _solve_complete(double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf,
                          bint transposed, const double* B, Py_ssize_t ldb, Py_ssize_t nrhs,
                          Py_ssize_t r, double* X, Py_ssize_t ldx, const double* tau,
                          double* tauz, double* tmp, double* z,
                          const Py_ssize_t* jpvt) noexcept nogil:
    """Min-norm solution through the complete orthogonal decomposition F P = Q [T 0; 0 0] Z."""
    cdef Py_ssize_t i, j, l
    if r < nf:
        _rz(F, ldf, r, nf, tauz, tmp)
    for l in range(nrhs):
        if transposed:
            for i in range(nf):
                z[i] = B[jpvt[i] + l * ldb]
            if r < nf:
                _apply_z(F, ldf, r, nf, tauz, z)
            _fwdsolve_t(F, ldf, r, z)
            memset(z + r, 0, (mf - r) * sizeof(double))
            _apply_q(F, ldf, mf, r, tau, z)
            memcpy(X + l * ldx, z, mf * sizeof(double))
        else:
            memset(z, 0, nf * sizeof(double))
            memcpy(z, B + l * ldb, r * sizeof(double))
            _backsolve(F, ldf, r, z)
            if r < nf:
                _apply_zt(F, ldf, r, nf, tauz, z)
            for j in range(nf):
                X[jpvt[j] + l * ldx] = z[j]


cdef int _solve_svd(double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf, bint transposed,
                    const double* B, Py_ssize_t ldb, Py_ssize_t nrhs, double rcond,
                    double* X, Py_ssize_t ldx, const double* tau, double* c, double* z,
                    double* W, double* C, const Py_ssize_t* jpvt) noexcept nogil:
    """Min-norm solution by a Jacobi SVD of the full triangular factor; the rank or -1."""
    cdef Py_ssize_t i, j, l, rank, ldz = mf + nf + 1
    for l in range(nrhs):
        for i in range(nf):
            c[i + l * nf] = B[jpvt[i] + l * ldb] if transposed else B[i + l * ldb]
    rank = _jacobi_solve(F, ldf, nf, not transposed, c, nf, nrhs, rcond, z, ldz, W, C)
    if rank < 0:
        return -1
    for l in range(nrhs):
        if transposed:
            memset(z + l * ldz + nf, 0, (mf - nf) * sizeof(double))
            _apply_q(F, ldf, mf, nf, tau, z + l * ldz)
            memcpy(X + l * ldx, z + l * ldz, mf * sizeof(double))
        else:
            for j in range(nf):
                X[jpvt[j] + l * ldx] = z[j + l * ldz]
    return rank


cdef int lstsq_core(double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf, bint transposed,
                    double* B, Py_ssize_t ldb, Py_ssize_t nrhs, double rcond,
                    double* X, Py_ssize_t ldx, double* work, Py_ssize_t* jpvt) noexcept nogil:
    """Minimum-norm solution of min ||S X - B||, F = S (m >= n) or F = S^T (m < n), mf >= nf.

    F (mf x nf, column-major) and B (rows of S x nrhs) are overwritten; X (columns of S x nrhs)
    receives the solution; singular values <= rcond * sigma_max count as zero. Tall problems
    are factorised directly, wide ones through their transpose so that the Householder vectors
    are the long dimension. Returns the numerical rank, -1 if the SVD fallback failed.
    """
    cdef Py_ssize_t j, l, r, steps, solution_len = nf if not transposed else mf
    cdef double largest_norm = 0.0, fro2 = 0.0, tol_hi, stop_tol
    cdef double* tau = work
    cdef double* vn1 = tau + nf + 1
    cdef double* vn2 = vn1 + nf + 1
    cdef double* tauz = vn2 + nf + 1
    cdef double* tmp = tauz + nf + 1
    cdef double* z = tmp + mf + nf + 2
    cdef double* c = z + (mf + nf + 1) * nrhs
    cdef double* W = c + (nf + 1) * nrhs
    cdef double* C = W + nf * nf + 1
    for l in range(nrhs):
        memset(X + l * ldx, 0, solution_len * sizeof(double))
    if nf == 0 or mf == 0:
        return 0
    for j in range(nf):
        vn1[j] = advisor_nrm2(F + j * ldf, mf)
        vn2[j] = vn1[j]
        jpvt[j] = j
        fro2 += vn1[j] * vn1[j]
        if vn1[j] > largest_norm:
            largest_norm = vn1[j]
    if largest_norm == 0.0:
        return 0
    # sigma_max lies in [largest_norm, ||F||_F], so the true cut-off lies in
    # [rcond largest_norm, tol_hi]. Dropping a trailing block (its Frobenius norm bounds every
    # singular value dropped) is only done at rounding level; a larger user rcond is honoured
    # through the kept-part check below, which then routes to the SVD.
    tol_hi = rcond * sqrt(fro2)
    stop_tol = (EPS * mf if EPS * mf < rcond else rcond) * largest_norm
    steps = _qrp(F, ldf, mf, nf, B, ldb, 0 if transposed else nrhs, jpvt, tau, vn1, vn2,
                 0, stop_tol)
    r = _rank_above(F, ldf, mf, nf, steps, stop_tol)
    # Everything beyond step r is provably below the cut-off (the trailing block's Frobenius
    # norm bounds sigma_{r+1}); the kept part is clear when sigma_min(R11) is provably above it.
    # Pivoted QR alone can hide a tiny singular value behind a large |R_kk| (Kahan's matrix),
    # so the kept part must be proven: by the Faddeev-Kublanovskaya bound for column pivoting,
    # sigma_min(R11) >= 3 |R_rr| / sqrt(4^r + 6r - 1) (decisive for small r, free), else by
    # the exact lower bound 1 / ||R11^-1||_F (factor 2 and 4: room for rounding).
    if r > 0 and (
            3.0 * fabs(F[(r - 1) + (r - 1) * ldf]) / sqrt(pow(4.0, <double> r) + 6.0 * r - 1.0)
            > 4.0 * tol_hi
            or _sigma_min_lower_bound(F, ldf, r, tmp) > 2.0 * tol_hi):
        _solve_complete(F, ldf, mf, nf, transposed, B, ldb, nrhs, r, X, ldx, tau, tauz, tmp, z,
                        jpvt)
        return r
    if steps < nf:
        _qrp(F, ldf, mf, nf, B, ldb, 0 if transposed else nrhs, jpvt, tau, vn1, vn2, steps, 0.0)
    return _solve_svd(F, ldf, mf, nf, transposed, B, ldb, nrhs, rcond, X, ldx, tau, c, z, W, C,
                      jpvt)
