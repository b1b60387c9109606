// strategy: AVX2/FMA inner loop over 8 columns of B + pack B panels + 6x16 AVX2/FMA register-blocked micro-kernel + OpenMP over rows / row blocks [refine: tile_k 256 -> 512]
// kscout offline template: matmul
// strategy: BLIS-style GEMM, 6x16 AVX2/FMA micro-kernel, packed B; MC=48 NC=768 KC=512; OpenMP over row blocks
//   loop_order = ijk
//   micro = 6x16
//   pack_a = no
//   schedule = static
//   threads = rows
//   tile_k = 512
//   tile_m = 48
//   tile_n = 768
//   tiling = none
//   unroll_k = 1
//   vector = avx2

// note: loop_order, vector and tiling select the loop-nest path; unused with a micro-kernel

#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

// B[0:kc, 0:nc] (row stride ldb) -> panels of 16 columns, each kc x 16 contiguous, zero-padded
static inline void pack_b_panel(const float* b, int64_t ldb, int64_t kc, int64_t nr, float* bp) {
    for (int64_t k = 0; k < kc; ++k) {
        const float* src = b + k * ldb;
        float* dst = bp + k * 16;
        if (nr == 16) {
        _mm256_store_ps(dst + 0, _mm256_loadu_ps(src + 0));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
        } else {
            for (int64_t j = 0; j < 16; ++j)
                dst[j] = j < nr ? src[j] : 0.0f;
        }
    }
}

// C[0:mr, 0:nr] (+)= A-block * B-panel over kc, with a 6x16 block of C in 12 ymm registers.
// bp: kc rows of 16 floats (zero-padded past nr); acc: add to C (later KC blocks) or overwrite.
static inline void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* bp, float* c, int64_t ldc,
                                int64_t mr, int64_t nr, bool acc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float* a0 = a;
    const float* a1 = a + std::min<int64_t>(1, mr - 1) * lda;
    const float* a2 = a + std::min<int64_t>(2, mr - 1) * lda;
    const float* a3 = a + std::min<int64_t>(3, mr - 1) * lda;
    const float* a4 = a + std::min<int64_t>(4, mr - 1) * lda;
    const float* a5 = a + std::min<int64_t>(5, mr - 1) * lda;
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(bp + k * 16);
        const __m256 b1 = _mm256_load_ps(bp + k * 16 + 8);
        __m256 av = _mm256_broadcast_ss(a0 + k); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1 + k); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2 + k); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3 + k); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31);
        av = _mm256_broadcast_ss(a4 + k); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41);
        av = _mm256_broadcast_ss(a5 + k); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51);
    }
    if (mr == 6 && nr == 16) {
        { float* cr = c + 0 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c00) : c00);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c01) : c01); }
        { float* cr = c + 1 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c10) : c10);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c11) : c11); }
        { float* cr = c + 2 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c20) : c20);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c21) : c21); }
        { float* cr = c + 3 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c30) : c30);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c31) : c31); }
        { float* cr = c + 4 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c40) : c40);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c41) : c41); }
        { float* cr = c + 5 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c50) : c50);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c51) : c51); }
        return;
    }
    alignas(32) float t[96];   // edge tile: spill, then write back only the valid part
    _mm256_store_ps(t + 0, c00);
    _mm256_store_ps(t + 8, c01);
    _mm256_store_ps(t + 16, c10);
    _mm256_store_ps(t + 24, c11);
    _mm256_store_ps(t + 32, c20);
    _mm256_store_ps(t + 40, c21);
    _mm256_store_ps(t + 48, c30);
    _mm256_store_ps(t + 56, c31);
    _mm256_store_ps(t + 64, c40);
    _mm256_store_ps(t + 72, c41);
    _mm256_store_ps(t + 80, c50);
    _mm256_store_ps(t + 88, c51);
    for (int64_t r = 0; r < mr; ++r)
        for (int64_t j = 0; j < nr; ++j)
            c[r * ldc + j] = (acc ? c[r * ldc + j] : 0.0f) + t[r * 16 + j];
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 2 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 2) return 1;
    const int64_t M = inputs[0].shape[0], K = inputs[0].shape[1], N = inputs[1].shape[1];
    if (inputs[1].shape[0] != K) return 1;
    const float* a = static_cast<const float*>(inputs[0].data);
    const float* b = static_cast<const float*>(inputs[1].data);
    float* c = static_cast<float*>(output->data);
    const int64_t MC = 48, NC = 768, KC = 512;
    const int64_t kcmax = std::min(KC, K), ncmax = (std::min(NC, N) + 15) / 16 * 16;
    // packed B block (shared by all threads): ncmax / 16 panels of kc x 16
    float* bp = static_cast<float*>(std::aligned_alloc(64, (sizeof(float) * kcmax * ncmax + 63) / 64 * 64));
    if (!bp) return 2;
    #pragma omp parallel
    {
        for (int64_t jc = 0; jc < N; jc += NC) {
            const int64_t nc = std::min(NC, N - jc);
            for (int64_t pc = 0; pc < K; pc += KC) {
                const int64_t kc = std::min(KC, K - pc);
                #pragma omp for schedule(static)
                for (int64_t jr = 0; jr < nc; jr += 16)
                    pack_b_panel(b + pc * N + jc + jr, N, kc, std::min<int64_t>(16, nc - jr), bp + jr * kc);
                #pragma omp for schedule(static)
                for (int64_t ic = 0; ic < M; ic += MC) {
                    const int64_t mc = std::min(MC, M - ic);
                    for (int64_t jr = 0; jr < nc; jr += 16)
                        for (int64_t ir = 0; ir < mc; ir += 6)
                            micro_kernel(kc, a + (ic + ir) * K + pc, K, bp + jr * kc, c + (ic + ir) * N + jc + jr, N,
                                         std::min<int64_t>(6, mc - ir), std::min<int64_t>(16, nc - jr), pc > 0);
                }
            }
        }
    }
    std::free(bp);
    return 0;
}
