// strategy: AVX2/FMA intrinsics with a vectorized exp and multiple accumulators + software-prefetch the next row while computing exps, so the next row's max sweep hits cache + OpenMP parallel for over rows + multiply by 1/sum instead of dividing every element + non-temporal (streaming) stores for the output [refine: prefetch_hint T0 -> T1]
// kscout offline template: softmax
// strategy: three sweeps per row; OpenMP over rows; AVX2 x4; exp polynomial; multiply by reciprocal; streaming stores (exps in a per-thread scratch row); prefetch next row (T1)
//   chunk = 0
//   math = poly
//   normalize = reciprocal
//   passes = three
//   prefetch = next_row
//   prefetch_hint = T1
//   schedule = static
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

static void softmax_row(const float* x, float* y, int64_t n, float* t, const float* nx) {
    // sweep 1: row max, 4 vector accumulator(s) + a scalar one for the tail
    __m256 vm[4];
    for (int u = 0; u < 4; ++u) vm[u] = _mm256_set1_ps(-FLT_MAX);
    float mt = -FLT_MAX;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        vm[0] = _mm256_max_ps(vm[0], _mm256_loadu_ps(x + j));
        vm[1] = _mm256_max_ps(vm[1], _mm256_loadu_ps(x + j + 8));
        vm[2] = _mm256_max_ps(vm[2], _mm256_loadu_ps(x + j + 16));
        vm[3] = _mm256_max_ps(vm[3], _mm256_loadu_ps(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) {
        vm[0] = _mm256_max_ps(vm[0], _mm256_loadu_ps(x + j));
    }
    for (; j < n; ++j) {
        mt = std::max(mt, x[j]);
    }
    const float m = std::max(ks_hmax8(_mm256_max_ps(_mm256_max_ps(vm[0], vm[1]), _mm256_max_ps(vm[2], vm[3]))), mt);
    // sweep 2: e = exp(x - m) into t, and the sum of e
    const __m256 vmax = _mm256_set1_ps(m);
    __m256 vs[4];
    for (int u = 0; u < 4; ++u) vs[u] = _mm256_setzero_ps();
    float st = 0.0f;
    j = 0;
    for (; j + 32 <= n; j += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(nx + j), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(nx + j + 16), _MM_HINT_T1);   // next row
        __m256 e[4];
        for (int u = 0; u < 4; ++u) e[u] = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8 * u), vmax);
        ks_exp8_n<4>(e);
        for (int u = 0; u < 4; ++u) {
            _mm256_storeu_ps(t + j + 8 * u, e[u]);
            vs[u] = _mm256_add_ps(vs[u], e[u]);
        }
    }
    for (; j + 8 <= n; j += 8) {
        __m256 e[1] = {_mm256_sub_ps(_mm256_loadu_ps(x + j), vmax)};
        ks_exp8_n<1>(e);
        _mm256_storeu_ps(t + j, e[0]);
        vs[0] = _mm256_add_ps(vs[0], e[0]);
    }
    for (; j < n; ++j) {
        const float e = ks_expf(x[j] - m);
        t[j] = e;
        st += e;
    }
    const float inv = 1.0f / (ks_hsum8(_mm256_add_ps(_mm256_add_ps(vs[0], vs[1]), _mm256_add_ps(vs[2], vs[3]))) + st);
    const __m256 vinv = _mm256_set1_ps(inv);
    // sweep 3: normalize into y
    j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 31); ++j) {
        y[j] = t[j] * inv;
    }
    for (; j + 32 <= n; j += 32) {
        _mm256_stream_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(t + j), vinv));
        _mm256_stream_ps(y + j + 8, _mm256_mul_ps(_mm256_loadu_ps(t + j + 8), vinv));
        _mm256_stream_ps(y + j + 16, _mm256_mul_ps(_mm256_loadu_ps(t + j + 16), vinv));
        _mm256_stream_ps(y + j + 24, _mm256_mul_ps(_mm256_loadu_ps(t + j + 24), vinv));
    }
    for (; j + 8 <= n; j += 8) {
        _mm256_stream_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(t + j), vinv));
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
