# cython: language_level=3
"""numpy entry point of the compiled least-squares solver (the solver is in _solver.pyx).

Kept apart from _solver so that the model pipeline can run without loading numpy.
"""

from libc.float cimport DBL_EPSILON
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

from advisor_core.models._buffers cimport Buffers
from advisor_core.models._solver cimport any_nonfinite, lstsq_core, lstsq_work_size

cnp.import_array()

cdef double EPS = DBL_EPSILON


cdef void _copy_inputs(const char* xd, Py_ssize_t xs0, Py_ssize_t xs1, Py_ssize_t m,
                       Py_ssize_t n, bint transposed, const char* yd, Py_ssize_t ys0,
                       Py_ssize_t ys1, Py_ssize_t nrhs, double* A, double* B) noexcept nogil:
    """X (m x n, strides xs0/xs1 in bytes) into A column-major, as X^T when transposed, and y
    (m x nrhs) into B column-major."""
    cdef Py_ssize_t i, j
    if transposed and xs1 == <Py_ssize_t> sizeof(double) and xs0 == n * xs1:
        # C-contiguous X is already X^T in column-major order.
        memcpy(A, xd, m * n * sizeof(double))
    elif transposed:
        for i in range(m):
            for j in range(n):
                A[j + i * n] = (<const double*> (xd + i * xs0 + j * xs1))[0]
    else:
        for i in range(m):
            for j in range(n):
                A[i + j * m] = (<const double*> (xd + i * xs0 + j * xs1))[0]
    for j in range(nrhs):
        for i in range(m):
            B[i + j * m] = (<const double*> (yd + i * ys0 + j * ys1))[0]


def lstsq(X, y, rcond=None):
    """Minimum-norm least-squares solution of X b = y (y 1-D or 2-D); = numpy.linalg.lstsq[0]."""
    # Small problems are dominated by call overhead, so this entry point reads the arrays
    # through numpy's C API (no memoryview set-up) and makes a single allocation.
    cdef cnp.ndarray xa, ya, out
    cdef Py_ssize_t m, n, nrhs, rank = 0, mf, nf, xs0, xs1, ys0, ys1 = 0
    cdef cnp.npy_intp dims[2]
    cdef double rc
    cdef bint one_d, transposed
    cdef char* xd
    cdef char* yd
    cdef double* A
    cdef double* B
    cdef double* work
    cdef double* res
    cdef Py_ssize_t* iwork
    cdef void* block = NULL
    cdef Buffers buffers
    cdef bint ok = True
    if not cnp.PyArray_Check(X) or cnp.PyArray_TYPE(<cnp.ndarray> X) != cnp.NPY_DOUBLE:
        X = np.asarray(X, dtype=np.float64)
    if not cnp.PyArray_Check(y) or cnp.PyArray_TYPE(<cnp.ndarray> y) != cnp.NPY_DOUBLE:
        y = np.asarray(y, dtype=np.float64)
    xa = <cnp.ndarray> X
    ya = <cnp.ndarray> y
    if cnp.PyArray_NDIM(xa) != 2:
        raise ValueError(f"X must be a 2-D array, got {cnp.PyArray_NDIM(xa)}-D")
    one_d = cnp.PyArray_NDIM(ya) == 1
    if not one_d and cnp.PyArray_NDIM(ya) != 2:
        raise ValueError(f"y must be a 1-D or 2-D array, got {cnp.PyArray_NDIM(ya)}-D")
    m = cnp.PyArray_DIM(xa, 0)
    n = cnp.PyArray_DIM(xa, 1)
    xs0 = cnp.PyArray_STRIDE(xa, 0)
    xs1 = cnp.PyArray_STRIDE(xa, 1)
    if cnp.PyArray_DIM(ya, 0) != m:
        raise ValueError(f"y has {cnp.PyArray_DIM(ya, 0)} rows but X has {m}")
    ys0 = cnp.PyArray_STRIDE(ya, 0)
    if one_d:
        nrhs = 1
    else:
        nrhs = cnp.PyArray_DIM(ya, 1)
        ys1 = cnp.PyArray_STRIDE(ya, 1)
    if rcond is None:
        rc = EPS * (m if m > n else n)
    else:
        rc = float(rcond)
        if rc < 0.0:
            rc = EPS
    # The solution is written column by column: a Fortran-ordered (n, nrhs) array.
    dims[0] = n
    dims[1] = nrhs
    out = cnp.PyArray_ZEROS(1 if one_d else 2, dims, cnp.NPY_DOUBLE, 1)
    if m == 0 or n == 0 or nrhs == 0:
        return out
    transposed = m < n
    mf = n if transposed else m
    nf = m if transposed else n
    buffers = Buffers()
    block = buffers.take((m * n + m * nrhs + lstsq_work_size(mf, nf, nrhs) + 8) * sizeof(double)
                         + (nf + 1) * sizeof(Py_ssize_t))
    A = <double*> block
    B = A + m * n
    work = B + m * nrhs
    iwork = <Py_ssize_t*> (work + lstsq_work_size(mf, nf, nrhs) + 8)
    xd = cnp.PyArray_BYTES(xa)
    yd = cnp.PyArray_BYTES(ya)
    res = <double*> cnp.PyArray_DATA(out)
    with nogil:
        _copy_inputs(xd, xs0, xs1, m, n, transposed, yd, ys0, ys1, nrhs, A, B)
        ok = not any_nonfinite(A, m * n) and not any_nonfinite(B, m * nrhs)
        if ok:
            rank = lstsq_core(A, mf, mf, nf, transposed, B, m, nrhs, rc, res, n, work, iwork)
    if not ok:
        raise ValueError("X and y must contain only finite values")
    if rank < 0:
        raise ValueError("least squares did not converge")
    return out
