// strategy: stacked: vec-avx2 + fuse-one-pass + omp-rows + nt-stores + avx512 + exp2-fold
// kscout offline template: swiglu
// strategy: one fused sweep; OpenMP over rows; AVX-512 x1 unroll; exp2 polynomial; streaming stores
//   chunk = 0
//   exp = exp2
//   fuse = fused
//   math = poly
//   schedule = static
//   simd_width = 16
//   store = stream
//   threads = rows
//   unroll = 1
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

// silu on U vectors of 16 lanes, in place: g / (1 + e^-g), the exps interleaved
template <int U>
static inline void silu16_n(__m512* v) {
    __m512 z[U];
    for (int u = 0; u < U; ++u)   // t = -g log2(e), at most 126: 2^t finite, g / (1 + 2^t) -> 0
        z[u] = _mm512_min_ps(_mm512_mul_ps(v[u], _mm512_set1_ps(-1.44269504088896341f)), _mm512_set1_ps(126.0f));
    ks_exp2_16_n<U>(z);   // clamps below at -126
    for (int u = 0; u < U; ++u) v[u] = _mm512_div_ps(v[u], _mm512_add_ps(_mm512_set1_ps(1.0f), z[u]));
}

static inline float silu(float g) {
    return g / (1.0f + ks_expf(-g));
}

static void swiglu_span(const float* g, const float* up, float* y, int64_t n) {
    int64_t j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 63); ++j) {
        y[j] = silu(g[j]) * up[j];
    }
    for (; j + 16 <= n; j += 16) {
        __m512 v[1] = {_mm512_loadu_ps(g + j)};
        silu16_n<1>(v);
        _mm512_stream_ps(y + j, _mm512_mul_ps(v[0], _mm512_loadu_ps(up + j)));
    }
    for (; j < n; ++j) {
        y[j] = silu(g[j]) * up[j];
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 2 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 2) return 1;
    const int64_t M = inputs[0].shape[0], H = inputs[0].shape[1], total = M * H;
    if (inputs[1].shape[0] != M || inputs[1].shape[1] != H) return 1;
    const float* g = static_cast<const float*>(inputs[0].data);
    const float* up = static_cast<const float*>(inputs[1].data);
    float* y = static_cast<float*>(output->data);
    (void)H; (void)total;   // each threading mode uses one of them
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < M; ++i)
            swiglu_span(g + i * H, up + i * H, y + i * H, H);
        _mm_sfence();  // each thread orders its streaming stores
    }
    return 0;
}
