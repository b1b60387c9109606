"""C++ snippets shared by the offline template families: includes, fast exp, horizontal
reductions, OpenMP pragmas and an 8-wide row loop with unrolling, alignment peel and tail.

Everything returns plain C++ text; families splice in only what their parameters select.
"""

from __future__ import annotations

import textwrap

INCLUDES = """\
#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
"""

# -ftrapping-math (GCC's default) keeps the vectorizer from if-converting the clamps in ks_expf,
# so `#pragma omp simd` loops that call it would stay scalar. The kernels never read FP flags.
NO_TRAPPING_MATH = ('#pragma GCC optimize("no-trapping-math")  '
                    '// lets `omp simd` if-convert the clamps in ks_expf\n')

EXP_SCALAR = """\
// e^x, Cephes-style: x = n*ln2 + r with |r| <= ln2/2, degree-7 polynomial for e^r, times 2^n
// built in the exponent bits. Max relative error ~1.5 ulp for x in [-87.3, 88]. x is clamped to
// [-88, 88]: below about -87.7, n = -127 makes 2^n exactly 0, so e^x = 0 (no denormals); above 88
// it saturates at e^88 ~ 1.65e38 (finite). Branch-free, so `omp simd` loops vectorize it.
static inline float ks_expf(float x) {
    float xc = x < -88.0f ? -88.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    const float magic = 12582912.0f;                  // 1.5 * 2^23: adding it rounds to an integer
    const float t = xc * 1.44269504088896341f + magic;
    const float n = t - magic;                        // round(x / ln2)
    float r = xc - n * 0.693359375f;                  // ln2 split in two: exact reduction
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    // The low mantissa bits of t hold n; 2^n is (n + 127) << 23 as float bits.
    const int32_t bits = (__builtin_bit_cast(int32_t, t) - 0x4B400000 + 127) << 23;
    // (the select is redundant, 2^n is already 0 there, but without it GCC's vectorizer
    // specializes the clamps into extra blended paths that run ~3x slower)
    return x < -88.0f ? 0.0f : p * __builtin_bit_cast(float, bits);
}
"""

EXP_AVX2 = """\
// e^x for U vectors of 8 lanes, in place: the same clamp, reduction and polynomial as ks_expf,
// with FMA (17 ops per vector). Each step runs over all U vectors before the next, so the U
// independent dependency chains interleave and the out-of-order core overlaps their latencies.
template <int U>
static inline void ks_exp8_n(__m256* v) {
    const __m256 magic = _mm256_set1_ps(12582912.0f), lo = _mm256_set1_ps(-88.0f), hi = _mm256_set1_ps(88.0f);
    __m256 t[U], n[U], r[U], p[U];
    for (int u = 0; u < U; ++u) v[u] = _mm256_min_ps(_mm256_max_ps(v[u], lo), hi);
    for (int u = 0; u < U; ++u) t[u] = _mm256_fmadd_ps(v[u], _mm256_set1_ps(1.44269504088896341f), magic);
    for (int u = 0; u < U; ++u) n[u] = _mm256_sub_ps(t[u], magic);                          // round(x / ln2)
    for (int u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(0.693359375f), v[u]);
    for (int u = 0; u < U; ++u) r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(-2.12194440e-4f), r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r[u],
                                                       _mm256_set1_ps(1.3981999507e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(8.3334519073e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(4.1665795894e-2f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(1.6666665459e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(5.0000001201e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(_mm256_mul_ps(p[u], r[u]), r[u], r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm256_add_ps(p[u], _mm256_set1_ps(1.0f));
    for (int u = 0; u < U; ++u)   // 2^n: the low mantissa bits of t hold n
        v[u] = _mm256_mul_ps(p[u], _mm256_castsi256_ps(_mm256_slli_epi32(
                   _mm256_add_epi32(_mm256_castps_si256(t[u]), _mm256_set1_epi32(127 - 0x4B400000)), 23)));
}

static inline __m256 ks_exp8(__m256 x) {
    ks_exp8_n<1>(&x);
    return x;
}
"""

