# cython: language_level=3
"""Compiled least-squares kernels of advisor-core.

Minimum-norm least squares (pivoted Householder QR, complete orthogonal decomposition, one-sided
Jacobi SVD when the numerical rank is ambiguous) and the StandardScaler -> PolynomialFeatures ->
LinearRegression pipeline built on it, including whole cross-validation and bootstrap loops that
run without the GIL. Matrices inside the solver are column-major; the public entry points accept
any strided float64 input and copy it once.

This module does not use numpy (the results exporter trains its model without loading it): inputs
are typed memoryviews of any float64 buffer, outputs are flat ``array('d')`` objects (row-major
where they hold a matrix), which numpy wraps without a copy. ``lstsq``, which reads numpy arrays
through numpy's C API, lives in ``_lstsq.pyx`` and calls the solver declared in ``_linalg.pxd``.
"""

from libc.math cimport NAN, fabs, floor, hypot, isfinite, pow, sqrt
from libc.stdlib cimport free, malloc, qsort
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

from cpython.array cimport array, clone

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    /* The Householder update is where the solver spends its time. With GCC on glibc x86-64
       it is compiled twice, baseline SSE2 and x86-64-v3 (AVX2 + FMA; plain AVX2 before GCC 12),
       and the loader picks by CPU features at import time (ifunc), so wheels stay portable.
       ("arch=haswell" would test the CPU model, not its features, and miss newer CPUs.) */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
    #if __GNUC__ >= 12
    #define ADVISOR_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
    #else
    #define ADVISOR_MULTIVERSION __attribute__((target_clones("avx2", "default")))
    #endif
    #else
    #define ADVISOR_MULTIVERSION
    #endif

    #if defined(__GNUC__)
    /* Four columns at a time share each load of v; two partial sums per column keep two FMA
       chains in flight. GCC/Clang vector extensions lower to SSE2 or AVX2 per clone. */
    #define ADVISOR_VEC 1
    typedef double advisor_v4 __attribute__((vector_size(32), aligned(8), may_alias));
    #define ADV_LD(p) (*(const advisor_v4 *)(p))
    #define ADV_ST(p, x) (*(advisor_v4 *)(p) = (x))
    #define ADV_HSUM(x) (((x)[0] + (x)[1]) + ((x)[2] + (x)[3]))
    #endif

    /* Euclidean norm; rescales only when the plain sum of squares over/underflows. */
    static double advisor_nrm2(const double *x, Py_ssize_t n)
    {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0, ss, scale = 0, t;
        Py_ssize_t i;
        for (i = 0; i + 4 <= n; i += 4) {
            s0 += x[i] * x[i];
            s1 += x[i + 1] * x[i + 1];
            s2 += x[i + 2] * x[i + 2];
            s3 += x[i + 3] * x[i + 3];
        }
        for (; i < n; i++)
            s0 += x[i] * x[i];
        ss = (s0 + s1) + (s2 + s3);
        if (ss > 1e-280 && ss < 1e280)
            return sqrt(ss);
        for (i = 0; i < n; i++)
            if (fabs(x[i]) > scale)
                scale = fabs(x[i]);
        if (scale == 0.0)
            return 0.0;
        ss = 0.0;
        for (i = 0; i < n; i++) {
            t = x[i] / scale;
            ss += t * t;
        }
        return scale * sqrt(ss);
    }

    /* LAPACK dlaqp2's column-norm downdate after a reflector touched column a (a[0] is the
       new entry of the pivot row, a[1:len] the rest), recomputing the norm where cancellation
       makes the downdate unreliable. Done while the column is still in L1. */
    static inline void advisor_downdate(const double *a, Py_ssize_t len, double *vn1,
                                        double *vn2)
    {
        double temp, temp2, t;
        if (*vn1 == 0.0)
            return;
        temp = fabs(a[0]) / *vn1;
        temp = 1.0 - temp * temp;
        if (temp < 0.0)
            temp = 0.0;
        t = *vn1 / *vn2;
        temp2 = temp * t * t;
        if (temp2 <= 1.4901161193847656e-08) {
            *vn1 = len > 1 ? advisor_nrm2(a + 1, len - 1) : 0.0;
            *vn2 = *vn1;
        } else {
            *vn1 *= sqrt(temp);
        }
    }

    /* A[:, j] -= tau * v * (v . A[:, j]) for ncols columns of length len (stride lda);
       with vn1 != NULL the column norms vn1/vn2 are downdated too. */
    ADVISOR_MULTIVERSION
    static void advisor_reflect_cols(const double *v, double tau, double *A, Py_ssize_t lda,
                                     Py_ssize_t len, Py_ssize_t ncols, double *vn1, double *vn2)
    {
        Py_ssize_t i, j = 0, t;
    #ifdef ADVISOR_VEC
        for (; j + 4 <= ncols; j += 4) {
            double *a0 = A + j * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            advisor_v4 p0 = {0, 0, 0, 0}, p1 = p0, p2 = p0, p3 = p0;
            advisor_v4 q0 = p0, q1 = p0, q2 = p0, q3 = p0, vv, c0, c1, c2, c3;
            double d0, d1, d2, d3;
            for (i = 0; i + 8 <= len; i += 8) {
                vv = ADV_LD(v + i);
                p0 += vv * ADV_LD(a0 + i);
                p1 += vv * ADV_LD(a1 + i);
                p2 += vv * ADV_LD(a2 + i);
                p3 += vv * ADV_LD(a3 + i);
                vv = ADV_LD(v + i + 4);
                q0 += vv * ADV_LD(a0 + i + 4);
                q1 += vv * ADV_LD(a1 + i + 4);
                q2 += vv * ADV_LD(a2 + i + 4);
                q3 += vv * ADV_LD(a3 + i + 4);
            }
            p0 += q0;
            p1 += q1;
            p2 += q2;
            p3 += q3;
            d0 = ADV_HSUM(p0);
            d1 = ADV_HSUM(p1);
            d2 = ADV_HSUM(p2);
            d3 = ADV_HSUM(p3);
            for (; i < len; i++) {
                d0 += v[i] * a0[i];
                d1 += v[i] * a1[i];
                d2 += v[i] * a2[i];
                d3 += v[i] * a3[i];
            }
            d0 *= -tau;
            d1 *= -tau;
            d2 *= -tau;
            d3 *= -tau;
            c0 = (advisor_v4){d0, d0, d0, d0};
            c1 = (advisor_v4){d1, d1, d1, d1};
            c2 = (advisor_v4){d2, d2, d2, d2};
            c3 = (advisor_v4){d3, d3, d3, d3};
            for (i = 0; i + 4 <= len; i += 4) {
                vv = ADV_LD(v + i);
                ADV_ST(a0 + i, ADV_LD(a0 + i) + c0 * vv);
                ADV_ST(a1 + i, ADV_LD(a1 + i) + c1 * vv);
                ADV_ST(a2 + i, ADV_LD(a2 + i) + c2 * vv);
                ADV_ST(a3 + i, ADV_LD(a3 + i) + c3 * vv);
            }
            for (; i < len; i++) {
                a0[i] += d0 * v[i];
                a1[i] += d1 * v[i];
                a2[i] += d2 * v[i];
                a3[i] += d3 * v[i];
            }
            if (vn1 != NULL) {
                advisor_downdate(a0, len, vn1 + j, vn2 + j);
                advisor_downdate(a1, len, vn1 + j + 1, vn2 + j + 1);
                advisor_downdate(a2, len, vn1 + j + 2, vn2 + j + 2);
                advisor_downdate(a3, len, vn1 + j + 3, vn2 + j + 3);
            }
        }
    #endif
        for (; j < ncols; j++) {
            double *a = A + j * lda;
            /* 16 partial sums: four independent 4-wide FMA chains hide the FMA latency. */
            double acc[16] = {0};
            double s;
            for (i = 0; i + 16 <= len; i += 16)
                for (t = 0; t < 16; t++)
                    acc[t] += v[i + t] * a[i + t];
            for (; i < len; i++)
                acc[0] += v[i] * a[i];
            for (t = 0; t < 8; t++)
                acc[t] += acc[t + 8];
            for (t = 0; t < 4; t++)
                acc[t] += acc[t + 4];
            s = -tau * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
            for (i = 0; i < len; i++)
                a[i] += s * v[i];
            if (vn1 != NULL)
                advisor_downdate(a, len, vn1 + j, vn2 + j);
        }
    }

    /* One step of the RZ reduction (LAPACK dlatrz) on rows 0..i-1, column-oriented: row i's
       reflector (entries i and r..n-1 of row i, tau) is applied from the right.
       w needs i doubles. */
    ADVISOR_MULTIVERSION
    static void advisor_rz_apply(double *A, Py_ssize_t lda, Py_ssize_t i, Py_ssize_t r,
                                 Py_ssize_t n, double tau, double *w)
    {
        Py_ssize_t j, k;
        double *ai = A + i * lda;
        for (k = 0; k < i; k++)
            w[k] = ai[k];
        for (j = r; j < n; j++) {
            const double *col = A + j * lda;
            double c = col[i];
            for (k = 0; k < i; k++)
                w[k] += c * col[k];
        }
        for (k = 0; k < i; k++)
            ai[k] -= tau * w[k];
        for (j = r; j < n; j++) {
            double *col = A + j * lda;
            double c = -tau * col[i];
            for (k = 0; k < i; k++)
                col[k] += c * w[k];
        }
    }

    /* ||T^-1||_F^2 for the upper-triangular r x r leading block T of A, column by column of
       the inverse (back substitution on e_j). w needs r doubles. */
    ADVISOR_MULTIVERSION
    static double advisor_inv_fro2(const double *A, Py_ssize_t lda, Py_ssize_t r, double *w)
    {
        Py_ssize_t i, j, k;
        double ss = 0.0, wi;
        for (j = 0; j < r; j++) {
            for (k = 0; k < j; k++)
                w[k] = 0.0;
            w[j] = 1.0;
            for (i = j; i >= 0; i--) {
                const double *col = A + i * lda;
                wi = w[i] / col[i];
                w[i] = wi;
                ss += wi * wi;
                for (k = 0; k < i; k++)
                    w[k] -= wi * col[k];
            }
        }
        return ss;
    }

    /* Non-zero when x holds a NaN or an infinity (x * 0 is 0 exactly for finite x); written as
       a sum so that it vectorises instead of branching per element. */
    ADVISOR_MULTIVERSION
    static int advisor_any_nonfinite(const double *x, Py_ssize_t n)
    {
        double acc[8] = {0};
        Py_ssize_t i, t;
        for (i = 0; i + 8 <= n; i += 8)
            for (t = 0; t < 8; t++)
                acc[t] += x[i + t] * 0.0;
        for (; i < n; i++)
            acc[0] += x[i] * 0.0;
        for (t = 1; t < 8; t++)
            acc[0] += acc[t];
        return acc[0] != 0.0;
    }
    """
    int advisor_any_nonfinite(const double* x, Py_ssize_t n) noexcept nogil
    double advisor_inv_fro2(const double* A, Py_ssize_t lda, Py_ssize_t r,
                            double* w) noexcept nogil
    void advisor_rz_apply(double* A, Py_ssize_t lda, Py_ssize_t i, Py_ssize_t r, Py_ssize_t n,
                          double tau, double* w) noexcept nogil
    void advisor_reflect_cols(const double* v, double tau, double* A, Py_ssize_t lda,
                              Py_ssize_t len, Py_ssize_t ncols, double* vn1,
                              double* vn2) noexcept nogil


cdef double EPS = 2.220446049250313e-16
cdef int MAX_SWEEPS = 80


# ----------------------------------------------------------------------------------------------
# BLAS-1 style helpers on raw pointers (inner loops; several accumulators so gcc vectorises).
# ----------------------------------------------------------------------------------------------

cdef inline double _dot(const double* x, const double* y, Py_ssize_t n) noexcept nogil:
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef double s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        s0 += x[i] * y[i]
        s1 += x[i + 1] * y[i + 1]
        s2 += x[i + 2] * y[i + 2]
        s3 += x[i + 3] * y[i + 3]
        s4 += x[i + 4] * y[i + 4]
        s5 += x[i + 5] * y[i + 5]
        s6 += x[i + 6] * y[i + 6]
        s7 += x[i + 7] * y[i + 7]
        i += 8
    while i < n:
        s0 += x[i] * y[i]
        i += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline void _axpy(double a, const double* x, double* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] += a * x[i]


cdef double _nrm2(const double* x, Py_ssize_t n, Py_ssize_t incx) noexcept nogil:
    """Euclidean norm; rescales only when the plain sum of squares over/underflows."""
    cdef double ss, scale, t
    cdef Py_ssize_t i
    if incx == 1:
        ss = _dot(x, x, n)
    else:
        ss = 0.0
        for i in range(n):
            ss += x[i * incx] * x[i * incx]
    if ss > 1e-280 and ss < 1e280:
        return sqrt(ss)
    if ss == 0.0:
        for i in range(n):
            if x[i * incx] != 0.0:
                break
        else:
            return 0.0
    scale = 0.0
    for i in range(n):
        t = fabs(x[i * incx])
        if t > scale:
            scale = t
    if scale == 0.0:
        return 0.0
    ss = 0.0
    for i in range(n):
        t = x[i * incx] / scale
        ss += t * t
    return scale * sqrt(ss)


cdef double _pairwise_sum(const double* a, Py_ssize_t n) noexcept nogil:
    """numpy's pairwise summation, bit for bit, so means match np.mean exactly."""
    cdef double res, r0, r1, r2, r3, r4, r5, r6, r7
    cdef Py_ssize_t i, n2
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        r0 = a[0]
        r1 = a[1]
        r2 = a[2]
        r3 = a[3]
        r4 = a[4]
        r5 = a[5]
        r6 = a[6]
        r7 = a[7]
        i = 8
        while i < n - (n % 8):
            r0 += a[i]
            r1 += a[i + 1]
            r2 += a[i + 2]
            r3 += a[i + 3]
            r4 += a[i + 4]
            r5 += a[i + 5]
            r6 += a[i + 6]
            r7 += a[i + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


cdef double _house(double* x, Py_ssize_t n, Py_ssize_t incx) noexcept nogil:
    """LAPACK dlarfg: overwrite x with (beta, v[1:]) so that H x = beta e1; return tau."""
    cdef double alpha, xnorm, beta, tau, inv
    cdef Py_ssize_t i
    if n <= 1:
        return 0.0
    alpha = x[0]
    xnorm = _nrm2(x + incx, n - 1, incx)
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
        x[i * incx] *= inv
    x[0] = beta
    return tau


# ----------------------------------------------------------------------------------------------
# Minimum-norm least squares.
# ----------------------------------------------------------------------------------------------

cdef Py_ssize_t _lstsq_work_size(Py_ssize_t mf, Py_ssize_t nf, Py_ssize_t nrhs) noexcept nogil:
    """Doubles of workspace _lstsq_core needs for an mf x nf factor (mf >= nf)."""
    return 6 * (mf + nf) + nf * nf + (mf + 3 * nf + 4) * nrhs + 16


cdef Py_ssize_t _qrp(double* A, Py_ssize_t lda, Py_ssize_t m, Py_ssize_t n,
                     double* B, Py_ssize_t ldb, Py_ssize_t nrhs,
                     Py_ssize_t* jpvt, double* tau, double* vn1, double* vn2,
                     Py_ssize_t start, double stop_tol) noexcept nogil:
    """Householder QR with column pivoting (LAPACK dlaqp2) from step `start`, Q^T applied to B.

    vn1/vn2/jpvt must hold the column norms and order on entry. Stops before a step whose
    trailing block has Frobenius norm <= stop_tol (checked exactly before stopping) and returns
    the number of completed steps.
    """
    cdef Py_ssize_t k = m if m < n else n
    cdef Py_ssize_t i, j, pvt, l, len_
    cdef double tol3z = sqrt(EPS)
    cdef double temp, temp2, aii, t
    cdef double* col
    for i in range(start, k):
        if stop_tol > 0.0:
            t = 0.0
            for j in range(i, n):
                t += vn1[j] * vn1[j]
            # Downdated norms can stay far above the truth until LAPACK's recomputation rule
            # fires, so a tiny last pivot also triggers the exact check (which then refreshes
            # the norms if the block is not negligible yet).
            if sqrt(t) <= stop_tol or (i > 0 and fabs(A[(i - 1) + (i - 1) * lda]) <= stop_tol):
                t = 0.0
                for j in range(i, n):
                    t += _dot(A + j * lda + i, A + j * lda + i, m - i)
                if sqrt(t) <= stop_tol:
                    return i
                for j in range(i, n):
                    vn1[j] = _nrm2(A + j * lda + i, m - i, 1)
                    vn2[j] = vn1[j]
        pvt = i
        for j in range(i + 1, n):
            if vn1[j] > vn1[pvt]:
                pvt = j
        if pvt != i:
            for l in range(m):
                t = A[l + pvt * lda]
                A[l + pvt * lda] = A[l + i * lda]
                A[l + i * lda] = t
            l = jpvt[pvt]
            jpvt[pvt] = jpvt[i]
            jpvt[i] = l
            vn1[pvt] = vn1[i]
            vn2[pvt] = vn2[i]
        col = A + i * lda + i
        len_ = m - i
        tau[i] = _house(col, len_, 1)
        if tau[i] != 0.0:
            aii = col[0]
            col[0] = 1.0
            advisor_reflect_cols(col, tau[i], A + (i + 1) * lda + i, lda, len_, n - i - 1,
                                 vn1 + i + 1, vn2 + i + 1)
            advisor_reflect_cols(col, tau[i], B + i, ldb, len_, nrhs, NULL, NULL)
            col[0] = aii
            continue
        for j in range(i + 1, n):
            if vn1[j] != 0.0:
                temp = fabs(A[i + j * lda]) / vn1[j]
                temp = 1.0 - temp * temp
                if temp < 0.0:
                    temp = 0.0
                t = vn1[j] / vn2[j]
                temp2 = temp * t * t
                if temp2 <= tol3z:
                    if i + 1 < m:
                        vn1[j] = _nrm2(A + j * lda + i + 1, m - i - 1, 1)
                        vn2[j] = vn1[j]
                    else:
                        vn1[j] = 0.0
                        vn2[j] = 0.0
                else:
                    vn1[j] *= sqrt(temp)
    return k


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
        tau = _house(w, n - r + 1, 1)
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
        s = x[i] + _dot(A + i * lda + i + 1, x + i + 1, m - i - 1)
        s *= tau[i]
        x[i] -= s
        _axpy(-s, A + i * lda + i + 1, x + i + 1, m - i - 1)


cdef void _backsolve(const double* A, Py_ssize_t lda, Py_ssize_t r, double* c) noexcept nogil:
    """Solve T y = c in place for the upper-triangular leading r x r block T of A."""
    cdef Py_ssize_t j
    for j in range(r - 1, -1, -1):
        c[j] /= A[j + j * lda]
        if j > 0:
            _axpy(-c[j], A + j * lda, c, j)


cdef void _fwdsolve_t(const double* A, Py_ssize_t lda, Py_ssize_t r, double* c) noexcept nogil:
    """Solve T^T y = c in place for the upper-triangular leading r x r block T of A."""
    cdef Py_ssize_t i
    for i in range(r):
        c[i] = (c[i] - _dot(A + i * lda, c, i)) / A[i + i * lda]


cdef double _sigma_min_lower_bound(const double* A, Py_ssize_t lda, Py_ssize_t r,
                                   double* w) noexcept nogil:
    """1 / ||T^-1||_F <= sigma_min(T) for the leading r x r upper-triangular block of A.

    Costs r^3 / 6 multiply-adds (vectorised), a fraction of the QR that produced T.
    """
    cdef double ss = advisor_inv_fro2(A, lda, r, w)
    if not isfinite(ss) or ss == 0.0:
        return 0.0
    return 1.0 / sqrt(ss)


cdef int _jacobi_solve(const double* A, Py_ssize_t lda, Py_ssize_t k, bint use_rows,
                       const double* c, Py_ssize_t ldc, Py_ssize_t nrhs, double rcond,
                       double* Z, Py_ssize_t ldz, double* W, double* C) noexcept nogil:
    """SVD-based min-norm solve with the k x k upper-triangular T of A by one-sided Jacobi.

    use_rows: solve T z = c with Jacobi on M = T^T; else solve T^T z = c with M = T. Either way
    M J = W has orthogonal columns and z = sum_j W[:, j] (J^T c)_j / |W[:, j]|^2 over the
    singular values |W[:, j]| > rcond * max. Returns the rank, -1 without convergence.
    """
    cdef Py_ssize_t i, j, p, q, l, sweep, rank
    cdef double alpha, beta, gamma, zeta, t, cs, sn, wp, wq, smax, tol, tolj, cp, cq
    cdef bint rotated
    cdef double* colp
    cdef double* colq
    memset(W, 0, k * k * sizeof(double))
    for i in range(k):
        for j in range(i + 1):
            if use_rows:
                W[i + j * k] = A[j + i * lda]
            else:
                W[j + i * k] = A[j + i * lda]
    for l in range(nrhs):
        memcpy(C + l * k, c + l * ldc, k * sizeof(double))
    tolj = EPS * (k if k > 1 else 1)
    rotated = True
    sweep = 0
    while rotated:
        if sweep >= MAX_SWEEPS:
            return -1
        sweep += 1
        rotated = False
        for p in range(k - 1):
            colp = W + p * k
            for q in range(p + 1, k):
                colq = W + q * k
                alpha = _dot(colp, colp, k)
                beta = _dot(colq, colq, k)
                if alpha == 0.0 or beta == 0.0:
                    continue
                gamma = _dot(colp, colq, k)
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
    smax = 0.0
    for j in range(k):
        t = _dot(W + j * k, W + j * k, k)
        if t > smax:
            smax = t
    tol = rcond * sqrt(smax)
    for l in range(nrhs):
        memset(Z + l * ldz, 0, k * sizeof(double))
    rank = 0
    for j in range(k):
        t = _dot(W + j * k, W + j * k, k)
        if t == 0.0 or sqrt(t) <= tol:
            continue
        rank += 1
        for l in range(nrhs):
            _axpy(C[j + l * k] / t, W + j * k, Z + l * ldz, k)
    return rank


cdef int _lstsq_core(double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf, bint transposed,
                     double* B, Py_ssize_t ldb, Py_ssize_t nrhs, double rcond,
                     double* X, Py_ssize_t ldx, double* work, Py_ssize_t* jpvt) noexcept nogil:
    """Minimum-norm solution of min ||S X - B||, F = S (m >= n) or F = S^T (m < n), mf >= nf.

    F (mf x nf, column-major) and B (rows of S x nrhs) are overwritten; X (columns of S x nrhs)
    receives the solution; singular values <= rcond * sigma_max count as zero. Tall problems
    are factorised directly, wide ones through their transpose so that the Householder vectors
    are the long dimension. Returns the numerical rank, -1 if the SVD fallback failed.
    """
    cdef Py_ssize_t k = nf, ns = nf if not transposed else mf
    cdef Py_ssize_t i, j, l, r, steps, rank
    cdef double d0, fro2, tol_hi, t, stop_tol, trail2
    cdef double* tau = work
    cdef double* vn1 = tau + k + 1
    cdef double* vn2 = vn1 + nf + 1
    cdef double* tauz = vn2 + nf + 1
    cdef double* tmp = tauz + k + 1
    cdef double* z = tmp + mf + nf + 2
    cdef double* c = z + (mf + nf + 1) * nrhs
    cdef double* W = c + (k + 1) * nrhs
    cdef double* C = W + k * k + 1
    cdef bint clear
    for l in range(nrhs):
        memset(X + l * ldx, 0, ns * sizeof(double))
    if k == 0 or mf == 0:
        return 0
    fro2 = 0.0
    d0 = 0.0
    for j in range(nf):
        vn1[j] = _nrm2(F + j * ldf, mf, 1)
        vn2[j] = vn1[j]
        jpvt[j] = j
        fro2 += vn1[j] * vn1[j]
        if vn1[j] > d0:
            d0 = vn1[j]
    if d0 == 0.0:
        return 0
    # sigma_max lies in [d0, ||F||_F], so the true cut-off lies in [rcond d0, tol_hi]. Dropping
    # a trailing block (its Frobenius norm bounds every singular value dropped) is only done at
    # rounding level; a larger user rcond is honoured through the kept-part check below, which
    # then routes to the SVD.
    tol_hi = rcond * sqrt(fro2)
    stop_tol = (EPS * mf if EPS * mf < rcond else rcond) * d0
    steps = _qrp(F, ldf, mf, nf, B, ldb, 0 if transposed else nrhs, jpvt, tau, vn1, vn2,
                 0, stop_tol)
    # The QR may run past the rank (it notices negligible blocks late); walk back to the
    # smallest r whose trailing block [r:, r:] still has Frobenius norm <= stop_tol.
    trail2 = 0.0
    for j in range(steps, nf):
        trail2 += _dot(F + j * ldf + steps, F + j * ldf + steps, mf - steps)
    r = steps
    while r > 0:
        t = 0.0
        for j in range(r - 1, nf):
            t += F[(r - 1) + j * ldf] * F[(r - 1) + j * ldf]
        if sqrt(trail2 + t) > stop_tol:
            break
        trail2 += t
        r -= 1
    # Everything beyond step r is provably below the cut-off (the trailing block's Frobenius
    # norm bounds sigma_{r+1}); the kept part is clear when sigma_min(R11) is provably above it.
    # Pivoted QR alone can hide a tiny singular value behind a large |R_kk| (Kahan's matrix),
    # so the kept part must be proven: by the Faddeev-Kublanovskaya bound for column pivoting,
    # sigma_min(R11) >= 3 |R_rr| / sqrt(4^r + 6r - 1) (decisive for small r, free), else by
    # the exact lower bound 1 / ||R11^-1||_F (factor 2 and 4: room for rounding).
    clear = r > 0 and (
        3.0 * fabs(F[(r - 1) + (r - 1) * ldf]) / sqrt(pow(4.0, <double> r) + 6.0 * r - 1.0)
        > 4.0 * tol_hi
        or _sigma_min_lower_bound(F, ldf, r, tmp) > 2.0 * tol_hi)
    if clear:
        rank = r
        if r < k:
            _rz(F, ldf, r, nf, tauz, tmp)
        for l in range(nrhs):
            if transposed:
                for i in range(nf):
                    z[i] = B[jpvt[i] + l * ldb]
                if r < k:
                    _apply_z(F, ldf, r, nf, tauz, z)
                _fwdsolve_t(F, ldf, r, z)
                memset(z + r, 0, (mf - r) * sizeof(double))
                _apply_q(F, ldf, mf, r, tau, z)
                memcpy(X + l * ldx, z, mf * sizeof(double))
            else:
                memset(z, 0, nf * sizeof(double))
                memcpy(z, B + l * ldb, r * sizeof(double))
                _backsolve(F, ldf, r, z)
                if r < k:
                    _apply_zt(F, ldf, r, nf, tauz, z)
                for j in range(nf):
                    X[jpvt[j] + l * ldx] = z[j]
        return rank
    if steps < k:
        _qrp(F, ldf, mf, nf, B, ldb, 0 if transposed else nrhs, jpvt, tau, vn1, vn2, steps, 0.0)
    for l in range(nrhs):
        for i in range(k):
            c[i + l * k] = B[jpvt[i] + l * ldb] if transposed else B[i + l * ldb]
    rank = _jacobi_solve(F, ldf, k, not transposed, c, k, nrhs, rcond, z, mf + nf + 1, W, C)
    if rank < 0:
        return -1
    for l in range(nrhs):
        if transposed:
            memset(z + l * (mf + nf + 1) + k, 0, (mf - k) * sizeof(double))
            _apply_q(F, ldf, mf, k, tau, z + l * (mf + nf + 1))
            memcpy(X + l * ldx, z + l * (mf + nf + 1), mf * sizeof(double))
        else:
            for j in range(nf):
                X[jpvt[j] + l * ldx] = z[j + l * (mf + nf + 1)]
    return rank


cdef bint _any_nonfinite(const double* x, Py_ssize_t n) noexcept nogil:
    """True when x[0:n] holds a NaN or an infinity."""
    return advisor_any_nonfinite(x, n) != 0


# ----------------------------------------------------------------------------------------------
# Scaling, polynomial expansion and the fitted pipeline.
# ----------------------------------------------------------------------------------------------

cdef void _scaler(const double* X, Py_ssize_t p, const Py_ssize_t* rows, Py_ssize_t m,
                  double* mean, double* scale, bint* active) noexcept nogil:
    """sklearn StandardScaler statistics (same summation order, same constant-feature test)."""
    cdef Py_ssize_t f, i
    cdef double s, mu, d, corr, ss, var
    for f in range(p):
        s = 0.0
        for i in range(m):
            s += X[rows[i] * p + f]
        mu = s / m
        corr = 0.0
        ss = 0.0
        for i in range(m):
            d = X[rows[i] * p + f] - mu
            corr += d
            ss += d * d
        var = (ss - corr * corr / m) / m
        mean[f] = mu
        if var <= m * EPS * var + (m * mu * EPS) * (m * mu * EPS):
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


cdef struct Pipe:
    # Problem description.
    Py_ssize_t p          # input features
    Py_ssize_t J          # monomials (no bias)
    Py_ssize_t deg        # width of a monomial table row
    const int* mono       # J x deg feature indices, -1 padded
    Py_ssize_t ncols_tol  # column count that sets the rank cut-off (sklearn's design width)
    # Workspace sized for up to mmax rows.
    double* D
    double* b
    double* z
    double* zrow
    double* dmean
    double* beta
    double* work
    Py_ssize_t* iwork
    Py_ssize_t* colmap
    Py_ssize_t na          # kept monomials for prev_active (-1: none yet)
    bint* active
    bint* prev_active


cdef int _pipe_alloc(Pipe* P, Py_ssize_t mmax) noexcept nogil:
    cdef Py_ssize_t J = P.J
    P.D = <double*> malloc((mmax * J + 1) * sizeof(double))
    P.b = <double*> malloc((mmax + 1) * sizeof(double))
    P.z = <double*> malloc((P.p + 1) * sizeof(double))
    P.zrow = <double*> malloc((J + 1) * sizeof(double))
    P.dmean = <double*> malloc((J + 1) * sizeof(double))
    P.beta = <double*> malloc((J + 1) * sizeof(double))
    P.work = <double*> malloc(
        _lstsq_work_size(mmax if mmax > J else J, J if mmax > J else mmax, 1) * sizeof(double))
    P.iwork = <Py_ssize_t*> malloc((J + 1) * sizeof(Py_ssize_t))
    P.colmap = <Py_ssize_t*> malloc((J + 1) * sizeof(Py_ssize_t))
    P.active = <bint*> malloc((P.p + 1) * sizeof(bint))
    P.prev_active = <bint*> malloc((P.p + 1) * sizeof(bint))
    if (P.D == NULL or P.b == NULL or P.z == NULL or P.zrow == NULL or P.dmean == NULL
            or P.beta == NULL or P.work == NULL or P.iwork == NULL or P.colmap == NULL
            or P.active == NULL or P.prev_active == NULL):
        return -1
    return 0


cdef void _pipe_free(Pipe* P) noexcept nogil:
    free(P.D)
    free(P.b)
    free(P.z)
    free(P.zrow)
    free(P.dmean)
    free(P.beta)
    free(P.work)
    free(P.iwork)
    free(P.colmap)
    free(P.active)
    free(P.prev_active)


cdef int _pipe_fit(Pipe* P, const double* X, const double* y, const Py_ssize_t* rows,
                   Py_ssize_t m, const Py_ssize_t* urows, const double* wts, Py_ssize_t mu,
                   double* mean, double* scale, double* coef, double* intercept) noexcept nogil:
    """Fit scaler -> expansion -> centred min-norm least squares on X[rows]; 0 on success.

    With wts != NULL the rows are a resample given as distinct rows urows[0:mu] with
    multiplicities wts: the design is built once per distinct row and weighted by sqrt(count),
    which has the same least-squares objective, the same solution set and the same singular
    values as the duplicated design, at a fraction of the cost.
    coef gets one entry per monomial (bias excluded); monomials of constant features are never
    built: they are zero columns whose min-norm coefficient is exactly 0.
    """
    cdef Py_ssize_t p = P.p, J = P.J, deg = P.deg
    cdef Py_ssize_t f, i, j, a, t, na, pa, rank, ld
    cdef const double* row
    cdef double ybar, s, tolmax, w
    cdef bint ok, transposed
    if m < 1:
        return -1
    if wts == NULL:
        urows = rows
        mu = m
    _scaler(X, p, rows, m, mean, scale, P.active)
    # The kept monomials depend only on which features are active: reuse the previous map
    # (resamples and folds nearly always share it).
    ok = P.na >= 0
    if ok:
        for f in range(p):
            if P.active[f] != P.prev_active[f]:
                ok = False
    if ok:
        na = P.na
    else:
        na = 0
        for j in range(J):
            ok = True
            for t in range(deg):
                if P.mono[j * deg + t] >= 0 and not P.active[P.mono[j * deg + t]]:
                    ok = False
            if ok:
                P.colmap[na] = j
                na += 1
        P.na = na
        memcpy(P.prev_active, P.active, p * sizeof(bint))
    s = 0.0
    for i in range(m):
        s += y[rows[i]]
    ybar = s / m
    for i in range(mu):
        P.b[i] = y[urows[i]] - ybar
    transposed = mu < na
    # Wide designs are stored transposed (one row's monomials contiguous) and factorised so.
    ld = na if transposed else mu
    memset(P.dmean, 0, na * sizeof(double))
    for i in range(mu):
        row = X + urows[i] * p
        w = 1.0 if wts == NULL else wts[i]
        # Active features only, compacted: their monomials are exactly the kept columns, in
        # the same relative order as the full expansion (colmap maps them back).
        pa = 0
        for f in range(p):
            if P.active[f]:
                P.z[pa] = (row[f] - mean[f]) / scale[f]
                pa += 1
        if transposed:
            _expand_row(P.z, pa, deg, P.D + i * ld)
            for a in range(na):
                P.dmean[a] += w * P.D[a + i * ld]
        else:
            _expand_row(P.z, pa, deg, P.zrow)
            for a in range(na):
                P.D[i + a * ld] = P.zrow[a]
    if transposed:
        for a in range(na):
            P.dmean[a] /= m
        for i in range(mu):
            w = 1.0 if wts == NULL else sqrt(wts[i])
            for a in range(na):
                P.D[a + i * ld] = (P.D[a + i * ld] - P.dmean[a]) * w
    else:
        for a in range(na):
            if wts == NULL:
                s = _pairwise_sum(P.D + a * ld, mu)
            else:
                s = _dot(P.D + a * ld, wts, mu)
            P.dmean[a] = s / m
            s = P.dmean[a]
            for i in range(mu):
                P.D[i + a * ld] -= s
    if wts != NULL:
        for i in range(mu):
            w = sqrt(wts[i])
            P.b[i] *= w
            if not transposed:
                for a in range(na):
                    P.D[i + a * ld] *= w
    tolmax = m if m > P.ncols_tol else P.ncols_tol
    if transposed:
        rank = _lstsq_core(P.D, ld, na, mu, True, P.b, mu, 1, EPS * tolmax, P.beta, na,
                           P.work, P.iwork)
    else:
        rank = _lstsq_core(P.D, ld, mu, na, False, P.b, mu, 1, EPS * tolmax, P.beta, na,
                           P.work, P.iwork)
    if rank < 0:
        return -2
    memset(coef, 0, J * sizeof(double))
    s = ybar
    for a in range(na):
        coef[P.colmap[a]] = P.beta[a]
        s -= P.dmean[a] * P.beta[a]
        if not isfinite(P.beta[a]):
            return -3
    if not isfinite(s):
        return -3
    intercept[0] = s
    return 0


cdef void _pipe_predict(const Pipe* P, const double* mean, const double* scale,
                        const double* coef, double intercept, const double* Xn,
                        Py_ssize_t nrows, double* out) noexcept nogil:
    """out[r] = intercept + sum_j coef[j] * monomial_j((Xn[r] - mean) / scale)."""
    cdef Py_ssize_t r, f
    cdef const double* row
    for r in range(nrows):
        row = Xn + r * P.p
        for f in range(P.p):
            P.z[f] = (row[f] - mean[f]) / scale[f]
        _expand_row(P.z, P.p, P.deg, P.zrow)
        out[r] = intercept + _dot(coef, P.zrow, P.J)


cdef double _r2(const double* yt, const double* yp, Py_ssize_t n) noexcept nogil:
    """sklearn r2_score (force_finite): constant target -> 1.0 if perfect else 0.0."""
    cdef double mean, num = 0.0, den = 0.0, d
    cdef Py_ssize_t i
    if n < 2:
        return NAN
    mean = _pairwise_sum(yt, n) / n
    for i in range(n):
        d = yt[i] - yp[i]
        num += d * d
        d = yt[i] - mean
        den += d * d
    if num == 0.0:
        return 1.0
    if den == 0.0:
        return 0.0
    return 1.0 - num / den


cdef void _pipe_init(Pipe* P, const int[:, ::1] mono, Py_ssize_t p, Py_ssize_t ncols_tol):
    P.p = p
    P.J = mono.shape[0]
    P.deg = mono.shape[1]
    P.mono = &mono[0, 0] if P.J > 0 and P.deg > 0 else NULL
    P.ncols_tol = ncols_tol
    P.D = NULL
    P.b = NULL
    P.z = NULL
    P.zrow = NULL
    P.dmean = NULL
    P.beta = NULL
    P.work = NULL
    P.iwork = NULL
    P.colmap = NULL
    P.na = -1
    P.active = NULL
    P.prev_active = NULL


cdef int _check_len(Py_ssize_t got, Py_ssize_t want, str name) except -1:
    # The kernels index these buffers through raw pointers, which the debug build's bounds
    # checks do not cover: a mismatched length would be a silent out-of-bounds read.
    if got != want:
        raise ValueError(f"{name} has length {got}, expected {want}")
    return 0


cdef array _DOUBLES = array("d")


cdef inline array _doubles(Py_ssize_t n, double fill):
    """A new array('d') of n values equal to fill (the result type of every entry point)."""
    cdef array out = clone(_DOUBLES, n, False)
    cdef Py_ssize_t i
    for i in range(n):
        out.data.as_doubles[i] = fill
    return out


def scaler_stats(const double[:, ::1] X):
    """(mean, scale) of the columns of X like sklearn's StandardScaler (population std)."""
    cdef Py_ssize_t m = X.shape[0], p = X.shape[1], i
    cdef array mean = _doubles(p, 0.0)
    cdef array scale = _doubles(p, 1.0)
    cdef Py_ssize_t* rows
    cdef bint* active
    if m == 0 or p == 0:
        return mean, scale
    rows = <Py_ssize_t*> malloc(m * sizeof(Py_ssize_t))
    active = <bint*> malloc(p * sizeof(bint))
    try:
        if rows == NULL or active == NULL:
            raise MemoryError()
        with nogil:
            for i in range(m):
                rows[i] = i
            _scaler(&X[0, 0], p, rows, m, mean.data.as_doubles, scale.data.as_doubles, active)
    finally:
        free(rows)
        free(active)
    return mean, scale


def poly_expand(const double[:, ::1] X, const int[:, ::1] mono, bint include_bias):
    """Row-major (n, [1 +] J) columns [1,] monomial_j(X) of the monomial table (sklearn order)."""
    cdef Py_ssize_t n = X.shape[0], J = mono.shape[0], deg = mono.shape[1]
    cdef Py_ssize_t off = 1 if include_bias else 0, width = J + off, i, j, t
    cdef double v
    cdef array out = _doubles(n * width, 0.0)
    cdef double* o = out.data.as_doubles
    with nogil:
        for i in range(n):
            if off:
                o[i * width] = 1.0
            for j in range(J):
                v = 1.0
                for t in range(deg):
                    if mono[j, t] >= 0:
                        v = v * X[i, mono[j, t]]
                o[i * width + j + off] = v
    return out


def fit_pipeline(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
                 Py_ssize_t ncols_tol):
    """Fit scaler -> expansion -> least squares: (mean, scale, coef per monomial, intercept)."""
    cdef Pipe P
    cdef Py_ssize_t m = X.shape[0], p = X.shape[1], i
    cdef int st = 0
    cdef double icpt = 0.0
    cdef Py_ssize_t* rows = NULL
    cdef array mean = _doubles(p, 0.0)
    cdef array scale = _doubles(p, 1.0)
    cdef array coef = _doubles(mono.shape[0], 0.0)
    if m < 1:
        raise ValueError("cannot fit on 0 rows")
    _check_len(y.shape[0], m, "y")
    _pipe_init(&P, mono, p, ncols_tol)
    try:
        rows = <Py_ssize_t*> malloc(m * sizeof(Py_ssize_t))
        if rows == NULL or _pipe_alloc(&P, m) != 0:
            raise MemoryError()
        with nogil:
            for i in range(m):
                rows[i] = i
            st = _pipe_fit(&P, &X[0, 0], &y[0], rows, m, NULL, NULL, 0,
                           mean.data.as_doubles, scale.data.as_doubles,
                           coef.data.as_doubles, &icpt)
    finally:
        free(rows)
        _pipe_free(&P)
    if st != 0:
        raise ValueError("least-squares fit failed (no convergence or non-finite result)")
    return mean, scale, coef, icpt


def predict_pipeline(const double[:, ::1] Xn, const double[::1] mean, const double[::1] scale,
                     const int[:, ::1] mono, const double[::1] coef, double intercept):
    """Predictions of a fitted pipeline for the rows of Xn (coef per monomial, bias excluded)."""
    cdef Pipe P
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1]
    cdef array out = _doubles(n, 0.0)
    _check_len(mean.shape[0], p, "mean")
    _check_len(scale.shape[0], p, "scale")
    _check_len(coef.shape[0], mono.shape[0], "coef")
    if n == 0:
        return out
    _pipe_init(&P, mono, p, 0)
    P.z = <double*> malloc((p + 1) * sizeof(double))
    P.zrow = <double*> malloc((P.J + 1) * sizeof(double))
    try:
        if P.z == NULL or P.zrow == NULL:
            raise MemoryError()
        with nogil:
            _pipe_predict(&P, &mean[0] if p > 0 else NULL, &scale[0] if p > 0 else NULL,
                          &coef[0] if P.J > 0 else NULL, intercept, &Xn[0, 0], n,
                          out.data.as_doubles)
    finally:
        free(P.z)
        free(P.zrow)
    return out


