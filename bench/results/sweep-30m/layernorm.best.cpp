// strategy: AVX2/FMA intrinsics with multiple accumulators + normalize each row right after its statistics, while the row is in cache (one read of x from memory) + non-temporal (streaming) stores for y + OpenMP parallel for over rows [refine: chunk 0 -> 4]
// kscout offline template: layernorm
// strategy: per row, row kept in cache; two-pass mean/variance; OpenMP over rows; AVX2 x4; streaming stores
//   chunk = 4
//   fuse = per_row
//   prefetch = none
//   schedule = dynamic
//   stats = two_pass
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
    // pass 1: mean, 4 vector accumulator(s) + a scalar one for the tail
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    float ts = 0.0f;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + j + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + j + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + j + 24));
    }
    for (; j + 8 <= n; j += 8) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + j));
    }
    for (; j < n; ++j) {
        ts += x[j];
    }
    const float mf = (ks_hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))) + ts) / n;
    const double m = mf;
    // pass 2: squared deviations from the mean (the row is in L1/L2 now)
    const __m256 vm = _mm256_set1_ps(mf);
    __m256 q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps(), q2 = _mm256_setzero_ps(), q3 = _mm256_setzero_ps();
    float tq = 0.0f;
    j = 0;
    for (; j + 32 <= n; j += 32) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        q0 = _mm256_fmadd_ps(d0, d0, q0);
        const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm);
        q1 = _mm256_fmadd_ps(d1, d1, q1);
        const __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 16), vm);
        q2 = _mm256_fmadd_ps(d2, d2, q2);
        const __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(x + j + 24), vm);
        q3 = _mm256_fmadd_ps(d3, d3, q3);
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + j), vm);
        q0 = _mm256_fmadd_ps(d0, d0, q0);
    }
    for (; j < n; ++j) {
        const float d = x[j] - mf;
        tq += d * d;
    }
    const double q = ks_hsum8(_mm256_add_ps(_mm256_add_ps(q0, q1), _mm256_add_ps(q2, q3))) + tq;
    *mean = static_cast<float>(m);
    *rstd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(q) / n + 1e-5));   // biased variance; eps inside the sqrt
}

// y = (x - mean) * rstd * weight + bias
static inline void norm_row(const float* x, const float* w, const float* b, float m, float r, float* y, int64_t n) {
    const __m256 vm = _mm256_set1_ps(m), vr = _mm256_set1_ps(r);
    int64_t j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 31); ++j) {
        y[j] = (x[j] - m) * r * w[j] + b[j];
    }
    for (; j + 32 <= n; j += 32) {
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
        #pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < M; ++i)
            { float m, r; row_stats(x + i * N, N, &m, &r); norm_row(x + i * N, w, b, m, r, y + i * N, N); }
        _mm_sfence();  // each thread fences its streaming stores
    }
    return 0;
}
