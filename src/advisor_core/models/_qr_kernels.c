/* Inner loops of the Householder least-squares solver; see _qr_kernels.h. */
#include <math.h>
#include <stddef.h>

#include "_qr_kernels.h"
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

/* The sum of squares in the order of _blas.pxd's dot (eight partial sums), so that every norm
   of the solver rounds the same way. */
double advisor_nrm2(const double *x, ptrdiff_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0, ss, scale = 0, t;
    ptrdiff_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        s0 += x[i] * x[i];
        s1 += x[i + 1] * x[i + 1];
        s2 += x[i + 2] * x[i + 2];
        s3 += x[i + 3] * x[i + 3];
        s4 += x[i + 4] * x[i + 4];
        s5 += x[i + 5] * x[i + 5];
        s6 += x[i + 6] * x[i + 6];
        s7 += x[i + 7] * x[i + 7];
    }
    for (; i < n; i++)
        s0 += x[i] * x[i];
    ss = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
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
void advisor_downdate(const double *a, ptrdiff_t len, double *vn1, double *vn2)
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

#ifdef ADVISOR_VEC
/* The reflector on four adjacent columns A[:, 0:4]: they share each load of v, and two
   partial sums per column keep two FMA chains in flight. Inlined into each clone of
   advisor_reflect_cols, so it is compiled for that clone's target. */
static inline __attribute__((always_inline)) void
reflect_four_cols(const double *v, double tau, double *A, ptrdiff_t lda, ptrdiff_t len,
                  double *vn1, double *vn2)
{
    ptrdiff_t i;
    double *a0 = A, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
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
        advisor_downdate(a0, len, vn1, vn2);
        advisor_downdate(a1, len, vn1 + 1, vn2 + 1);
        advisor_downdate(a2, len, vn1 + 2, vn2 + 2);
        advisor_downdate(a3, len, vn1 + 3, vn2 + 3);
    }
}
#endif

/* A[:, j] -= tau * v * (v . A[:, j]) for ncols columns of length len (stride lda);
   with vn1 != NULL the column norms vn1/vn2 are downdated too. */
ADVISOR_MULTIVERSION
void advisor_reflect_cols(const double *v, double tau, double *A, ptrdiff_t lda,
                          ptrdiff_t len, ptrdiff_t ncols, double *vn1, double *vn2)
{
    ptrdiff_t i, j = 0, t;
#ifdef ADVISOR_VEC
    for (; j + 4 <= ncols; j += 4)
        reflect_four_cols(v, tau, A + j * lda, lda, len, vn1 == NULL ? NULL : vn1 + j,
                          vn2 == NULL ? NULL : vn2 + j);
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
void advisor_rz_apply(double *A, ptrdiff_t lda, ptrdiff_t i, ptrdiff_t r, ptrdiff_t n,
                      double tau, double *w)
{
    ptrdiff_t j, k;
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
double advisor_inv_fro2(const double *A, ptrdiff_t lda, ptrdiff_t r, double *w)
{
    ptrdiff_t i, j, k;
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
int advisor_any_nonfinite(const double *x, ptrdiff_t n)
{
    double acc[8] = {0};
    ptrdiff_t i, t;
    for (i = 0; i + 8 <= n; i += 8)
        for (t = 0; t < 8; t++)
            acc[t] += x[i + t] * 0.0;
    for (; i < n; i++)
        acc[0] += x[i] * 0.0;
    for (t = 1; t < 8; t++)
        acc[0] += acc[t];
    return acc[0] != 0.0;
}