def all_finite(const double[::1] x):
    """True when no value of x is a NaN or an infinity."""
    if x.shape[0] == 0:
        return True
    return not _any_nonfinite(&x[0], x.shape[0])


def mean(const double[::1] x):
    """np.mean of x, bit for bit (pairwise summation); NaN when empty."""
    if x.shape[0] == 0:
        return NAN
    return _pairwise_sum(&x[0], x.shape[0]) / x.shape[0]


def r2(const double[::1] y_true, const double[::1] y_pred):
    """sklearn r2_score; NaN for fewer than 2 samples."""
    _check_len(y_pred.shape[0], y_true.shape[0], "y_pred")
    if y_true.shape[0] < 2:
        return NAN
    return _r2(&y_true[0], &y_pred[0], y_true.shape[0])


def rmse(const double[::1] y_true, const double[::1] y_pred):
    """Root mean squared error; NaN when empty."""
    cdef Py_ssize_t n = y_true.shape[0], i
    cdef double s = 0.0, d
    _check_len(y_pred.shape[0], n, "y_pred")
    if n == 0:
        return NAN
    for i in range(n):
        d = y_true[i] - y_pred[i]
        s += d * d
    return sqrt(s / n)


def bootstrap(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
              Py_ssize_t ncols_tol, const double[:, ::1] Xn, const int64_t[::1] idx,
              double[::1] out, unsigned char[::1] ok, Py_ssize_t start, Py_ssize_t stop):
    """Refit on resamples start..stop-1 (idx row-major, n per resample) and predict Xn.

    Row s of ``out`` (row-major, len(Xn) per resample) receives the predictions of resample s;
    ``ok[s]`` is 1 when its fit succeeded with finite predictions, else 0. Releases the GIL, so
    threads can share disjoint ranges of one call's buffers.
    """
    cdef Pipe P
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], m = n, nnew = Xn.shape[0], s, i, mu
    cdef double icpt
    cdef int st
    cdef bint good
    cdef double* mean = NULL
    cdef double* scale = NULL
    cdef double* coef = NULL
    cdef double* wts = NULL
    cdef double* row_out
    cdef Py_ssize_t* rows = NULL
    cdef Py_ssize_t* urows = NULL
    cdef Py_ssize_t* count = NULL
    _check_len(y.shape[0], n, "y")
    _check_len(Xn.shape[1], p, "rows of Xn")
    if start < 0 or stop < start or stop * m > idx.shape[0] or stop > ok.shape[0]:
        raise ValueError("resample range outside idx or ok")
    if stop * nnew > out.shape[0]:
        raise ValueError("out is too small")
    if start == stop or n == 0 or nnew == 0:
        for s in range(start, stop):
            ok[s] = 0 if n == 0 else 1
        return
    _pipe_init(&P, mono, p, ncols_tol)
    try:
        mean = <double*> malloc((p + 1) * sizeof(double))
        scale = <double*> malloc((p + 1) * sizeof(double))
        coef = <double*> malloc((P.J + 1) * sizeof(double))
        wts = <double*> malloc((m + 1) * sizeof(double))
        rows = <Py_ssize_t*> malloc((m + 1) * sizeof(Py_ssize_t))
        urows = <Py_ssize_t*> malloc((m + 1) * sizeof(Py_ssize_t))
        count = <Py_ssize_t*> malloc((n + 1) * sizeof(Py_ssize_t))
        if (mean == NULL or scale == NULL or coef == NULL or wts == NULL or rows == NULL
                or urows == NULL or count == NULL or _pipe_alloc(&P, m) != 0):
            raise MemoryError()
        with nogil:
            for s in range(start, stop):
                ok[s] = 0
                good = True
                for i in range(m):
                    rows[i] = <Py_ssize_t> idx[s * m + i]
                    if rows[i] < 0 or rows[i] >= n:
                        good = False
                if not good:
                    continue
                memset(count, 0, n * sizeof(Py_ssize_t))
                for i in range(m):
                    count[rows[i]] += 1
                mu = 0
                for i in range(n):
                    if count[i] > 0:
                        urows[mu] = i
                        wts[mu] = <double> count[i]
                        mu += 1
                st = _pipe_fit(&P, &X[0, 0], &y[0], rows, m, urows, wts, mu,
                               mean, scale, coef, &icpt)
                if st != 0:
                    continue
                row_out = &out[s * nnew]
                _pipe_predict(&P, mean, scale, coef, icpt, &Xn[0, 0], nnew, row_out)
                for i in range(nnew):
                    if not isfinite(row_out[i]):
                        good = False
                if good:
                    ok[s] = 1
    finally:
        free(mean)
        free(scale)
        free(coef)
        free(wts)
        free(rows)
        free(urows)
        free(count)
        _pipe_free(&P)


