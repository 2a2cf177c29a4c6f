# cython: language_level=3
# The one "overflow is no result" rule of the compiled kernels: ±inf and NaN become NaN.
from libc.math cimport NAN, isfinite


cdef inline double finite_or_nan(double x) noexcept nogil:
    return x if isfinite(x) else NAN
