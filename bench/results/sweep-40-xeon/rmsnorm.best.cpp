// strategy: AVX2/FMA intrinsics with multiple accumulators + OpenMP parallel for over rows + normalize each row right after its sum of squares, while the row is in cache (one read of x from memory) + non-temporal (streaming) stores for y + software-prefetch the next row while scaling this one [refine: prefetch_hint T0 -> T1]
// kscout offline template: rmsnorm
// strategy: per row, row kept in cache; OpenMP over rows; AVX2 x2; streaming stores; prefetch next row (T1)
//   chunk = 0
//   fuse = per_row
//   prefetch = next_row
//   prefetch_hint = T1
//   schedule = guided
//   store = stream
//   threads = rows
//   unroll = 2
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

// 1 / sqrt(mean(x^2) + eps)
static inline float inv_rms(const float* x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float tail = 0.0f;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        const __m256 v1 = _mm256_loadu_ps(x + j + 8);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 v0 = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
    }
    for (; j < n; ++j) {
        tail += x[j] * x[j];
    }
    const float ss = ks_hsum8(_mm256_add_ps(a0, a1)) + tail;
    return 1.0f / std::sqrt(static_cast<float>(ss / n) + 1e-6f);
}

// y = x * r * weight, in the reference's order
static inline void scale_row(const float* x, const float* w, float r, float* y, int64_t n, const float* nx) {
    const __m256 vr = _mm256_set1_ps(r);
    int64_t j = 0;
    for (; j < n && (reinterpret_cast<uintptr_t>(y + j) & 31); ++j) {
        y[j] = x[j] * r * w[j];
    }
    for (; j + 16 <= n; j += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(nx + j), _MM_HINT_T1);   // next row
        _mm256_stream_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vr), _mm256_loadu_ps(w + j)));
        _mm256_stream_ps(y + j + 8, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), vr), _mm256_loadu_ps(w + j + 8)));
    }
    for (; j + 8 <= n; j += 8) {
        _mm256_stream_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vr), _mm256_loadu_ps(w + j)));
    }
    for (; j < n; ++j) {
        y[j] = x[j] * r * w[j];
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 2 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 1) return 1;
    const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
    if (inputs[1].shape[0] != N) return 1;
    const float* x = static_cast<const float*>(inputs[0].data);
    const float* w = static_cast<const float*>(inputs[1].data);
    float* y = static_cast<float*>(output->data);
    #pragma omp parallel
    {
        #pragma omp for schedule(guided)
        for (int64_t i = 0; i < M; ++i)
            scale_row(x + i * N, w, inv_rms(x + i * N, N), y + i * N, N, x + (i + 1 < M ? i + 1 : i) * N);
        _mm_sfence();  // each thread fences its streaming stores
    }
    return 0;
}
