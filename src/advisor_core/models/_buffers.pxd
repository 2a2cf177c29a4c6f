# Work buffers owned by one call of a kernel, and the checks and results of its Python edge.

from cpython.array cimport array


cdef class Buffers:
    """Blocks allocated for one kernel call, all freed when the object goes."""
    cdef void** blocks
    cdef Py_ssize_t count
    cdef Py_ssize_t capacity
    cdef void* take(self, size_t nbytes) except NULL
    cdef double* doubles(self, Py_ssize_t n) except NULL
    cdef Py_ssize_t* indices(self, Py_ssize_t n) except NULL
    cdef bint* flags(self, Py_ssize_t n) except NULL


cdef array new_doubles(Py_ssize_t n, double fill)
cdef int check_len(Py_ssize_t got, Py_ssize_t want, str name) except -1
