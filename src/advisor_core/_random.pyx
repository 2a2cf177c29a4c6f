# cython: language_level=3, annotation_typing=False
"""Bootstrap resample indices identical to numpy's, without importing numpy.

``resample_indices(n, n_bootstrap, seed)`` returns, bit for bit, what
``np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n)).ravel()`` returns (numpy 2.x),
so the model-training path gives the same bootstrap whether or not the process has numpy loaded
(the results exporter must not load it: ~20 MB of resident memory).

The chain transcribed from numpy's sources:

- ``SeedSequence(seed)`` (numpy/random/bit_generator.pyx): the int is split into little-endian
  32-bit words, hashed into a pool of 4 words (``mix_entropy``), and ``generate_state(4, uint64)``
  draws 8 words, paired little-endian into 4 uint64.
- ``PCG64`` (numpy/random/_pcg64.pyx, src/pcg64/pcg64.h): ``pcg64_set_seed(seed = words[0:2],
  inc = words[2:4])``, each pair read as (high, low) of a 128-bit number; the LCG multiplies by
  the 128-bit default multiplier, the output is XSL-RR of the new state. ``next_uint32`` hands
  out the low half of a 64-bit draw and keeps the high half for the next call.
- ``Generator.integers`` with int64 (numpy/random/_bounded_integers.pyx,
  src/distributions/distributions.c ``random_bounded_uint64_fill``): range ``rng = n - 1``;
  ``rng == 0`` gives zeros, ``rng == 0xFFFFFFFF`` gives raw ``next_uint32``, smaller ranges use
  Lemire's rejection on ``next_uint32``, larger ones Lemire's rejection on ``next_uint64``.

The 128-bit LCG uses ``unsigned __int128`` where the compiler has it (GCC, Clang) and two 64-bit
halves otherwise (MSVC). The two-halves code is compiled everywhere so tests run it on GCC too.
"""

from array import array as _array
from os import urandom as _urandom
from sys import maxsize as _MAXSIZE

