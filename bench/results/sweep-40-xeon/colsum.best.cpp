// strategy: stacked: stream-rows + omp-split-m + vec-avx2 + float-cascade [refine: rows_step 2 -> 4]
// kscout offline template: colsum
// strategy: row streaming into N partial sums; float partials per 256 rows; OpenMP over row ranges; AVX2; 4 row(s) per step
//   acc = float_blocked
//   block_n = 0
//   order = rows
//   rows_step = 4
//   schedule = static
//   threads = split_m
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

// tot[j] += sum of x[i, j] over rows [i0, i1), for columns [j0, j1); bp: float scratch of j1 - j0 floats
static void colsum_block(const float* x, int64_t N, int64_t i0, int64_t i1, int64_t j0, int64_t j1, float* tot, float* bp) {
    const int64_t w = j1 - j0;
    (void)w; (void)bp;
    // two-level sum: the rows of each 256-row block into fresh float partials bp (stay in L1),
    // then the block into tot; rounding grows with the block, not with M
    float* q = bp;
    for (int64_t b0 = i0; b0 < i1; b0 += 256) {
        const int64_t b1 = std::min<int64_t>(i1, b0 + 256);
        std::memset(q, 0, sizeof(float) * w);
        int64_t i = b0;
        for (; i + 4 <= b1; i += 4) {
            const float* r0 = x + i * N + j0;
            const float* r1 = x + (i + 1) * N + j0;
            const float* r2 = x + (i + 2) * N + j0;
            const float* r3 = x + (i + 3) * N + j0;
            int64_t j = 0;
            for (; j + 16 <= w; j += 16) {
                _mm256_storeu_ps(q + j, _mm256_add_ps(_mm256_loadu_ps(q + j), _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(r0 + j), _mm256_loadu_ps(r1 + j)), _mm256_add_ps(_mm256_loadu_ps(r2 + j), _mm256_loadu_ps(r3 + j)))));
                _mm256_storeu_ps(q + j + 8, _mm256_add_ps(_mm256_loadu_ps(q + j + 8), _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(r0 + j + 8), _mm256_loadu_ps(r1 + j + 8)), _mm256_add_ps(_mm256_loadu_ps(r2 + j + 8), _mm256_loadu_ps(r3 + j + 8)))));
            }
            for (; j + 8 <= w; j += 8) {
                _mm256_storeu_ps(q + j, _mm256_add_ps(_mm256_loadu_ps(q + j), _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(r0 + j), _mm256_loadu_ps(r1 + j)), _mm256_add_ps(_mm256_loadu_ps(r2 + j), _mm256_loadu_ps(r3 + j)))));
            }
            for (; j < w; ++j) {
                q[j] += ((r0[j] + r1[j]) + (r2[j] + r3[j]));
            }
        }
        for (; i < b1; ++i) {
            const float* r0 = x + i * N + j0;
            int64_t j = 0;
            for (; j + 16 <= w; j += 16) {
                _mm256_storeu_ps(q + j, _mm256_add_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(r0 + j)));
                _mm256_storeu_ps(q + j + 8, _mm256_add_ps(_mm256_loadu_ps(q + j + 8), _mm256_loadu_ps(r0 + j + 8)));
            }
            for (; j + 8 <= w; j += 8) {
                _mm256_storeu_ps(q + j, _mm256_add_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(r0 + j)));
            }
            for (; j < w; ++j) {
                q[j] += r0[j];
            }
        }
        for (int64_t j = 0; j < w; ++j)
            tot[j0 + j] += q[j];
    }
}

static float* alloc_acc(int64_t n) {   // 64-byte aligned, size rounded up as aligned_alloc needs
    return static_cast<float*>(std::aligned_alloc(64, ((sizeof(float) * n + 63) / 64) * 64 + 64));
}

static float* alloc_f(int64_t n) {
    return static_cast<float*>(std::aligned_alloc(64, ((sizeof(float) * n + 63) / 64) * 64 + 64));
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 1 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    const int64_t M = inputs[0].shape[0], N = inputs[0].shape[1];
    const float* x = static_cast<const float*>(inputs[0].data);
    float* y = static_cast<float*>(output->data);
    // every thread sums 256-row chunks into private partials; then the partials are combined
    const int64_t NB = N;   // columns per block
    const int T = omp_get_max_threads();
    const int64_t ld = (N + 15) / 16 * 16, bld = (NB + 15) / 16 * 16;
    const int64_t nch = (M + 256 - 1) / 256;
    float* part = alloc_acc(ld * T);
    float* scratch = alloc_f(bld * T);
    if (!part || !scratch) { std::free(part); std::free(scratch); return 2; }
    #pragma omp parallel num_threads(T)
    {
        const int th = omp_get_thread_num(), nt = omp_get_num_threads();
        float* tot = part + th * ld;
        float* bp = scratch + th * bld;
        for (int64_t j = 0; j < N; ++j) tot[j] = 0;
        #pragma omp for schedule(static) nowait
        for (int64_t c = 0; c < nch; ++c) {
            const int64_t i0 = c * 256, i1 = std::min<int64_t>(M, i0 + 256);
            for (int64_t j0 = 0; j0 < N; j0 += NB) {
                const int64_t j1 = std::min<int64_t>(N, j0 + NB);
                colsum_block(x, N, i0, i1, j0, j1, tot, bp);
            }
        }
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (int64_t j = 0; j < N; ++j) {
            float s = 0;
            for (int u = 0; u < nt; ++u)
                s += part[u * ld + j];
            y[j] = static_cast<float>(s);
        }
    }
    std::free(part);
    std::free(scratch);
    return 0;
}