cdef int _cmp_double(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*> a)[0], y = (<const double*> b)[0]
    return (x > y) - (x < y)


cdef double _lerp(double a, double b, double t) noexcept nogil:
    # numpy's _lerp, operation for operation (the t >= 0.5 branch keeps lerp(a, b, 1) == b).
    cdef double diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


def percentile_pair(const double[::1] values, const unsigned char[::1] ok, Py_ssize_t cols,
                    double q_low, double q_high):
    """Per column, numpy.percentile(..., [q_low, q_high]) (linear) over the rows with ok[row].

    ``values`` is row-major with ``cols`` values per row, all finite on the rows used. Returns
    (low, high) as array('d'); a column without usable rows gives NaN.
    """
    cdef Py_ssize_t rows = ok.shape[0], r, c, n = 0, lo_i, hi_i
    cdef double ql = q_low / 100.0, qh = q_high / 100.0, vi, g
    cdef array low = _doubles(cols, NAN)
    cdef array high = _doubles(cols, NAN)
    cdef double* col
    cdef double* res
    cdef double q
    cdef int which
    if rows * cols > values.shape[0]:
        raise ValueError("values is smaller than ok x cols")
    if not (0.0 <= ql <= 1.0 and 0.0 <= qh <= 1.0):
        raise ValueError("percentiles must be in [0, 100]")
    for r in range(rows):
        if ok[r]:
            n += 1
    if n == 0 or cols == 0:
        return low, high
    col = <double*> malloc(n * sizeof(double))
    if col == NULL:
        raise MemoryError()
    with nogil:
        for c in range(cols):
            n = 0
            for r in range(rows):
                if ok[r]:
                    col[n] = values[r * cols + c]
                    n += 1
            qsort(col, n, sizeof(double), _cmp_double)
            for which in range(2):
                q = ql if which == 0 else qh
                res = low.data.as_doubles if which == 0 else high.data.as_doubles
                # numpy's 'linear' method: virtual index (n - 1) * q, neighbours clipped.
                vi = (n - 1) * q
                if vi >= n - 1:
                    res[c] = col[n - 1]
                    continue
                lo_i = <Py_ssize_t> floor(vi)
                hi_i = lo_i + 1
                g = vi - <double> lo_i
                res[c] = _lerp(col[lo_i], col[hi_i], g)
    free(col)
    return low, high


