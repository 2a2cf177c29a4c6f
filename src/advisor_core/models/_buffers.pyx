# cython: language_level=3
"""Work buffers of the compiled kernels: one owner per call instead of paired malloc/free.

A kernel entry point creates one ``Buffers``, takes its raw blocks from it (MemoryError when
the allocation fails) and lets it go on return or on an exception: every block is freed then.
"""

from libc.stdlib cimport free, malloc, realloc

from cpython.array cimport array, clone


cdef class Buffers:
    """Blocks allocated for one kernel call, all freed when the object goes."""

    def __cinit__(self):
        self.blocks = NULL
        self.count = 0
        self.capacity = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.count):
            free(self.blocks[i])
        free(self.blocks)

    cdef void* take(self, size_t nbytes) except NULL:
        """A new block of at least nbytes (never a zero-size allocation)."""
        cdef void** grown
        cdef void* block
        if self.count == self.capacity:
            grown = <void**> realloc(self.blocks, (2 * self.capacity + 8) * sizeof(void*))
            if grown == NULL:
                raise MemoryError()
            self.blocks = grown
            self.capacity = 2 * self.capacity + 8
        block = malloc(nbytes + 8)
        if block == NULL:
            raise MemoryError()
        self.blocks[self.count] = block
        self.count += 1
        return block

    cdef double* doubles(self, Py_ssize_t n) except NULL:
        return <double*> self.take(n * sizeof(double))

    cdef Py_ssize_t* indices(self, Py_ssize_t n) except NULL:
        return <Py_ssize_t*> self.take(n * sizeof(Py_ssize_t))

    cdef bint* flags(self, Py_ssize_t n) except NULL:
        return <bint*> self.take(n * sizeof(bint))


cdef array _DOUBLES = array("d")


cdef array new_doubles(Py_ssize_t n, double fill):
    """A new array('d') of n values equal to fill (the result type of every entry point)."""
    cdef array out = clone(_DOUBLES, n, False)
    cdef Py_ssize_t i
    for i in range(n):
        out.data.as_doubles[i] = fill
    return out


cdef int check_len(Py_ssize_t got, Py_ssize_t want, str name) except -1:
    """ValueError unless a buffer's length is the one the kernel indexes it with."""
    # The kernels index these buffers through raw pointers, which the debug build's bounds
    # checks do not cover: a mismatched length would be a silent out-of-bounds read.
    if got != want:
        raise ValueError(f"{name} has length {got}, expected {want}")
    return 0
