# cython: language_level=3
"""Compiled text-format writer of the exporters' big per-scenario families.

``render_rows`` writes ``<name><label block> <value>\n`` for every row straight into one bytes
object: no Sample tuples, no per-line str objects, no join of a multi-MB list. Values are
formatted exactly like prometheus_client.utils.floatToGoString: Python's repr (shortest round
trip, ``PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0)``), ``+Inf``/``-Inf``/``NaN``, and
Go's exponent form for positive values with more than six integer digits. Tests compare the
output byte for byte with prometheus_client's generate_latest.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport isinf, isnan
from libc.string cimport memcpy, strlen

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* type) except NULL
    int Py_DTSF_ADD_DOT_0
    double PyFloat_AsDouble(object) except? -1.0


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _reserve(Buffer* buf, Py_ssize_t extra) except -1:
    cdef Py_ssize_t wanted = buf.size + extra
    cdef Py_ssize_t capacity
    cdef char* grown
    if wanted <= buf.capacity:
        return 0
    capacity = buf.capacity * 2 if buf.capacity else 4096
    while capacity < wanted:
        capacity *= 2
    grown = <char*>PyMem_Realloc(buf.data, capacity)
    if grown == NULL:
        raise MemoryError()
    buf.data = grown
    buf.capacity = capacity
    return 0


cdef inline int _put(Buffer* buf, const char* text, Py_ssize_t length) except -1:
    _reserve(buf, length)
    memcpy(buf.data + buf.size, text, length)
    buf.size += length
    return 0


cdef int _put_value(Buffer* buf, double value) except -1:
    # floatToGoString, character for character
    cdef char* text
    cdef Py_ssize_t length, dot, i, end
    cdef char exponent[8]
    if isnan(value):
        return _put(buf, b"NaN", 3)
    if isinf(value):
        return _put(buf, b"+Inf" if value > 0 else b"-Inf", 4)
    text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        length = strlen(text)
        dot = -1
        for i in range(length):
            if text[i] == b'.':
                dot = i
                break
        if not (value > 0 and dot > 6):
            _put(buf, text, length)
            return 0
        # mantissa = s[0] + "." + s[1:dot] + s[dot+1:], rstrip("0."), then "e+%02d" % (dot - 1)
        _reserve(buf, length + 8)
        buf.data[buf.size] = text[0]
        buf.data[buf.size + 1] = b'.'
        memcpy(buf.data + buf.size + 2, text + 1, dot - 1)
        memcpy(buf.data + buf.size + 1 + dot, text + dot + 1, length - dot - 1)
        end = buf.size + length  # same length as the repr: one dot moved
        while end > buf.size and (buf.data[end - 1] == b'0' or buf.data[end - 1] == b'.'):
            end -= 1
        buf.size = end
        exponent[0] = b'e'
        exponent[1] = b'+'
        exponent[2] = <char>(48 + (dot - 1) // 10)  # ASCII digits
        exponent[3] = <char>(48 + (dot - 1) % 10)
        _put(buf, exponent, 4)
    finally:
        PyMem_Free(text)
    return 0


def render_rows(bytes name, list blocks, list values):
    """Sample lines ``name + blocks[i] + b" " + value + b"\\n"`` (UTF-8 bytes) of one family.

    ``blocks`` are encoded label blocks (b'{a="x"}' or b''), ``values`` numbers (float() of
    each is written).
    """
    cdef Py_ssize_t n = len(values), i, name_len = PyBytes_GET_SIZE(name)
    cdef const char* name_ptr = PyBytes_AS_STRING(name)
    cdef bytes block
    cdef double value
    cdef Buffer buf
    if len(blocks) != n:
        raise ValueError("render_rows: one label block per value expected")
    buf.data = NULL
    buf.size = 0
    buf.capacity = 0
    try:
        for i in range(n):
            block = <bytes?>blocks[i]
            value = PyFloat_AsDouble(values[i])
            _reserve(&buf, name_len + PyBytes_GET_SIZE(block) + 2)
            memcpy(buf.data + buf.size, name_ptr, name_len)
            buf.size += name_len
            memcpy(buf.data + buf.size, PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block))
            buf.size += PyBytes_GET_SIZE(block)
            buf.data[buf.size] = b' '
            buf.size += 1
            _put_value(&buf, value)
            _put(&buf, b"\n", 1)
        return PyBytes_FromStringAndSize(buf.data, buf.size)
    finally:
        PyMem_Free(buf.data)