# ----------------------------------------------------------------------------------------------
# Prediction intervals, guarded extrapolation and out-of-fold predictions.
# ----------------------------------------------------------------------------------------------

cdef double _continue(const double* x, const double* lo, const double* hi,
                      const unsigned char* rising, const double* slope, Py_ssize_t p,
                      double* xc) noexcept nogil:
    """Clip x into the box [lo, hi] (written to xc); return the trend's change from xc to x.

    The change is sum_j slope_j (x_j - xc_j), with slope_j floored at 0 above the box where
    rising[j] (more streams never lower the predicted power).
    """
    cdef Py_ssize_t j
    cdef double d, s, inc = 0.0
    for j in range(p):
        if x[j] < lo[j]:
            xc[j] = lo[j]
        elif x[j] > hi[j]:
            xc[j] = hi[j]
        else:
            xc[j] = x[j]
            continue
        d = x[j] - xc[j]
        s = slope[j]
        if rising[j] and d > 0.0 and s < 0.0:
            s = 0.0
        inc += s * d
    return inc


def clip_continue(const double[:, ::1] Xn, const double[::1] lo, const double[::1] hi,
                  const unsigned char[::1] rising, const double[::1] slope):
    """(clipped rows, trend change per row): Xn clipped into [lo, hi] and the linear trend's
    change from the clipped row to the row (see ``_continue``); row-major array('d') and
    array('d')."""
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1], r
    cdef array xc = _doubles(n * p, 0.0)
    cdef array inc = _doubles(n, 0.0)
    _check_len(lo.shape[0], p, "lo")
    _check_len(hi.shape[0], p, "hi")
    _check_len(rising.shape[0], p, "rising")
    _check_len(slope.shape[0], p, "slope")
    if n == 0 or p == 0:
        return xc, inc
    with nogil:
        for r in range(n):
            inc.data.as_doubles[r] = _continue(&Xn[r, 0], &lo[0], &hi[0], &rising[0],
                                               &slope[0], p, xc.data.as_doubles + r * p)
    return xc, inc