# 2^t: one FMA takes an exponent to log2 units (e^x = 2^(x log2 e), with whatever shifts or scales
# the caller folds into that FMA), and the 2^f polynomial is degree 5 instead of Cephes' degree 7
# with a two-step ln2 reduction: 7 FMA-pipe ops per vector instead of 11. Only the lower clamp is
# here (softmax and logsumexp take x - max <= 0); a caller whose t can be large adds the upper one.
# Accuracy (measured against double): 6 ulp (3.6e-7) for x in [-1, 0], growing to 17 ulp (1e-6)
# at -20 and 4e-6 at -86 because t itself is rounded in log2 units.
EXP2_AVX2 = """\
// 2^t for U vectors of t <= 126 (the caller clamps above where its t can be larger), in place. t
// is clamped at -126, so the result is at least 2^-126 (normal: no denormal slow path; in a sum of
// exps, 1.2e-38 per term is nothing next to the max's term, 1).
// n = round(t) by the 1.5*2^23 trick, f = t - n in [-0.5, 0.5], 2^f by a degree-5 polynomial
// (Chebyshev fit, 2.3e-7 relative), times 2^n built in the exponent bits. With t = x*log2(e)
// rounded to fp32, e^x is within 6 ulp for x in [-1, 0], 1e-6 relative at x = -20.
template <int U>
static inline void ks_exp2_8_n(__m256* t) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 tm[U], f[U], p[U];
    for (int u = 0; u < U; ++u) t[u] = _mm256_max_ps(t[u], _mm256_set1_ps(-126.0f));
    for (int u = 0; u < U; ++u) tm[u] = _mm256_add_ps(t[u], magic);
    for (int u = 0; u < U; ++u) f[u] = _mm256_sub_ps(t[u], _mm256_sub_ps(tm[u], magic));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(_mm256_set1_ps(1.3395280111581087e-3f), f[u],
                                                       _mm256_set1_ps(9.670763276517391e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], f[u], _mm256_set1_ps(5.550340563058853e-2f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], f[u], _mm256_set1_ps(2.4022211134433746e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], f[u], _mm256_set1_ps(6.931471824645996e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm256_fmadd_ps(p[u], f[u], _mm256_set1_ps(1.0f));
    for (int u = 0; u < U; ++u)   // 2^n: the low mantissa bits of tm hold n
        t[u] = _mm256_mul_ps(p[u], _mm256_castsi256_ps(_mm256_slli_epi32(
                   _mm256_add_epi32(_mm256_castps_si256(tm[u]), _mm256_set1_epi32(127 - 0x4B400000)), 23)));
}
"""

LOG2E = "1.44269504088896341f"

# The scalar form of EXP2_AVX2 (the same clamp, polynomial and FMAs), for the tails of rows whose
# vector part uses it: the exps of one row then carry the same rounding, which the normalization
# cancels (a tail in natural units next to a body in log2 units differs by m*log2(e)'s rounding,
# 2e-5 relative at |m| ~ 400).
EXP2_SCALAR = """\
static inline float ks_exp2f(float t) {   // 2^t for t <= 126
    t = t < -126.0f ? -126.0f : t;
    const float magic = 12582912.0f;
    const float tm = t + magic;
    const float f = t - (tm - magic);
    float p = std::fma(1.3395280111581087e-3f, f, 9.670763276517391e-3f);
    p = std::fma(p, f, 5.550340563058853e-2f);
    p = std::fma(p, f, 2.4022211134433746e-1f);
    p = std::fma(p, f, 6.931471824645996e-1f);
    p = std::fma(p, f, 1.0f);
    const int32_t bits = (__builtin_bit_cast(int32_t, tm) - 0x4B400000 + 127) << 23;
    return p * __builtin_bit_cast(float, bits);
}
"""

HREDUCE_AVX2 = """\
static inline float ks_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float ks_hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
"""

HREDUCE_AVX512 = """\
static inline float ks_hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }
static inline float ks_hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }
"""

