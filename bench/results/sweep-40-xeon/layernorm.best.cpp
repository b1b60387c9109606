// strategy: stacked: vec-avx2 + omp-rows + fuse-per-row + nt-stores + welford-one-pass + prefetch-next-row [refine: unroll 2 -> 4]
// kscout offline template: layernorm
// strategy: per row, row kept in cache; one-pass Welford/Chan statistics; OpenMP over rows; AVX2 x4; streaming stores; prefetch next row
//   chunk = 0
//   fuse = per_row
//   prefetch = next_row
//   schedule = static
//   stats = one_pass
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

// mean and 1 / sqrt(var + eps) of one row
static inline void row_stats(const float* x, int64_t n, float* mean, float* rstd) {
    // one read of the row: Welford in each of the 32 lanes (4 vector(s) of 8; every lane sees the same
    // count k, so 1/k is one scalar per step), then the lanes merged with Chan's formula and the
    // tail (< 32 elements) folded in by scalar Welford, all in double
    __m256 mu[4], m2[4];
    for (int u = 0; u < 4; ++u) mu[u] = m2[u] = _mm256_setzero_ps();
    int64_t j = 0, k = 0;
    for (; j + 32 <= n; j += 32) {
        const __m256 r = _mm256_set1_ps(1.0f / static_cast<float>(++k));
        for (int u = 0; u < 4; ++u) {
            const __m256 v = _mm256_loadu_ps(x + j + 8 * u);
            const __m256 d = _mm256_sub_ps(v, mu[u]);
            mu[u] = _mm256_fmadd_ps(d, r, mu[u]);
            m2[u] = _mm256_fmadd_ps(d, _mm256_sub_ps(v, mu[u]), m2[u]);
        }
    }
    double m = 0.0, q = 0.0, cnt = 0.0;
    if (k > 0) {
        alignas(32) float lm[32], lq[32];
        for (int u = 0; u < 4; ++u) {
            _mm256_store_ps(lm + 8 * u, mu[u]);
            _mm256_store_ps(lq + 8 * u, m2[u]);
        }
        for (int l = 0; l < 32; ++l) m += lm[l];
        m /= 32;
        for (int l = 0; l < 32; ++l) {   // equal counts k: M2 = sum M2_l + k * sum (mean_l - mean)^2
            const double d = lm[l] - m;
            q += lq[l] + static_cast<double>(k) * d * d;
        }
        cnt = static_cast<double>(k) * 32;
    }
    for (; j < n; ++j) {
        cnt += 1.0;
        const double d = x[j] - m;
        m += d / cnt;
        q += d * (x[j] - m);
    }
    *mean = static_cast<float>(m);
    *rstd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q) / n + 1e-5));   // biased variance; eps inside the sqrt
}

// y = (x - mean) * rstd * weight + bias
static inline void norm_row(const float* x, const float* w, const float* b, float m, float r, float* y, int64_t n, const float* nx) {
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
    int64_t j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 31); ++j) {
        y[j] = (x[j] - m) * r * w[j] + b[j];
    }
    for (; j + 32 <= n; j += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(nx + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(nx + j + 16), _MM_HINT_T0);   // next row
        _mm256_stream_ps(y + j, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr), _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
        _mm256_stream_ps(y + j + 8, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm), vr), _mm256_loadu_ps(w + j + 8), _mm256_loadu_ps(b + j + 8)));
        _mm256_stream_ps(y + j + 16, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 16), vm), vr), _mm256_loadu_ps(w + j + 16), _mm256_loadu_ps(b + j + 16)));
        _mm256_stream_ps(y + j + 24, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 24), vm), vr), _mm256_loadu_ps(w + j + 24), _mm256_loadu_ps(b + j + 24)));
    }
    for (; j + 8 <= n; j += 8) {
        _mm256_stream_ps(y + j, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vr), _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
    }
    for (; j < n; ++j) {
        y[j] = (x[j] - m) * r * w[j] + b[j];
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 3 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 1) return 1;
    if (inputs[2].dtype != KS_F32 || inputs[2].ndim != 1) return 1;
    const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
    if (inputs[1].shape[0] != N || inputs[2].shape[0] != N) return 1;
    const float* x = static_cast<const float*>(inputs[0].data);
    const float* w = static_cast<const float*>(inputs[1].data);
    const float* b = static_cast<const float*>(inputs[2].data);
    float* y = static_cast<float*>(output->data);
    #pragma omp parallel
    {
        #pragma omp for schedule(static)
        for (int64_t i = 0; i < M; ++i)
            { float m, r; row_stats(x + i * N, N, &m, &r); norm_row(x + i * N, w, b, m, r, y + i * N, N, x + (i + 1 < M ? i + 1 : i) * N); }
        _mm_sfence();  // each thread fences its streaming stores
    }
    return 0;
}