cdef Py_ssize_t _kept_columns(Pipe* P) noexcept nogil:
    """Fill P.colmap with the monomials whose features are all active; return their count."""
    cdef Py_ssize_t j, t, na = 0
    cdef bint ok
    for j in range(P.J):
        ok = True
        for t in range(P.deg):
            if P.mono[j * P.deg + t] >= 0 and not P.active[P.mono[j * P.deg + t]]:
                ok = False
        if ok:
            P.colmap[na] = j
            na += 1
    return na


cdef void _design_row(Pipe* P, const double* x, const double* mean, const double* scale,
                      Py_ssize_t na, double* out) noexcept nogil:
    """Kept monomials of the scaled active features of x (the fit's design columns)."""
    cdef Py_ssize_t f, pa = 0, a
    for f in range(P.p):
        if P.active[f]:
            P.z[pa] = (x[f] - mean[f]) / scale[f]
            pa += 1
    _expand_row(P.z, pa, P.deg, P.zrow)
    # _expand_row on the compacted features yields exactly the kept columns, in order.
    for a in range(na):
        out[a] = P.zrow[a]


# Right-hand sides solved per factorisation in ``leverage``: bounds its buffers at
# (rows x LEVERAGE_BLOCK) doubles whatever the number of new rows (a results exporter predicts
# every scenario of a 1,000-row run at once).
cdef Py_ssize_t LEVERAGE_BLOCK = 64


