# Continuation of a fitted pipeline beyond its training box, shared with cross-validation.

cdef double continue_trend(const double* x, const double* lo, const double* hi,
                           const unsigned char* rising, const double* slope, Py_ssize_t p,
                           double* clipped) noexcept nogil