from cpython cimport array
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__SIZEOF_INT128__) && !defined(ADVISOR_FORCE_EMULATED_128)
    #define ADV_HAVE_INT128 1
    typedef unsigned __int128 adv_u128;
    #else
    #define ADV_HAVE_INT128 0
    #endif

    static const uint32_t ADV_INIT_A = 0x43b0d7e5u;
    static const uint32_t ADV_MULT_A = 0x931e8875u;
    static const uint32_t ADV_INIT_B = 0x8b51f9ddu;
    static const uint32_t ADV_MULT_B = 0x58f38dedu;
    static const uint32_t ADV_MIX_MULT_L = 0xca01f9ddu;
    static const uint32_t ADV_MIX_MULT_R = 0x4973f715u;

    /* PCG_DEFAULT_MULTIPLIER_128 = PCG_128BIT_CONSTANT(high, low). */
    #define ADV_PCG_MULT_HIGH 2549297995355413924ULL
    #define ADV_PCG_MULT_LOW 4865540595714422341ULL

    typedef struct {
        uint64_t high;
        uint64_t low;
    } adv_halves;

    typedef struct {
    #if ADV_HAVE_INT128
        adv_u128 state;
        adv_u128 inc;
    #endif
        adv_halves state_h;
        adv_halves inc_h;
        int emulated;
        int has_uint32;
        uint32_t uinteger;
    } adv_pcg64;

    /* (64 - rot) rather than -rot: MSVC rejects unary minus on unsigned under /sdl. */
    static inline uint64_t adv_rotr64(uint64_t value, unsigned int rot) {
        return (value >> rot) | (value << ((64u - rot) & 63u));
    }

    /* High 64 bits of x * y from 32-bit pieces (numpy's _pcg_mult64 portable branch). */
    static inline uint64_t adv_umulh_halves(uint64_t x, uint64_t y) {
        uint64_t x0 = x & 0xFFFFFFFFULL, x1 = x >> 32;
        uint64_t y0 = y & 0xFFFFFFFFULL, y1 = y >> 32;
        uint64_t w0 = x0 * y0;
        uint64_t t = x1 * y0 + (w0 >> 32);
        uint64_t w1 = (t & 0xFFFFFFFFULL) + x0 * y1;
        return x1 * y1 + (t >> 32) + (w1 >> 32);
    }

    static inline uint64_t adv_umulh(const adv_pcg64 *g, uint64_t x, uint64_t y) {
    #if ADV_HAVE_INT128
        if (!g->emulated) {
            return (uint64_t)(((adv_u128)x * y) >> 64);
        }
    #endif
        return adv_umulh_halves(x, y);
    }

    static inline void adv_step_halves(adv_pcg64 *g) {
        adv_halves s = g->state_h, r;
        uint64_t cross = s.high * ADV_PCG_MULT_LOW + s.low * ADV_PCG_MULT_HIGH;
        r.low = s.low * ADV_PCG_MULT_LOW;
        r.high = adv_umulh_halves(s.low, ADV_PCG_MULT_LOW) + cross;
        g->state_h.low = r.low + g->inc_h.low;
        g->state_h.high = r.high + g->inc_h.high + (g->state_h.low < g->inc_h.low);
    }

    #if ADV_HAVE_INT128
    static inline void adv_step_native(adv_pcg64 *g) {
        const adv_u128 mult = ((adv_u128)ADV_PCG_MULT_HIGH << 64) | ADV_PCG_MULT_LOW;
        g->state = g->state * mult + g->inc;
    }
    #endif

    /* One step of the LCG, then XSL-RR of the new state (pcg_setseq_128_xsl_rr_64_random_r). */
    static inline uint64_t adv_pcg64_next64(adv_pcg64 *g) {
        uint64_t high, low;
    #if ADV_HAVE_INT128
        if (!g->emulated) {
            adv_step_native(g);
            high = (uint64_t)(g->state >> 64);
            low = (uint64_t)g->state;
            return adv_rotr64(high ^ low, (unsigned int)(high >> 58));
        }
    #endif
        adv_step_halves(g);
        high = g->state_h.high;
        low = g->state_h.low;
        return adv_rotr64(high ^ low, (unsigned int)(high >> 58));
    }

    /* pcg64_set_seed(state, seed = words[0..1], inc = words[2..3]): each pair is (high, low);
       then pcg_setseq_128_srandom_r. emulated != 0 selects the two-halves arithmetic. */
    static void adv_pcg64_seed(adv_pcg64 *g, const uint64_t *words, int emulated) {
        memset(g, 0, sizeof(*g));
        g->emulated = emulated || !ADV_HAVE_INT128;
    #if ADV_HAVE_INT128
        if (!g->emulated) {
            adv_u128 initstate = ((adv_u128)words[0] << 64) | words[1];
            adv_u128 initseq = ((adv_u128)words[2] << 64) | words[3];
            g->state = 0;
            g->inc = (initseq << 1) | 1u;
            adv_step_native(g);
            g->state += initstate;
            adv_step_native(g);
            return;
        }
    #endif
        g->state_h.high = 0;
        g->state_h.low = 0;
        g->inc_h.high = (words[2] << 1) | (words[3] >> 63);
        g->inc_h.low = (words[3] << 1) | 1u;
        adv_step_halves(g);
        g->state_h.low += words[1];
        g->state_h.high += words[0] + (g->state_h.low < words[1]);
        adv_step_halves(g);
    }
    """
    int ADV_HAVE_INT128
    const uint32_t ADV_INIT_A
    const uint32_t ADV_MULT_A
    const uint32_t ADV_INIT_B
    const uint32_t ADV_MULT_B
    const uint32_t ADV_MIX_MULT_L
    const uint32_t ADV_MIX_MULT_R

    ctypedef struct adv_pcg64:
        int has_uint32
        uint32_t uinteger

    void adv_pcg64_seed(adv_pcg64* g, const uint64_t* words, int emulated) noexcept nogil
    uint64_t adv_pcg64_next64(adv_pcg64* g) noexcept nogil
    uint64_t adv_umulh(const adv_pcg64* g, uint64_t x, uint64_t y) noexcept nogil


# SeedSequence's DEFAULT_POOL_SIZE and XSHIFT (half of a 32-bit word).
cdef enum:
    POOL_SIZE = 4
    XSHIFT = 16
# numpy's bound for `high` of int64 integers (exclusive): high - 1 must fit in an int64.
_MAX_N = 2**63
cdef array.array _INT64_TEMPLATE = _array("q")

#: Whether this build runs the LCG on a native 128-bit integer (else on two 64-bit halves).
HAVE_INT128 = bool(ADV_HAVE_INT128)


cdef inline uint32_t _hashmix(uint32_t value, uint32_t* hash_const) noexcept nogil:
    value ^= hash_const[0]
    hash_const[0] *= ADV_MULT_A
    value *= hash_const[0]
    value ^= value >> XSHIFT
    return value


cdef inline uint32_t _mix(uint32_t x, uint32_t y) noexcept nogil:
    cdef uint32_t result = ADV_MIX_MULT_L * x - ADV_MIX_MULT_R * y
    result ^= result >> XSHIFT
    return result


cdef void _seed_sequence_state(const uint32_t* entropy, Py_ssize_t n_entropy,
                               uint64_t* out) noexcept nogil:
    """SeedSequence(entropy).generate_state(4, np.uint64) for run entropy without spawn key."""
    cdef uint32_t pool[POOL_SIZE]
    cdef uint32_t words[2 * POOL_SIZE]
    cdef uint32_t hash_const = ADV_INIT_A
    cdef uint32_t value
    cdef Py_ssize_t i, i_src, i_dst
    for i in range(POOL_SIZE):
        pool[i] = _hashmix(entropy[i] if i < n_entropy else 0, &hash_const)
    for i_src in range(POOL_SIZE):
        for i_dst in range(POOL_SIZE):
            if i_src != i_dst:
                pool[i_dst] = _mix(pool[i_dst], _hashmix(pool[i_src], &hash_const))
    for i_src in range(POOL_SIZE, n_entropy):
        for i_dst in range(POOL_SIZE):
            pool[i_dst] = _mix(pool[i_dst], _hashmix(entropy[i_src], &hash_const))
    hash_const = ADV_INIT_B
    for i in range(2 * POOL_SIZE):
        value = pool[i % POOL_SIZE] ^ hash_const
        hash_const *= ADV_MULT_B
        value *= hash_const
        value ^= value >> XSHIFT
        words[i] = value
    # numpy views the uint32 words as little-endian uint64 pairs.
    for i in range(POOL_SIZE):
        out[i] = <uint64_t>words[2 * i] | (<uint64_t>words[2 * i + 1] << 32)


cdef inline uint32_t _next32(adv_pcg64* g) noexcept nogil:
    cdef uint64_t x
    if g.has_uint32:
        g.has_uint32 = 0
        return g.uinteger
    x = adv_pcg64_next64(g)
    g.has_uint32 = 1
    g.uinteger = <uint32_t>(x >> 32)
    return <uint32_t>x


cdef void _fill_bounded(adv_pcg64* g, uint64_t rng, int64_t* out,
                        Py_ssize_t count) noexcept nogil:
    """random_bounded_uint64_fill(off=0, rng, use_masked=False): uniform draws in [0, rng]."""
    cdef Py_ssize_t i
    cdef uint32_t rng32, excl32, threshold32
    cdef uint64_t m32, excl64, threshold64, x, leftover64
    if rng == 0:
        for i in range(count):
            out[i] = 0
    elif rng == 0xFFFFFFFFu:
        # Lemire's 32-bit method cannot take rng + 1 == 2**32; numpy draws raw 32-bit words.
        for i in range(count):
            out[i] = _next32(g)
    elif rng < 0xFFFFFFFFu:
        rng32 = <uint32_t>rng
        excl32 = rng32 + 1
        threshold32 = (<uint32_t>~rng32) % excl32
        for i in range(count):
            m32 = <uint64_t>_next32(g) * excl32
            while <uint32_t>m32 < threshold32:
                m32 = <uint64_t>_next32(g) * excl32
            out[i] = <int64_t>(m32 >> 32)
    else:
        # rng < 2**63 here (n <= 2**63), so rng + 1 does not wrap.
        excl64 = rng + 1
        threshold64 = (~rng) % excl64
        for i in range(count):
            x = adv_pcg64_next64(g)
            leftover64 = x * excl64
            while leftover64 < threshold64:
                x = adv_pcg64_next64(g)
                leftover64 = x * excl64
            out[i] = <int64_t>adv_umulh(g, x, excl64)


def _entropy_words(seed: object) -> list:
    """numpy's _int_to_uint32_array: a non-negative int as little-endian 32-bit words."""
    if seed is None:
        # What SeedSequence(None) does: 128 bits of fresh OS entropy.
        seed = int.from_bytes(_urandom(16), "little")
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(
            "seed must be a non-negative int or None, not "
            f"{type(seed).__module__}.{type(seed).__qualname__}; other seeds (Generator, "
            "SeedSequence, arrays) need numpy.random.default_rng"
        )
    elif seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed} (numpy: expected "
                         "non-negative integer)")
    seed = int(seed)
    if seed == 0:
        return [0]
    words = []
    while seed:
        words.append(seed & 0xFFFFFFFF)
        seed >>= 32
    return words