def leverage(const double[:, ::1] X, const int[:, ::1] mono, Py_ssize_t ncols_tol,
             const double[:, ::1] Xn):
    """(rank, h): numerical rank of the fit's centred design Zc and, per row x0 of Xn,
    h = 1/n + v' (Zc' Zc)^+ v with v the centred design row of x0 (the leverage of a new point,
    so that Var(prediction) = sigma^2 h). Uses the fit's own rank cut-off."""
    cdef Pipe P
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], nnew = Xn.shape[0]
    cdef Py_ssize_t i, a, r, na, mf, nf, start, count, rank = 0
    cdef double s
    cdef double* mean = NULL
    cdef double* scale = NULL
    cdef double* D = NULL
    cdef double* F = NULL
    cdef double* B = NULL
    cdef double* W = NULL
    cdef double* work = NULL
    cdef Py_ssize_t* rows = NULL
    cdef Py_ssize_t* jpvt = NULL
    cdef bint wide
    cdef array h = _doubles(nnew, NAN)
    if n < 1:
        raise ValueError("cannot compute leverage on 0 rows")
    _check_len(Xn.shape[1], p, "rows of Xn")
    _pipe_init(&P, mono, p, ncols_tol)
    try:
        mean = <double*> malloc((p + 1) * sizeof(double))
        scale = <double*> malloc((p + 1) * sizeof(double))
        rows = <Py_ssize_t*> malloc((n + 1) * sizeof(Py_ssize_t))
        P.active = <bint*> malloc((p + 1) * sizeof(bint))
        P.colmap = <Py_ssize_t*> malloc((P.J + 1) * sizeof(Py_ssize_t))
        P.z = <double*> malloc((p + 1) * sizeof(double))
        P.zrow = <double*> malloc((P.J + 1) * sizeof(double))
        P.dmean = <double*> malloc((P.J + 1) * sizeof(double))
        if (mean == NULL or scale == NULL or rows == NULL or P.active == NULL
                or P.colmap == NULL or P.z == NULL or P.zrow == NULL or P.dmean == NULL):
            raise MemoryError()
        for i in range(n):
            rows[i] = i
        _scaler(&X[0, 0], p, rows, n, mean, scale, P.active)
        na = _kept_columns(&P)
        if na == 0:
            for r in range(nnew):
                h.data.as_doubles[r] = 1.0 / n
            return 0, h
        # S = Zc' (na x n); min ||S w - v|| has the min-norm solution w = (Zc')^+ v, and
        # ||w||^2 = v' (Zc' Zc)^+ v. F is S itself when tall, else S' = Zc (solver convention).
        wide = na < n
        mf = n if wide else na
        nf = na if wide else n
        D = <double*> malloc((n * na + 1) * sizeof(double))
        F = <double*> malloc((n * na + 1) * sizeof(double))
        B = <double*> malloc((na * LEVERAGE_BLOCK + 1) * sizeof(double))
        W = <double*> malloc((n * LEVERAGE_BLOCK + 1) * sizeof(double))
        work = <double*> malloc(_lstsq_work_size(mf, nf, LEVERAGE_BLOCK) * sizeof(double))
        jpvt = <Py_ssize_t*> malloc((n + na + 1) * sizeof(Py_ssize_t))
        if (D == NULL or F == NULL or B == NULL or W == NULL or work == NULL
                or jpvt == NULL):
            raise MemoryError()
        with nogil:
            for i in range(n):
                _design_row(&P, &X[i, 0], mean, scale, na, P.zrow)
                for a in range(na):
                    if wide:
                        D[i + a * n] = P.zrow[a]
                    else:
                        D[a + i * na] = P.zrow[a]
            for a in range(na):
                s = 0.0
                for i in range(n):
                    s += D[i + a * n] if wide else D[a + i * na]
                P.dmean[a] = s / n
                for i in range(n):
                    if wide:
                        D[i + a * n] -= P.dmean[a]
                    else:
                        D[a + i * na] -= P.dmean[a]
            s = <double> (n if n > ncols_tol else ncols_tol)
            # One factorisation per block of new rows (the solver overwrites its matrix); at
            # least one, which also gives the rank when there is no new row.
            start = 0
            while True:
                count = nnew - start
                if count > LEVERAGE_BLOCK:
                    count = LEVERAGE_BLOCK
                for r in range(count):
                    _design_row(&P, &Xn[start + r, 0], mean, scale, na, B + r * na)
                    for a in range(na):
                        B[a + r * na] -= P.dmean[a]
                memcpy(F, D, n * na * sizeof(double))
                rank = _lstsq_core(F, n if wide else na, mf, nf, wide, B, na, count, EPS * s,
                                   W, n, work, jpvt)
                if rank < 0:
                    break
                for r in range(count):
                    h.data.as_doubles[start + r] = 1.0 / n + _dot(W + r * n, W + r * n, n)
                start += count
                if start >= nnew:
                    break
    finally:
        free(mean)
        free(scale)
        free(rows)
        free(D)
        free(F)
        free(B)
        free(W)
        free(work)
        free(jpvt)
        free(P.active)
        free(P.colmap)
        free(P.z)
        free(P.zrow)
        free(P.dmean)
    if rank < 0:
        raise ValueError("leverage: the SVD did not converge")
    return rank, h


