// strategy: AVX2/FMA intrinsics with a vectorized exp and multiple accumulators + OpenMP parallel for over rows + widen the intrinsics to AVX-512: 16 floats per zmm vector + software-prefetch the next row while computing exps, so the next row's max sweep hits cache + multiply by 1/sum instead of dividing every element + non-temporal (streaming) stores for the output + cheaper exp for x - max <= 0: one FMA to log2 units with the max folded in, lower clamp only, degree-5 2^f polynomial
// kscout offline template: softmax
// strategy: three sweeps per row; OpenMP over rows; AVX-512 x4; exp2 polynomial, max folded; multiply by reciprocal; streaming stores (exps in a per-thread scratch row); prefetch next row (T0)
//   chunk = 0
//   exp = exp2
//   math = poly
//   normalize = reciprocal
//   passes = three
//   prefetch = next_row
//   prefetch_hint = T0
//   schedule = static
//   simd_width = 16
//   store = stream
//   threads = rows
//   unroll = 4
//   vector = avx2


#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

#ifndef __AVX512F__
#error "this kernel uses AVX-512F (16 floats per zmm vector); -march=native does not enable it on this CPU"
#endif

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

// e^x for U vectors of 16 lanes, in place: the same clamp, reduction and polynomial as ks_expf,
// with FMA (17 ops per vector). Each step runs over all U vectors before the next, so the U
// independent dependency chains interleave and the out-of-order core overlaps their latencies.
template <int U>
static inline void ks_exp16_n(__m512* v) {
    const __m512 magic = _mm512_set1_ps(12582912.0f), lo = _mm512_set1_ps(-88.0f), hi = _mm512_set1_ps(88.0f);
    __m512 t[U], n[U], r[U], p[U];
    for (int u = 0; u < U; ++u) v[u] = _mm512_min_ps(_mm512_max_ps(v[u], lo), hi);
    for (int u = 0; u < U; ++u) t[u] = _mm512_fmadd_ps(v[u], _mm512_set1_ps(1.44269504088896341f), magic);
    for (int u = 0; u < U; ++u) n[u] = _mm512_sub_ps(t[u], magic);                          // round(x / ln2)
    for (int u = 0; u < U; ++u) r[u] = _mm512_fnmadd_ps(n[u], _mm512_set1_ps(0.693359375f), v[u]);
    for (int u = 0; u < U; ++u) r[u] = _mm512_fnmadd_ps(n[u], _mm512_set1_ps(-2.12194440e-4f), r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r[u],
                                                       _mm512_set1_ps(1.3981999507e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], r[u], _mm512_set1_ps(8.3334519073e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], r[u], _mm512_set1_ps(4.1665795894e-2f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], r[u], _mm512_set1_ps(1.6666665459e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], r[u], _mm512_set1_ps(5.0000001201e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(_mm512_mul_ps(p[u], r[u]), r[u], r[u]);
    for (int u = 0; u < U; ++u) p[u] = _mm512_add_ps(p[u], _mm512_set1_ps(1.0f));
    for (int u = 0; u < U; ++u)   // 2^n: the low mantissa bits of t hold n
        v[u] = _mm512_mul_ps(p[u], _mm512_castsi512_ps(_mm512_slli_epi32(
                   _mm512_add_epi32(_mm512_castps_si512(t[u]), _mm512_set1_epi32(127 - 0x4B400000)), 23)));
}

static inline __m512 ks_exp16(__m512 x) {
    ks_exp16_n<1>(&x);
    return x;
}

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

// 2^t for U vectors of t <= 126 (the caller clamps above where its t can be larger), in place. t
// is clamped at -126, so the result is at least 2^-126 (normal: no denormal slow path; in a sum of
// exps, 1.2e-38 per term is nothing next to the max's term, 1).
// n = round(t) by the 1.5*2^23 trick, f = t - n in [-0.5, 0.5], 2^f by a degree-5 polynomial
// (Chebyshev fit, 2.3e-7 relative), times 2^n built in the exponent bits. With t = x*log2(e)
// rounded to fp32, e^x is within 6 ulp for x in [-1, 0], 1e-6 relative at x = -20.
template <int U>
static inline void ks_exp2_16_n(__m512* t) {
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 tm[U], f[U], p[U];
    for (int u = 0; u < U; ++u) t[u] = _mm512_max_ps(t[u], _mm512_set1_ps(-126.0f));
    for (int u = 0; u < U; ++u) tm[u] = _mm512_add_ps(t[u], magic);
    for (int u = 0; u < U; ++u) f[u] = _mm512_sub_ps(t[u], _mm512_sub_ps(tm[u], magic));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(_mm512_set1_ps(1.3395280111581087e-3f), f[u],
                                                       _mm512_set1_ps(9.670763276517391e-3f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], f[u], _mm512_set1_ps(5.550340563058853e-2f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], f[u], _mm512_set1_ps(2.4022211134433746e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], f[u], _mm512_set1_ps(6.931471824645996e-1f));
    for (int u = 0; u < U; ++u) p[u] = _mm512_fmadd_ps(p[u], f[u], _mm512_set1_ps(1.0f));
    for (int u = 0; u < U; ++u)   // 2^n: the low mantissa bits of tm hold n
        t[u] = _mm512_mul_ps(p[u], _mm512_castsi512_ps(_mm512_slli_epi32(
                   _mm512_add_epi32(_mm512_castps_si512(tm[u]), _mm512_set1_epi32(127 - 0x4B400000)), 23)));
}

static inline float ks_hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }
static inline float ks_hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }

