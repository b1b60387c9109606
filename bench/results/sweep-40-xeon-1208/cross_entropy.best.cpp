// strategy: stacked: online-avx2 + omp-rows + exp2-fold + multi-stream + prefetch-ahead + avx512
// kscout offline template: cross_entropy
// strategy: online logsumexp, one sweep; OpenMP over rows; AVX-512 x4; exp2 polynomial, max folded; 4 streams per row; prefetch 4 KB ahead
//   exp = exp2
//   math = poly
//   passes = online
//   prefetch = ahead
//   simd_width = 16
//   sweep = segments
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

#ifndef __AVX512F__
#error "this kernel uses AVX-512F (16 floats per zmm vector); -march=native does not enable it on this CPU"
#endif

static inline float ks_hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }
static inline float ks_hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }

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

static inline bool ks_any_gt(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }

// max m of x[0:n) and s = sum of e^(x - m)
static void seg_stats(const float* x, int64_t n, float* pm, float* ps) {
    // 4 concurrent streams: the step's vectors come from 4 equal segments of the range
    // one sweep: per-lane running max vmax and 4 sum accumulator(s) of e^(x - vmax)
    __m512 vmax = _mm512_set1_ps(-FLT_MAX), vs[4];
    const __m512 vl2e = _mm512_set1_ps(1.44269504088896341f);
    // e^(x - m) = 2^(x*log2(e) - m*log2(e)): one FMA per vector
    __m512 vml = _mm512_mul_ps(vmax, vl2e);
    for (int u = 0; u < 4; ++u) vs[u] = _mm512_setzero_ps();
    int64_t j = 0;
    {
        const int64_t seg = n / 64 * 16;   // 4 streams of seg floats (a multiple of 16)
        for (; j < seg; j += 16) {
            _mm_prefetch(reinterpret_cast<const char*>(x + 0 * seg + 1024 + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(x + 1 * seg + 1024 + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(x + 2 * seg + 1024 + j), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(x + 3 * seg + 1024 + j), _MM_HINT_T0);   // 4 KB ahead in each stream
            __m512 xv[4];
            for (int u = 0; u < 4; ++u) xv[u] = _mm512_loadu_ps(x + j + u * seg);
            const __m512 bm = _mm512_max_ps(vmax, _mm512_max_ps(_mm512_max_ps(xv[0], xv[1]), _mm512_max_ps(xv[2], xv[3])));
            // rescale only when some lane's max grew: after the first few steps it almost never does
            if (ks_any_gt(bm, vmax)) {
                const __m512 r = ks_exp16(_mm512_sub_ps(vmax, bm));
                for (int u = 0; u < 4; ++u) vs[u] = _mm512_mul_ps(vs[u], r);
                vmax = bm;
                vml = _mm512_mul_ps(vmax, vl2e);
            }
            __m512 e[4];
            for (int u = 0; u < 4; ++u) e[u] = _mm512_fmsub_ps(xv[u], vl2e, vml);
            ks_exp2_16_n<4>(e);
            for (int u = 0; u < 4; ++u) vs[u] = _mm512_add_ps(vs[u], e[u]);
        }
    }
    j = n / 64 * 64;   // what the streams covered
    for (; j + 16 <= n; j += 16) {
        __m512 xv[1];
        for (int u = 0; u < 1; ++u) xv[u] = _mm512_loadu_ps(x + j);
        const __m512 bm = _mm512_max_ps(vmax, xv[0]);
        // rescale only when some lane's max grew: after the first few steps it almost never does
        if (ks_any_gt(bm, vmax)) {
            const __m512 r = ks_exp16(_mm512_sub_ps(vmax, bm));
            for (int u = 0; u < 4; ++u) vs[u] = _mm512_mul_ps(vs[u], r);
            vmax = bm;
            vml = _mm512_mul_ps(vmax, vl2e);
        }
        __m512 e[1];
        for (int u = 0; u < 1; ++u) e[u] = _mm512_fmsub_ps(xv[u], vl2e, vml);
        ks_exp2_16_n<1>(e);
        for (int u = 0; u < 1; ++u) vs[u] = _mm512_add_ps(vs[u], e[u]);
    }
    // combine the lanes, then fold in the scalar tail the same way
    float m = ks_hmax16(vmax);
    float s = ks_hsum16(_mm512_mul_ps(_mm512_add_ps(_mm512_add_ps(vs[0], vs[1]), _mm512_add_ps(vs[2], vs[3])), ks_exp16(_mm512_sub_ps(vmax, _mm512_set1_ps(m)))));
    for (; j < n; ++j) {
        if (x[j] > m) {
            s *= ks_expf(m - x[j]);
            m = x[j];
        }
        s += ks_expf(x[j] - m);
    }
    *pm = m;
    *ps = s;
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 2 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2 || inputs[1].dtype != KS_I64 || inputs[1].ndim != 1) return 1;
    const int64_t M = inputs[0].shape[0], V = inputs[0].shape[1];
    if (inputs[1].shape[0] != M || output->ndim != 1 || output->shape[0] != M) return 1;
    const float* x = static_cast<const float*>(inputs[0].data);
    const int64_t* t = static_cast<const int64_t*>(inputs[1].data);
    float* loss = static_cast<float*>(output->data);
    for (int64_t i = 0; i < M; ++i)   // a target outside [0, V) is an error (torch raises), except ignore_index
        if ((t[i] < 0 || t[i] >= V) && t[i] != -100) return 3;
    // per row: m = max, s = sum of e^(x - m); loss = m + log(s) - x[target]
    float* m = static_cast<float*>(std::malloc(sizeof(float) * 2 * M));
    if (!m) return 2;
    float* s = m + M;
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
        float mi, si;
        seg_stats(x + i * V, V, &mi, &si);
        m[i] = mi;
        s[i] = si;
    }
    for (int64_t i = 0; i < M; ++i)
        loss[i] = t[i] == -100 ? 0.0f : static_cast<float>((static_cast<double>(m[i]) - x[i * V + t[i]]) + std::log(static_cast<double>(s[i])));
    std::free(m);
    return 0;
}