def guarded_predict(const double[:, ::1] Xn, const double[::1] mean, const double[::1] scale,
                    const int[:, ::1] mono, const double[::1] coef, double intercept,
                    const double[::1] lo, const double[::1] hi,
                    const unsigned char[::1] rising, const double[::1] slope):
    """Pipeline prediction at each row clipped into [lo, hi], plus the linear trend's change
    from the clipped row to the row (``_continue``): no polynomial extrapolation."""
    cdef Pipe P
    cdef Py_ssize_t n = Xn.shape[0], p = Xn.shape[1], r
    cdef double pred, inc
    cdef double* xc = NULL
    cdef array out = _doubles(n, 0.0)
    _check_len(mean.shape[0], p, "mean")
    _check_len(scale.shape[0], p, "scale")
    _check_len(coef.shape[0], mono.shape[0], "coef")
    _check_len(lo.shape[0], p, "lo")
    _check_len(hi.shape[0], p, "hi")
    _check_len(rising.shape[0], p, "rising")
    _check_len(slope.shape[0], p, "slope")
    if n == 0 or p == 0:
        return out
    _pipe_init(&P, mono, p, 0)
    P.z = <double*> malloc((p + 1) * sizeof(double))
    P.zrow = <double*> malloc((P.J + 1) * sizeof(double))
    xc = <double*> malloc((p + 1) * sizeof(double))
    try:
        if P.z == NULL or P.zrow == NULL or xc == NULL:
            raise MemoryError()
        with nogil:
            for r in range(n):
                inc = _continue(&Xn[r, 0], &lo[0], &hi[0], &rising[0], &slope[0], p, xc)
                _pipe_predict(&P, &mean[0], &scale[0], &coef[0] if P.J > 0 else NULL,
                              intercept, xc, 1, &pred)
                out.data.as_doubles[r] = pred + inc
    finally:
        free(P.z)
        free(P.zrow)
        free(xc)
    return out