static void softmax_row(const float* x, float* y, int64_t n, float* t, const float* nx) {
    // sweep 1: row max, 4 vector accumulator(s) + a scalar one for the tail
    __m512 vm[4];
    for (int u = 0; u < 4; ++u) vm[u] = _mm512_set1_ps(-FLT_MAX);
    float mt = -FLT_MAX;
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        vm[0] = _mm512_max_ps(vm[0], _mm512_loadu_ps(x + j));
        vm[1] = _mm512_max_ps(vm[1], _mm512_loadu_ps(x + j + 16));
        vm[2] = _mm512_max_ps(vm[2], _mm512_loadu_ps(x + j + 32));
        vm[3] = _mm512_max_ps(vm[3], _mm512_loadu_ps(x + j + 48));
    }
    for (; j + 16 <= n; j += 16) {
        vm[0] = _mm512_max_ps(vm[0], _mm512_loadu_ps(x + j));
    }
    for (; j < n; ++j) {
        mt = std::max(mt, x[j]);
    }
    const float m = std::max(ks_hmax16(_mm512_max_ps(_mm512_max_ps(vm[0], vm[1]), _mm512_max_ps(vm[2], vm[3]))), mt);
    // sweep 2: e = exp(x - m) into t, and the sum of e
    const __m512 vmax = _mm512_set1_ps(m);
    const __m512 vl2e = _mm512_set1_ps(1.44269504088896341f);
    const float ml = m * 1.44269504088896341f;
    const __m512 vml = _mm512_set1_ps(ml);
    __m512 vs[4];
    for (int u = 0; u < 4; ++u) vs[u] = _mm512_setzero_ps();
    float st = 0.0f;
    j = 0;
    for (; j + 64 <= n; j += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(nx + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(nx + j + 16), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(nx + j + 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(nx + j + 48), _MM_HINT_T0);   // next row
        __m512 e[4];
        for (int u = 0; u < 4; ++u) e[u] = _mm512_fmsub_ps(_mm512_loadu_ps(x + j + 16 * u), vl2e, vml);
        ks_exp2_16_n<4>(e);
        for (int u = 0; u < 4; ++u) {
            _mm512_storeu_ps(t + j + 16 * u, e[u]);
            vs[u] = _mm512_add_ps(vs[u], e[u]);
        }
    }
    for (; j + 16 <= n; j += 16) {
        __m512 e[1] = {_mm512_fmsub_ps(_mm512_loadu_ps(x + j), vl2e, vml)};
        ks_exp2_16_n<1>(e);
        _mm512_storeu_ps(t + j, e[0]);
        vs[0] = _mm512_add_ps(vs[0], e[0]);
    }
    for (; j < n; ++j) {
        const float e = ks_exp2f(std::fma(x[j], 1.44269504088896341f, -ml));
        t[j] = e;
        st += e;
    }
    const float inv = 1.0f / (ks_hsum16(_mm512_add_ps(_mm512_add_ps(vs[0], vs[1]), _mm512_add_ps(vs[2], vs[3]))) + st);
    const __m512 vinv = _mm512_set1_ps(inv);
    // sweep 3: normalize into y
    j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 63); ++j) {
        y[j] = t[j] * inv;
    }
    for (; j + 64 <= n; j += 64) {
        _mm512_stream_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(t + j), vinv));
        _mm512_stream_ps(y + j + 16, _mm512_mul_ps(_mm512_loadu_ps(t + j + 16), vinv));
        _mm512_stream_ps(y + j + 32, _mm512_mul_ps(_mm512_loadu_ps(t + j + 32), vinv));
        _mm512_stream_ps(y + j + 48, _mm512_mul_ps(_mm512_loadu_ps(t + j + 48), vinv));
    }
    for (; j + 16 <= n; j += 16) {
        _mm512_stream_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(t + j), vinv));
    }
    for (; j < n; ++j) {
        y[j] = t[j] * inv;
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 1 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
    const float* x = static_cast<const float*>(inputs[0].data);
    float* y = static_cast<float*>(output->data);
    const int64_t ld = (N + 15) / 16 * 16;
    float* scratch = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * ld * omp_get_max_threads()));
    if (!scratch) return 2;
    #pragma omp parallel
    {
        float* t = scratch + omp_get_thread_num() * ld;
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < M; ++i)
            softmax_row(x + i * N, y + i * N, N, t, x + (i + 1 < M ? i + 1 : i) * N);
        _mm_sfence();  // each thread fences its streaming stores
    }
    std::free(scratch);
    return 0;
}
