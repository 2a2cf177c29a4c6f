# The minimum-norm least-squares solver, shared by the pipeline kernels and by _lstsq.pyx.

cdef Py_ssize_t lstsq_work_size(Py_ssize_t mf, Py_ssize_t nf, Py_ssize_t nrhs) noexcept nogil
cdef int lstsq_core(double* F, Py_ssize_t ldf, Py_ssize_t mf, Py_ssize_t nf, bint transposed,
                    double* B, Py_ssize_t ldb, Py_ssize_t nrhs, double rcond,
                    double* X, Py_ssize_t ldx, double* work, Py_ssize_t* jpvt) noexcept nogil
cdef bint any_nonfinite(const double* x, Py_ssize_t n) noexcept nogil
