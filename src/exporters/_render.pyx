# cython: language_level=3
"""Compiled text-format writer of the exporters' big per-scenario families.

``render_rows`` writes ``<name><label block> <value>\n`` for every row straight into one bytes
object: no Sample tuples, no per-line str objects, no join of a multi-MB list. Values are
formatted exactly like prometheus_client.utils.floatToGoString: Python's repr (the shortest
text that reads back as the same double), ``+Inf``/``-Inf``/``NaN``, and Go's exponent form for
positive values with more than six integer digits. Tests compare the output byte for byte with
prometheus_client's generate_latest and with ``repr`` on millions of doubles.

The shortest digits come from Ryu (Ulf Adams, "Ryu: fast float-to-string conversion", PLDI
2018) instead of CPython's ``PyOS_double_to_string``: its arbitrary-precision dtoa spends about
0.5 us per value, a fifth of a refresh on the exporters' tens of thousands of values.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from libc.math cimport isinf, isnan
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef extern from "Python.h":
    double PyFloat_AsDouble(object) except? -1.0
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    # Raw forms: the text is written straight into a new bytes object, then shrunk in place.
    PyObject* _new_bytes "PyBytes_FromStringAndSize"(const char* data, Py_ssize_t size) except NULL
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t size) except -1

# Longest value text: repr of a double is at most 24 characters ("-2.2250738585072014e-308";
# fixed notation stops at 17 digits, leading zeros at "0.000"), the Go form of large numbers
# moves the dot and adds "e+NN" (repr + 4); NaN and infinities are 3-4.
cdef enum:
    MAX_VALUE_TEXT = 32


# ---------------------------------------------------------------------------------------------
# Shortest round-trip digits of a double (Ryu)
# ---------------------------------------------------------------------------------------------

cdef enum:
    MANTISSA_BITS = 52
    EXPONENT_BITS = 11
    EXPONENT_BIAS = 1023
    POW5_INV_BITCOUNT = 125
    POW5_BITCOUNT = 125
    # Largest q and i the two branches of _shortest index: exponents of the finite doubles.
    POW5_INV_TABLE_SIZE = 342
    POW5_TABLE_SIZE = 326

# 125-bit approximations of 5^-q (rounded up) and 5^i (truncated), as (low, high) 64-bit words.
# Filled once at import from exact integers (_fill_tables) rather than pasted as constants.
cdef uint64_t _POW5_INV_SPLIT[POW5_INV_TABLE_SIZE][2]
cdef uint64_t _POW5_SPLIT[POW5_TABLE_SIZE][2]


def _fill_tables() -> None:
    mask = (1 << 64) - 1
    for i in range(POW5_INV_TABLE_SIZE):
        power = 5 ** i
        inverse = (1 << (power.bit_length() - 1 + POW5_INV_BITCOUNT)) // power + 1
        _POW5_INV_SPLIT[i][0] = inverse & mask
        _POW5_INV_SPLIT[i][1] = inverse >> 64
    for i in range(POW5_TABLE_SIZE):
        power = 5 ** i
        shift = power.bit_length() - POW5_BITCOUNT
        split = power >> shift if shift >= 0 else power << -shift
        _POW5_SPLIT[i][0] = split & mask
        _POW5_SPLIT[i][1] = split >> 64


_fill_tables()


cdef inline uint32_t _pow5bits(int32_t e) noexcept nogil:
    # bit length of 5^e (1 for e == 0), exact for 0 <= e <= 3528
    return <uint32_t>(((e * 1217359) >> 19) + 1)


cdef inline uint32_t _log10_pow2(int32_t e) noexcept nogil:
    # floor(log10(2^e)), exact for 0 <= e <= 1650
    return <uint32_t>((e * 78913) >> 18)


cdef inline uint32_t _log10_pow5(int32_t e) noexcept nogil:
    # floor(log10(5^e)), exact for 0 <= e <= 2620
    return <uint32_t>((e * 732923) >> 20)


cdef inline bint _multiple_of_pow5(uint64_t value, uint32_t p) noexcept nogil:
    cdef uint32_t count = 0
    while value % 5 == 0:
        value //= 5
        count += 1
    return count >= p


cdef inline bint _multiple_of_pow2(uint64_t value, uint32_t p) noexcept nogil:
    return (value & ((<uint64_t>1 << p) - 1)) == 0  # p < 64 at every call


cdef extern from *:
    """
    /* 64 x 64 -> 128-bit product: one instruction where the compiler has a 128-bit type or
       the intrinsic, else in 32-bit halves (portable C). */
    #if defined(__SIZEOF_INT128__)
    static inline uint64_t advisor_umul128(uint64_t a, uint64_t b, uint64_t* high) {
        unsigned __int128 product = (unsigned __int128)a * b;
        *high = (uint64_t)(product >> 64);
        return (uint64_t)product;
    }
    #elif defined(_MSC_VER) && defined(_M_X64)
    #include <intrin.h>
    static inline uint64_t advisor_umul128(uint64_t a, uint64_t b, uint64_t* high) {
        return _umul128(a, b, high);
    }
    #else
    static inline uint64_t advisor_umul128(uint64_t a, uint64_t b, uint64_t* high) {
        uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32, b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
        uint64_t b00 = a_lo * b_lo, b01 = a_lo * b_hi, b10 = a_hi * b_lo, b11 = a_hi * b_hi;
        uint64_t mid1 = b10 + (b00 >> 32);
        uint64_t mid2 = b01 + (mid1 & 0xFFFFFFFFu);
        *high = b11 + (mid1 >> 32) + (mid2 >> 32);
        return (mid2 << 32) | (b00 & 0xFFFFFFFFu);
    }
    #endif
    """
    uint64_t _umul128 "advisor_umul128"(uint64_t a, uint64_t b, uint64_t* high) noexcept nogil


cdef inline uint64_t _mul_shift(uint64_t m, const uint64_t* mul, int32_t j) noexcept nogil:
    # (m * mul) >> j for the 128-bit mul, m < 2^55; 64 < j < 128 in both branches of _shortest
    cdef uint64_t high0, high1, low1, total
    cdef int32_t dist = j - 64
    low1 = _umul128(m, mul[1], &high1)
    _umul128(m, mul[0], &high0)
    total = high0 + low1
    if total < high0:
        high1 += 1
    if dist <= 0:  # unreachable for doubles; kept so a shift is never undefined
        return total
    return (high1 << (64 - dist)) | (total >> dist)


# "00" "01" ... "99": two digits per division when writing a number
cdef const char* _DIGIT_PAIRS = (
    b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    b"8081828384858687888990919293949596979899")


cdef uint64_t _shortest(uint64_t mantissa_bits, uint32_t exponent_bits,
                        int32_t* exp10) noexcept nogil:
    # The shortest decimal d * 10^exp10 that reads back as the finite, non-zero double with these
    # fields; among equally short ones the nearest (ties to even), as Python's repr chooses.
    cdef int32_t e2, q, k, i, j, removed = 0
    cdef uint64_t m2, mv, vr, vp, vm, output
    cdef uint32_t mm_shift
    cdef bint accept_bounds, vm_trailing_zeros = False, vr_trailing_zeros = False, round_up
    cdef uint32_t last_removed = 0, vr_mod
    if exponent_bits == 0:
        e2 = 1 - EXPONENT_BIAS - MANTISSA_BITS - 2
        m2 = mantissa_bits
    else:
        e2 = <int32_t>exponent_bits - EXPONENT_BIAS - MANTISSA_BITS - 2
        m2 = (<uint64_t>1 << MANTISSA_BITS) | mantissa_bits
    accept_bounds = (m2 & 1) == 0
    # The interval of decimals that round to this double is (4*m2 - 1 - mm_shift, 4*m2 + 2)
    # * 2^e2; the lower gap is half as wide at a power of two.
    mv = 4 * m2
    mm_shift = mantissa_bits != 0 or exponent_bits <= 1
    if e2 >= 0:
        q = <int32_t>_log10_pow2(e2) - (e2 > 3)
        exp10[0] = q
        k = POW5_INV_BITCOUNT + <int32_t>_pow5bits(q) - 1
        i = -e2 + q + k
        vr = _mul_shift(mv, _POW5_INV_SPLIT[q], i)
        vp = _mul_shift(mv + 2, _POW5_INV_SPLIT[q], i)
        vm = _mul_shift(mv - 1 - mm_shift, _POW5_INV_SPLIT[q], i)
        if q <= 21:
            # Only one of mv - 1 - mm_shift, mv, mv + 2 can be a multiple of 5.
            if mv % 5 == 0:
                vr_trailing_zeros = _multiple_of_pow5(mv, q)
            elif accept_bounds:
                vm_trailing_zeros = _multiple_of_pow5(mv - 1 - mm_shift, q)
            else:
                vp -= _multiple_of_pow5(mv + 2, q)
    else:
        q = <int32_t>_log10_pow5(-e2) - (-e2 > 1)
        exp10[0] = q + e2
        i = -e2 - q
        k = <int32_t>_pow5bits(i) - POW5_BITCOUNT
        j = q - k
        vr = _mul_shift(mv, _POW5_SPLIT[i], j)
        vp = _mul_shift(mv + 2, _POW5_SPLIT[i], j)
        vm = _mul_shift(mv - 1 - mm_shift, _POW5_SPLIT[i], j)
        if q <= 1:
            # mv = 4 * m2 has at least two trailing zero bits
            vr_trailing_zeros = True
            if accept_bounds:
                vm_trailing_zeros = mm_shift == 1
            else:
                vp -= 1
        elif q < 63:
            vr_trailing_zeros = _multiple_of_pow2(mv, q)
    if vm_trailing_zeros or vr_trailing_zeros:
        # The rare general case: exact ties and a representable lower bound.
        while vp // 10 > vm // 10:
            vm_trailing_zeros = vm_trailing_zeros and vm % 10 == 0
            vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
            last_removed = <uint32_t>(vr % 10)
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        if vm_trailing_zeros:
            while vm % 10 == 0:
                vr_trailing_zeros = vr_trailing_zeros and last_removed == 0
                last_removed = <uint32_t>(vr % 10)
                vr //= 10
                vp //= 10
                vm //= 10
                removed += 1
        if vr_trailing_zeros and last_removed == 5 and vr % 2 == 0:
            last_removed = 4  # exactly halfway: round to even
        output = vr + ((vr == vm and (not accept_bounds or not vm_trailing_zeros))
                       or last_removed >= 5)
    else:
        round_up = False
        if vp // 100 > vm // 100:  # two digits at a time, most values
            vr_mod = <uint32_t>(vr % 100)
            round_up = vr_mod >= 50
            vr //= 100
            vp //= 100
            vm //= 100
            removed += 2
        while vp // 10 > vm // 10:
            vr_mod = <uint32_t>(vr % 10)
            round_up = vr_mod >= 5
            vr //= 10
            vp //= 10
            vm //= 10
            removed += 1
        output = vr + (vr == vm or round_up)
    exp10[0] += removed
    return output


cdef Py_ssize_t _repr_double(double value, char* out) noexcept nogil:
    # repr(value) of a finite double into out (at most 24 characters); returns the length
    cdef uint64_t bits, digits_value
    cdef int32_t exp10, point, exponent
    cdef int n, i, pair
    cdef Py_ssize_t size = 0
    cdef char buffer[24]
    cdef char* digits
    memcpy(&bits, &value, 8)
    if bits >> 63:
        out[0] = b'-'
        size = 1
    if (bits << 1) == 0:  # +0.0 or -0.0
        memcpy(out + size, b"0.0", 3)
        return size + 3
    digits_value = _shortest(bits & ((<uint64_t>1 << MANTISSA_BITS) - 1),
                             <uint32_t>((bits >> MANTISSA_BITS) & ((1 << EXPONENT_BITS) - 1)),
                             &exp10)
    # Written from the end of the buffer, two digits per division (at most 17 digits).
    i = 24
    while digits_value >= 100 and i >= 2:
        pair = <int>(digits_value % 100)
        digits_value //= 100
        i -= 2
        buffer[i] = _DIGIT_PAIRS[2 * pair]
        buffer[i + 1] = _DIGIT_PAIRS[2 * pair + 1]
    if digits_value >= 10:
        i -= 2
        buffer[i] = _DIGIT_PAIRS[2 * digits_value]
        buffer[i + 1] = _DIGIT_PAIRS[2 * digits_value + 1]
    else:
        i -= 1
        buffer[i] = <char>(48 + digits_value)
    digits = buffer + i
    n = 24 - i
    # value = 0.d1d2...dn * 10^point; repr switches to the exponent form outside 1e-4 <= |v| < 1e16
    point = exp10 + n
    if point <= -4 or point > 16:
        out[size] = digits[0]
        size += 1
        if n > 1:
            out[size] = b'.'
            memcpy(out + size + 1, digits + 1, n - 1)
            size += n
        exponent = point - 1
        out[size] = b'e'
        out[size + 1] = b'-' if exponent < 0 else b'+'
        size += 2
        if exponent < 0:
            exponent = -exponent
        if exponent >= 100:
            out[size] = <char>(48 + exponent // 100)
            size += 1
        out[size] = <char>(48 + exponent // 10 % 10)
        out[size + 1] = <char>(48 + exponent % 10)
        return size + 2
    if point <= 0:
        out[size] = b'0'
        out[size + 1] = b'.'
        size += 2
        for i in range(-point):
            out[size + i] = b'0'
        size += -point
        memcpy(out + size, digits, n)
        return size + n
    if point >= n:
        memcpy(out + size, digits, n)
        size += n
        for i in range(point - n):
            out[size + i] = b'0'
        size += point - n
        out[size] = b'.'
        out[size + 1] = b'0'
        return size + 2
    memcpy(out + size, digits, point)
    out[size + point] = b'.'
    memcpy(out + size + point + 1, digits + point, n - point)
    return size + n + 1


def _repr_text(double value) -> str:
    """``repr(value)`` of a finite float written by the compiled formatter (tests compare both)."""
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