def _integers(high: object, count: object, seed: object, bint emulated) -> array.array:
    """``default_rng(seed).integers(0, high, size=count)`` as array('q'); emulated=True runs the
    two-64-bit-halves arithmetic (the MSVC build) instead of the native 128-bit one."""
    cdef Py_ssize_t i, n_words, n_out = count
    cdef uint64_t state_words[POOL_SIZE]
    cdef uint32_t* entropy
    cdef adv_pcg64 gen
    cdef uint64_t rng = <uint64_t>(high - 1)
    cdef array.array out
    words = _entropy_words(seed)
    n_words = len(words)
    entropy = <uint32_t*>PyMem_Malloc(n_words * sizeof(uint32_t))
    if entropy == NULL:
        raise MemoryError()
    for i in range(n_words):
        entropy[i] = <uint32_t>words[i]
    _seed_sequence_state(entropy, n_words, state_words)
    PyMem_Free(entropy)
    adv_pcg64_seed(&gen, state_words, emulated)
    out = array.clone(_INT64_TEMPLATE, n_out, False)
    with nogil:
        _fill_bounded(&gen, rng, <int64_t*>out.data.as_voidptr, n_out)
    return out


def _checked_count(n: object, n_bootstrap: object) -> int:
    """Validate the arguments of resample_indices; return the number of indices."""
    for value, name in ((n, "n"), (n_bootstrap, "n_bootstrap")):
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    n = n.__index__()
    n_bootstrap = n_bootstrap.__index__()
    if n < 1:
        raise ValueError(f"n must be >= 1 (indices are drawn from range(n)), got {n}")
    if n > _MAX_N:
        raise ValueError(f"n must be <= 2**63 (numpy's int64 bound), got {n}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")
    if n * n_bootstrap > _MAXSIZE // 8:
        raise ValueError(
            f"n * n_bootstrap = {n * n_bootstrap} indices of 8 bytes exceed the addressable size"
        )
    return n * n_bootstrap


def resample_indices(n: int, n_bootstrap: int, seed: int | None) -> array.array:
    """Bootstrap row indices in [0, n): n_bootstrap rows of n, flat row-major int64 array('q').

    Equal to ``np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n)).ravel()`` for
    any int ``seed >= 0``; ``seed=None`` draws 128 bits of OS entropy like numpy. Other seed
    types (numpy Generator, SeedSequence, arrays, bool, float) raise TypeError: callers that
    accept them hand them to numpy.
    """
    count = _checked_count(n, n_bootstrap)
    return _integers(n.__index__(), count, seed, False)