# A kernel with 16-lane vectors says so where it is built: on a CPU without AVX-512F,
# -march=native leaves __AVX512F__ undefined and the compile log names the reason (the planner
# does not propose such a kernel there; a model or a replay on another machine might).
AVX512_GUARD = """\
#ifndef __AVX512F__
#error "this kernel uses AVX-512F (16 floats per zmm vector); -march=native does not enable it on this CPU"
#endif
"""

# AVX2 spelling -> AVX-512F spelling, longest first. Every intrinsic the 8-lane vector code of the
# families uses has a same-named 16-lane form; the helpers with a lane count in their name move too.
_ZMM = [("__m256i", "__m512i"), ("__m256", "__m512"), ("_mm256_castsi256_ps", "_mm512_castsi512_ps"),
        ("_mm256_castps_si256", "_mm512_castps_si512"), ("_mm256_", "_mm512_"),
        ("ks_exp8_n", "ks_exp16_n"), ("ks_exp2_8_n", "ks_exp2_16_n"), ("ks_exp8(", "ks_exp16("), ("ks_hsum8(", "ks_hsum16("),
        ("ks_hmax8(", "ks_hmax16("), ("gelu_tanh8_n", "gelu_tanh16_n"), ("silu8_n", "silu16_n"), ("of 8 lanes", "of 16 lanes")]
_YMM_ONLY = ("_mm256", "__m256", "si256", "ps256", "_ps128", "extractf128")


def zmm(code: str) -> str:
    """The AVX-512F form of 8-lane AVX2 code whose lane counts (offsets, steps, alignment) were
    rendered for 16 lanes: the intrinsics' and helpers' names widened. Raises if an AVX2-only
    spelling is left (an intrinsic with no same-named 512-bit form), so a template that uses one
    fails at render time, not as a candidate that computes half a vector."""
    for old, new in _ZMM:
        code = code.replace(old, new)
    left = [t for t in _YMM_ONLY if t in code]
    if left:
        raise ValueError(f"zmm(): no AVX-512 spelling for {left} in:\n{code[:400]}")
    return code


def widener(p: dict):
    """What renders the params' intrinsics code: zmm() where that path (vector = avx2) runs 16
    lanes, else the 8-lane AVX2 text as it is."""
    return zmm if p.get("vector") == "avx2" and lanes(p) == 16 else (lambda code: code)


def lanes(p: dict) -> int:
    """Floats per vector of the intrinsics path: 8 (AVX2 ymm) or 16 (AVX-512 zmm, `simd_width`)."""
    return int(p.get("simd_width", 8))


def tree(op: str, names: list[str]) -> str:
    """Pairwise combination, e.g. op(op(a0, a1), op(a2, a3)): short dependency chains."""
    if len(names) == 1:
        return names[0]
    h = len(names) // 2
    return f"{op}({tree(op, names[:h])}, {tree(op, names[h:])})"


def indent(text: str, n: int) -> str:
    return textwrap.indent(text, " " * n)


def schedule_clause(schedule: str, chunk: int) -> str:
    return f"schedule({schedule}, {chunk})" if chunk else f"schedule({schedule})"


def omp_for(schedule: str, chunk: int, parallel: bool = True, collapse: int = 1) -> str:
    """`#pragma omp [parallel] for schedule(...)` with an optional collapse clause."""
    head = "#pragma omp parallel for" if parallel else "#pragma omp for"
    col = f" collapse({collapse})" if collapse > 1 else ""
    return f"{head}{col} {schedule_clause(schedule, chunk)}"


def rows_loop(call: str, threaded: bool, schedule: str, chunk: int, stream: bool) -> str:
    """`for i in [0, M): call` with an optional OpenMP worksharing pragma; with streaming stores,
    every thread fences its own stores (`_mm_sfence`) before the region ends."""
    loop = f"for (int64_t i = 0; i < M; ++i)\n    {call}"
    if not threaded:
        return loop + ("\n_mm_sfence();  // order the streaming stores before returning" if stream else "")
    if not stream:
        return f"{omp_for(schedule, chunk)}\n{loop}"
    inner = (f"{omp_for(schedule, chunk, parallel=False)}\n{loop}\n"
             "_mm_sfence();  // each thread fences its streaming stores")
    return f"#pragma omp parallel\n{{\n{indent(inner, 4)}\n}}"


