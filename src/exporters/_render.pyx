# cython: language_level=3
"""Compiled text-format writer of the exporters' big per-scenario families.

``render_rows`` writes ``<name><label block> <value>\n`` for every row straight into one bytes
object: no Sample tuples, no per-line str objects, no join of a multi-MB list. Values are
formatted exactly like prometheus_client.utils.floatToGoString: Python's repr (shortest round
trip, ``PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0)``), ``+Inf``/``-Inf``/``NaN``, and
Go's exponent form for positive values with more than six integer digits. Tests compare the
output byte for byte with prometheus_client's generate_latest.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.math cimport isinf, isnan
from libc.string cimport memcpy, strlen

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* type) except NULL
    int Py_DTSF_ADD_DOT_0
    double PyFloat_AsDouble(object) except? -1.0
    # Raw forms: the text is written straight into a new bytes object, then shrunk in place.
    PyObject* _new_bytes "PyBytes_FromStringAndSize"(const char* data, Py_ssize_t size) except NULL
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t size) except -1

# Longest value text: repr of a double is at most 24 characters ("-2.2250738585072014e-308";
# fixed notation stops at 17 digits, leading zeros at "0.000"), the Go form of large numbers
# moves the dot and adds "e+NN" (repr + 4); NaN and infinities are 3-4.
cdef enum:
    MAX_VALUE_TEXT = 32


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef inline int _reserve(Buffer* buf, Py_ssize_t extra) except -1:
    # The buffer is sized once from a bound (render_rows); this only guards that bound.
    if buf.size + extra > buf.capacity:
        raise OverflowError("render_rows: text longer than its computed bound")
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


def render_rows(bytes name, list blocks, list values, bytes head=b""):
    """``head`` then the sample lines ``name + blocks[i] + b" " + value + b"\\n"`` of one family.

    ``blocks`` are encoded label blocks (b'{a="x"}' or b''), ``values`` numbers (float() of
    each is written). One bytes object is allocated for a bound of the text's length, written
    in place and shrunk: no growing buffer, no copy of the text.
    """
    cdef Py_ssize_t n = len(values), i, name_len = PyBytes_GET_SIZE(name)
    cdef Py_ssize_t bound = PyBytes_GET_SIZE(head)
    cdef const char* name_ptr = PyBytes_AS_STRING(name)
    cdef bytes block
    cdef double value
    cdef Buffer buf
    cdef PyObject* out
    cdef object result
    if len(blocks) != n:
        raise ValueError("render_rows: one label block per value expected")
    for i in range(n):
        bound += name_len + PyBytes_GET_SIZE(<bytes?>blocks[i]) + 2 + MAX_VALUE_TEXT
    out = _new_bytes(NULL, bound)
    try:
        buf.data = PyBytes_AS_STRING(<object>out)
        buf.size = 0
        buf.capacity = bound
        _put(&buf, PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))
        for i in range(n):
            block = <bytes?>blocks[i]
            value = PyFloat_AsDouble(values[i])
            _reserve(&buf, name_len + PyBytes_GET_SIZE(block) + 2 + MAX_VALUE_TEXT)
            memcpy(buf.data + buf.size, name_ptr, name_len)
            buf.size += name_len
            memcpy(buf.data + buf.size, PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block))
            buf.size += PyBytes_GET_SIZE(block)
            buf.data[buf.size] = b' '
            buf.size += 1
            _put_value(&buf, value)
            _put(&buf, b"\n", 1)
        _PyBytes_Resize(&out, buf.size)  # on failure it frees the object and sets out NULL
        result = <object>out
    finally:
        if out != NULL:
            Py_DECREF(<object>out)
    return result
