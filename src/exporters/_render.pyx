# cython: language_level=3
"""Compiled text-format writer of the exporters' big per-scenario families.

``render_rows`` writes ``<name><label block> <value>\n`` for every row straight into one bytes
object: no Sample tuples, no per-line str objects, no join of a multi-MB list. Values are
formatted exactly like prometheus_client.utils.floatToGoString: Python's repr (the shortest
text that reads back as the same double), ``+Inf``/``-Inf``/``NaN``, and Go's exponent form for
positive values with more than six integer digits. Tests compare the output byte for byte with
prometheus_client's generate_latest and with ``repr`` on millions of doubles.

The shortest digits come from CPython's own ``PyOS_double_to_string`` (what ``repr`` calls):
about 0.3-0.5 us per value, some 15 ms of a refresh on a large run, well inside the refresh target
(benchmarks/README.md), so no float formatter of our own is kept.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport isinf, isnan
from libc.string cimport memcpy, strlen

cdef extern from "Python.h":
    double PyFloat_AsDouble(object) except? -1.0
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    char* PyOS_double_to_string(double value, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0

# Longest value text: repr of a double is at most 24 characters ("-2.2250738585072014e-308";
# fixed notation stops at 17 digits, leading zeros at "0.000"), the Go form of large numbers
# moves the dot and adds "e+NN" (repr + 4); NaN and infinities are 3-4.
cdef enum:
    MAX_VALUE_TEXT = 32


cdef Py_ssize_t _repr_double(double value, char* out) except -1:
    # repr(value) of a finite double into out (at most MAX_VALUE_TEXT characters)
    cdef char* text = PyOS_double_to_string(value, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    cdef Py_ssize_t length = strlen(text)
    try:
        if length > MAX_VALUE_TEXT - 8:  # _put_value may add an exponent
            raise OverflowError("repr of a double longer than expected")
        memcpy(out, text, length)
    finally:
        PyMem_Free(text)
    return length


def _repr_text(double value) -> str:
    """``repr(value)`` of a finite float as the writer formats it (tests compare both)."""
    cdef char text[MAX_VALUE_TEXT]
    if isnan(value) or isinf(value):
        raise ValueError("finite values only")
    return text[:_repr_double(value, text)].decode("ascii")


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
    cdef char text[MAX_VALUE_TEXT]
    cdef Py_ssize_t length, dot, i, end
    cdef char exponent[8]
    if isnan(value):
        return _put(buf, b"NaN", 3)
    if isinf(value):
        return _put(buf, b"+Inf" if value > 0 else b"-Inf", 4)
    length = _repr_double(value, text)
    dot = -1
    for i in range(length):
        if text[i] == b'.':
            dot = i
            break
    if not (value > 0 and dot > 6):
        return _put(buf, text, length)
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
    return _put(buf, exponent, 4)


def render_rows(bytes name, list blocks, list values, bytes head=b""):
    """``head`` then the sample lines ``name + blocks[i] + b" " + value + b"\\n"`` of one family.

    ``blocks`` are encoded label blocks (b'{a="x"}' or b''), ``values`` numbers (float() of
    each is written). The text is written into one buffer sized from a bound of its length
    (no growing buffer), then copied once into the result.
    """
    cdef Py_ssize_t n = len(values), i, name_len = PyBytes_GET_SIZE(name)
    cdef Py_ssize_t bound = PyBytes_GET_SIZE(head)
    cdef const char* name_ptr = PyBytes_AS_STRING(name)
    cdef bytes block
    cdef double value
    cdef Buffer buf
    if len(blocks) != n:
        raise ValueError("render_rows: one label block per value expected")
    for i in range(n):
        bound += name_len + PyBytes_GET_SIZE(<bytes?>blocks[i]) + 2 + MAX_VALUE_TEXT
    buf.data = <char*>PyMem_Malloc(bound if bound > 0 else 1)
    if buf.data == NULL:
        raise MemoryError()
    try:
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
        # One copy of the family's text into its bytes object (a family is at most a few
        # hundred kB; the whole body is many families).
        return PyBytes_FromStringAndSize(buf.data, buf.size)
    finally:
        PyMem_Free(buf.data)


def label_block(tuple parts, tuple order, object values):
    """The encoded label block ``parts[0] v0 parts[1] v1 ... parts[n]`` of one label set.

    ``v_k`` is the UTF-8 of ``values[order[k]]`` (each a str) with backslash, newline and
    double quote escaped as the text format wants; ``parts`` are the encoded names and quotes
    around them (``b'{a="'``, ``b'",b="'``, ``b'"}'``), one more than ``order``.
    """
    cdef Py_ssize_t n = len(order), k, j, size, total = 0
    cdef const char* text
    cdef const char** texts = NULL
    cdef Py_ssize_t* sizes = NULL
    cdef char* out
    cdef char c
    cdef bytes part, result
    cdef list held = []  # the value objects own the UTF-8 texts read below
    if len(parts) != n + 1:
        raise ValueError("label_block: one more part than values expected")
    for k in range(n + 1):
        total += PyBytes_GET_SIZE(<bytes?>parts[k])
    texts = <const char**>PyMem_Malloc((n + 1) * sizeof(const char*))
    sizes = <Py_ssize_t*>PyMem_Malloc((n + 1) * sizeof(Py_ssize_t))
    if texts == NULL or sizes == NULL:
        PyMem_Free(texts)
        PyMem_Free(sizes)
        raise MemoryError()
    try:
        for k in range(n):
            value = values[<Py_ssize_t?>order[k]]
            if type(value) is not str:
                raise TypeError(f"label values must be str, not {type(value).__name__}")
            held.append(value)
            text = PyUnicode_AsUTF8AndSize(value, &size)
            texts[k] = text
            sizes[k] = size
            total += size
            for j in range(size):
                c = text[j]
                if c == b'\\' or c == b'\n' or c == b'"':
                    total += 1
        result = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(result)
        for k in range(n + 1):
            part = <bytes>parts[k]
            memcpy(out, PyBytes_AS_STRING(part), PyBytes_GET_SIZE(part))
            out += PyBytes_GET_SIZE(part)
            if k == n:
                break
            text = texts[k]
            for j in range(sizes[k]):
                c = text[j]
                if c == b'\\':
                    out[0] = b'\\'
                    out[1] = b'\\'
                    out += 2
                elif c == b'\n':
                    out[0] = b'\\'
                    out[1] = b'n'
                    out += 2
                elif c == b'"':
                    out[0] = b'\\'
                    out[1] = b'"'
                    out += 2
                else:
                    out[0] = c
                    out += 1
    finally:
        PyMem_Free(texts)
        PyMem_Free(sizes)
    return result
