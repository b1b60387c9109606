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
             peel_align: str | None = None, declare: bool = True, group=None) -> str:
    """An 8-wide loop over j in [begin, end): `unroll` vectors per step, a single-vector loop for
    the remainder when unrolled, then a scalar tail (`scalar` uses j).

    body(offset, copy): code for one vector, repeated `unroll` times per step; or
    group(k): code for k consecutive vectors starting at j (k = unroll, then 1), for bodies that
    work on arrays of vectors (interleaved exp).
    peel_align: a pointer expression; scalar iterations run first until `ptr + j` is 32-byte
    aligned (needed by _mm256_stream_ps).
    """
    if group is None:
        group = lambda k: "\n".join(body("j" if u == 0 else f"j + {8 * u}", u) for u in range(k))  # noqa: E731
    out = [f"int64_t j = {begin};" if declare else f"j = {begin};"]
    if peel_align:
        out.append(f"for (; j < {end} && (reinterpret_cast<uintptr_t>({peel_align} + j) & 31); ++j) {{\n"
                   f"{indent(scalar, 4)}\n}}")
    out.append(f"for (; j + {8 * unroll} <= {end}; j += {8 * unroll}) {{\n{indent(group(unroll), 4)}\n}}")
    if unroll > 1:
        out.append(f"for (; j + 8 <= {end}; j += 8) {{\n{indent(group(1), 4)}\n}}")
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
    offset), as an AVX2 `vec_loop` (peeling to 32-byte alignment of y for streaming stores), an
    `omp simd` loop, or a scalar loop, as the params' `vector` and `unroll` axes say."""
    if p["vector"] == "avx2":
        body = vec_loop(vec, scalar, p["unroll"], peel_align="y" if stream else None, group=group)
    else:
        simd = "#pragma omp simd\n" if p["vector"] == "omp_simd" else ""
        body = f"{simd}for (int64_t j = 0; j < n; ++j) {{\n    {scalar}\n}}"
    return f"static void {name}({args}, int64_t n) {{\n{indent(body, 4)}\n}}\n"