def vec_loop(body, scalar: str, unroll: int, begin: str = "0", end: str = "n",
             peel_align: str | None = None, declare: bool = True, group=None, lanes: int = 8) -> str:
    """A `lanes`-wide loop (8: AVX2, 16: AVX-512) over j in [begin, end): `unroll` vectors per
    step, a single-vector loop for the remainder when unrolled, then a scalar tail (`scalar` uses j).

    body(offset, copy): code for one vector, repeated `unroll` times per step; or
    group(k): code for k consecutive vectors starting at j (k = unroll, then 1), for bodies that
    work on arrays of vectors (interleaved exp).
    peel_align: a pointer expression; scalar iterations run first until `ptr + j` is aligned to a
    whole vector (32 or 64 bytes: needed by the streaming stores).
    """
    if group is None:
        group = lambda k: "\n".join(body("j" if u == 0 else f"j + {lanes * u}", u) for u in range(k))  # noqa: E731
    out = [f"int64_t j = {begin};" if declare else f"j = {begin};"]
    if peel_align:
        out.append(f"for (; j < {end} && (reinterpret_cast<uintptr_t>({peel_align} + j) & {4 * lanes - 1}); ++j) {{\n"
                   f"{indent(scalar, 4)}\n}}")
    out.append(f"for (; j + {lanes * unroll} <= {end}; j += {lanes * unroll}) {{\n{indent(group(unroll), 4)}\n}}")
    if unroll > 1:
        out.append(f"for (; j + {lanes} <= {end}; j += {lanes}) {{\n{indent(group(1), 4)}\n}}")
    out.append(f"for (; j < {end}; ++j) {{\n{indent(scalar, 4)}\n}}")
    return "\n".join(out)


def prefetch_lines(ptr: str, floats: int, hint: str) -> str:
    """Software prefetch of the cache lines holding ptr[j : j + floats] (one per 64 bytes)."""
    offs = range(0, max(floats, 16), 16)
    return "\n".join(f"_mm_prefetch(reinterpret_cast<const char*>({ptr} + j{f' + {o}' if o else ''}), _MM_HINT_{hint});"
                     for o in offs)


def next_row_arg(prefetch: bool) -> str:
    """Extra argument of a row function that prefetches the next row (the last row re-reads its own)."""
    return ", x + (i + 1 < M ? i + 1 : i) * N" if prefetch else ""


def store8(stream: bool) -> str:
    """Name of the 8-wide store: streaming (non-temporal, needs 32-byte alignment) or unaligned."""
    return "_mm256_stream_ps" if stream else "_mm256_storeu_ps"


def check_f32(n_inputs: int, ndims: list[int]) -> str:
    """Argument checks at the top of kscout_forward: count, rank and dtype of every input."""
    lines = [f"if (n_inputs < {n_inputs} || output->dtype != KS_F32) return 1;"]
    lines += [f"if (inputs[{i}].dtype != KS_F32 || inputs[{i}].ndim != {nd}) return 1;" for i, nd in enumerate(ndims)]
    return "\n".join(lines)


def span_function(name: str, args: str, scalar: str, vec, p: dict, stream: bool, group=None) -> str:
    """`static void name(args, int64_t n)`: one contiguous run of n elements (pointers already
    offset), as an AVX2 `vec_loop` (8 or 16 lanes, peeling to a vector's alignment of y for
    streaming stores), an
    `omp simd` loop, or a scalar loop, as the params' `vector` and `unroll` axes say."""
    if p["vector"] == "avx2":
        body = vec_loop(vec, scalar, p["unroll"], peel_align="y" if stream else None, group=group, lanes=lanes(p))
    else:
        simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
        body = f"{simd}for (int64_t j = 0; j < n; ++j) {{\n    {scalar}\n}}"
    return f"static void {name}({args}, int64_t n) {{\n{indent(body, 4)}\n}}\n"
