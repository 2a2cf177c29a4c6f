/* Inner loops of the Householder least-squares solver (_solver.pyx), kept in C because they
   use GCC's function multiversioning and vector extensions. Matrices are column-major. */
#ifndef ADVISOR_QR_KERNELS_H
#define ADVISOR_QR_KERNELS_H

#include <stddef.h>

/* Hidden: internal to the extension that links them (not exported, and not interposable, so
   the compiler may inline them into each other). */
#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

/* Euclidean norm of x[0:n]; rescales only when the plain sum of squares over/underflows. */
double advisor_nrm2(const double *x, ptrdiff_t n);

/* LAPACK dlaqp2's downdate of a column norm (vn1, its reference value vn2) after a
   reflector touched the column a[0:len] (a[0] is the new entry of the pivot row). */
void advisor_downdate(const double *a, ptrdiff_t len, double *vn1, double *vn2);

/* A[:, j] -= tau * v * (v . A[:, j]) for ncols columns of length len (stride lda); with
   vn1 != NULL the column norms vn1/vn2 are downdated too. */
void advisor_reflect_cols(const double *v, double tau, double *A, ptrdiff_t lda,
                          ptrdiff_t len, ptrdiff_t ncols, double *vn1, double *vn2);

/* One step of the RZ reduction (LAPACK dlatrz) on rows 0..i-1: row i's reflector (entries i
   and r..n-1 of row i, tau) applied from the right. w needs i doubles. */
void advisor_rz_apply(double *A, ptrdiff_t lda, ptrdiff_t i, ptrdiff_t r, ptrdiff_t n,
                      double tau, double *w);

/* ||T^-1||_F^2 for the upper-triangular r x r leading block T of A. w needs r doubles. */
double advisor_inv_fro2(const double *A, ptrdiff_t lda, ptrdiff_t r, double *w);

/* Non-zero when x[0:n] holds a NaN or an infinity. */
int advisor_any_nonfinite(const double *x, ptrdiff_t n);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