def cv_predict(const double[:, ::1] X, const double[::1] y, const int[:, ::1] mono,
               Py_ssize_t ncols_tol, const int[:, ::1] lin_mono, Py_ssize_t lin_ncols_tol,
               const int64_t[::1] fold, Py_ssize_t k, const unsigned char[::1] rising):
    """Out-of-fold predictions: for each fold f < k, fit the pipeline and its linear trend on
    the rows with fold != f and predict the rows of fold f the way a fitted model predicts
    (``guarded_predict`` inside the fold's training box). NaN where a fold's fit failed."""
    cdef Pipe P, L
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1], f, i, j, m
    cdef double icpt, licpt, pred, inc
    cdef int st
    cdef double* mean = NULL
    cdef double* scale = NULL
    cdef double* coef = NULL
    cdef double* lmean = NULL
    cdef double* lscale = NULL
    cdef double* lcoef = NULL
    cdef double* lo = NULL
    cdef double* hi = NULL
    cdef double* xc = NULL
    cdef Py_ssize_t* rows = NULL
    cdef array out = _doubles(n, NAN)
    cdef double* ov = out.data.as_doubles
    _check_len(y.shape[0], n, "y")
    _check_len(fold.shape[0], n, "fold")
    _check_len(rising.shape[0], p, "rising")
    _check_len(lin_mono.shape[0], p, "rows of lin_mono")
    if n == 0 or k < 1:
        return out
    _pipe_init(&P, mono, p, ncols_tol)
    _pipe_init(&L, lin_mono, p, lin_ncols_tol)
    try:
        mean = <double*> malloc((p + 1) * sizeof(double))
        scale = <double*> malloc((p + 1) * sizeof(double))
        coef = <double*> malloc((P.J + 1) * sizeof(double))
        lmean = <double*> malloc((p + 1) * sizeof(double))
        lscale = <double*> malloc((p + 1) * sizeof(double))
        lcoef = <double*> malloc((p + 1) * sizeof(double))
        lo = <double*> malloc((p + 1) * sizeof(double))
        hi = <double*> malloc((p + 1) * sizeof(double))
        xc = <double*> malloc((p + 1) * sizeof(double))
        rows = <Py_ssize_t*> malloc((n + 1) * sizeof(Py_ssize_t))
        if (mean == NULL or scale == NULL or coef == NULL or lmean == NULL or lscale == NULL
                or lcoef == NULL or lo == NULL or hi == NULL or xc == NULL or rows == NULL
                or _pipe_alloc(&P, n) != 0 or _pipe_alloc(&L, n) != 0):
            raise MemoryError()
        with nogil:
            for f in range(k):
                m = 0
                for i in range(n):
                    if fold[i] != f:
                        rows[m] = i
                        m += 1
                if m == 0 or m == n:
                    continue
                st = _pipe_fit(&P, &X[0, 0], &y[0], rows, m, NULL, NULL, 0,
                               mean, scale, coef, &icpt)
                if st == 0:
                    st = _pipe_fit(&L, &X[0, 0], &y[0], rows, m, NULL, NULL, 0,
                                   lmean, lscale, lcoef, &licpt)
                if st != 0:
                    continue
                for j in range(p):
                    lcoef[j] = lcoef[j] / lscale[j]  # slope per unit of the raw feature
                    lo[j] = X[rows[0], j]
                    hi[j] = lo[j]
                for i in range(1, m):
                    for j in range(p):
                        if X[rows[i], j] < lo[j]:
                            lo[j] = X[rows[i], j]
                        elif X[rows[i], j] > hi[j]:
                            hi[j] = X[rows[i], j]
                for i in range(n):
                    if fold[i] != f:
                        continue
                    inc = _continue(&X[i, 0], lo, hi, &rising[0], lcoef, p, xc)
                    _pipe_predict(&P, mean, scale, coef if P.J > 0 else NULL, icpt, xc, 1,
                                  &pred)
                    ov[i] = pred + inc
    finally:
        free(mean)
        free(scale)
        free(coef)
        free(lmean)
        free(lscale)
        free(lcoef)
        free(lo)
        free(hi)
        free(xc)
        free(rows)
        _pipe_free(&P)
        _pipe_free(&L)
    return out
