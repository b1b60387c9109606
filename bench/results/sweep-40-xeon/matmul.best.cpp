// strategy: stacked: micro-12x32 + omp-rows + pack-a-12x32 [refine: tile_m 48 -> 24]
// kscout offline template: matmul
// strategy: BLIS-style GEMM, 12x32 AVX-512F micro-kernel, packed B and A; MC=24 NC=3072 KC=256; OpenMP over row blocks
//   loop_order = ijk
//   micro = 12x32
//   pack_a = yes
//   schedule = static
//   threads = rows
//   tile_k = 256
//   tile_m = 24
//   tile_n = 3072
//   tiling = none
//   unroll_k = 1
//   vector = scalar

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

#ifndef __AVX512F__
#error "this kernel uses AVX-512F (16 floats per zmm vector); -march=native does not enable it on this CPU"
#endif

// B[0:kc, 0:nc] (row stride ldb) -> panels of 32 columns, each kc x 32 contiguous, zero-padded
static inline void pack_b_panel(const float* b, int64_t ldb, int64_t kc, int64_t nr, float* bp) {
    for (int64_t k = 0; k < kc; ++k) {
        const float* src = b + k * ldb;
        float* dst = bp + k * 32;
        if (nr == 32) {
        _mm512_store_ps(dst + 0, _mm512_loadu_ps(src + 0));
        _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + 16));
        } else {
            for (int64_t j = 0; j < 32; ++j)
                dst[j] = j < nr ? src[j] : 0.0f;
        }
    }
}

// A[0:mr, 0:kc] (row stride lda) -> one panel of 12 rows, k-major, zero-padded past mr
static inline void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t mr, float* ap) {
    for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < 12; ++r)
            ap[k * 12 + r] = r < mr ? a[r * lda + k] : 0.0f;
}

// C[0:mr, 0:nr] (+)= A-block * B-panel over kc, with a 12x32 block of C in 24 zmm registers.
// bp: kc rows of 32 floats (zero-padded past nr); acc: add to C (later KC blocks) or overwrite.
static inline void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                int64_t mr, int64_t nr, bool acc) {
    __m512 c0_0 = _mm512_setzero_ps(), c0_1 = _mm512_setzero_ps();
    __m512 c1_0 = _mm512_setzero_ps(), c1_1 = _mm512_setzero_ps();
    __m512 c2_0 = _mm512_setzero_ps(), c2_1 = _mm512_setzero_ps();
    __m512 c3_0 = _mm512_setzero_ps(), c3_1 = _mm512_setzero_ps();
    __m512 c4_0 = _mm512_setzero_ps(), c4_1 = _mm512_setzero_ps();
    __m512 c5_0 = _mm512_setzero_ps(), c5_1 = _mm512_setzero_ps();
    __m512 c6_0 = _mm512_setzero_ps(), c6_1 = _mm512_setzero_ps();
    __m512 c7_0 = _mm512_setzero_ps(), c7_1 = _mm512_setzero_ps();
    __m512 c8_0 = _mm512_setzero_ps(), c8_1 = _mm512_setzero_ps();
    __m512 c9_0 = _mm512_setzero_ps(), c9_1 = _mm512_setzero_ps();
    __m512 c10_0 = _mm512_setzero_ps(), c10_1 = _mm512_setzero_ps();
    __m512 c11_0 = _mm512_setzero_ps(), c11_1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(bp + k * 32);
        const __m512 b1 = _mm512_load_ps(bp + k * 32 + 16);
        __m512 av = _mm512_set1_ps(*(ap + k * 12 + 0)); c0_0 = _mm512_fmadd_ps(av, b0, c0_0); c0_1 = _mm512_fmadd_ps(av, b1, c0_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 1)); c1_0 = _mm512_fmadd_ps(av, b0, c1_0); c1_1 = _mm512_fmadd_ps(av, b1, c1_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 2)); c2_0 = _mm512_fmadd_ps(av, b0, c2_0); c2_1 = _mm512_fmadd_ps(av, b1, c2_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 3)); c3_0 = _mm512_fmadd_ps(av, b0, c3_0); c3_1 = _mm512_fmadd_ps(av, b1, c3_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 4)); c4_0 = _mm512_fmadd_ps(av, b0, c4_0); c4_1 = _mm512_fmadd_ps(av, b1, c4_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 5)); c5_0 = _mm512_fmadd_ps(av, b0, c5_0); c5_1 = _mm512_fmadd_ps(av, b1, c5_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 6)); c6_0 = _mm512_fmadd_ps(av, b0, c6_0); c6_1 = _mm512_fmadd_ps(av, b1, c6_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 7)); c7_0 = _mm512_fmadd_ps(av, b0, c7_0); c7_1 = _mm512_fmadd_ps(av, b1, c7_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 8)); c8_0 = _mm512_fmadd_ps(av, b0, c8_0); c8_1 = _mm512_fmadd_ps(av, b1, c8_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 9)); c9_0 = _mm512_fmadd_ps(av, b0, c9_0); c9_1 = _mm512_fmadd_ps(av, b1, c9_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 10)); c10_0 = _mm512_fmadd_ps(av, b0, c10_0); c10_1 = _mm512_fmadd_ps(av, b1, c10_1);
        av = _mm512_set1_ps(*(ap + k * 12 + 11)); c11_0 = _mm512_fmadd_ps(av, b0, c11_0); c11_1 = _mm512_fmadd_ps(av, b1, c11_1);
    }
    if (mr == 12 && nr == 32) {
        { float* cr = c + 0 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c0_0) : c0_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c0_1) : c0_1); }
        { float* cr = c + 1 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c1_0) : c1_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c1_1) : c1_1); }
        { float* cr = c + 2 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c2_0) : c2_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c2_1) : c2_1); }
        { float* cr = c + 3 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c3_0) : c3_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c3_1) : c3_1); }
        { float* cr = c + 4 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c4_0) : c4_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c4_1) : c4_1); }
        { float* cr = c + 5 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c5_0) : c5_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c5_1) : c5_1); }
        { float* cr = c + 6 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c6_0) : c6_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c6_1) : c6_1); }
        { float* cr = c + 7 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c7_0) : c7_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c7_1) : c7_1); }
        { float* cr = c + 8 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c8_0) : c8_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c8_1) : c8_1); }
        { float* cr = c + 9 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c9_0) : c9_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c9_1) : c9_1); }
        { float* cr = c + 10 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c10_0) : c10_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c10_1) : c10_1); }
        { float* cr = c + 11 * ldc;
          _mm512_storeu_ps(cr + 0, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 0), c11_0) : c11_0);
          _mm512_storeu_ps(cr + 16, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16), c11_1) : c11_1); }
        return;
    }
    alignas(64) float t[384];   // edge tile: spill, then write back only the valid part
    _mm512_store_ps(t + 0, c0_0);
    _mm512_store_ps(t + 16, c0_1);
    _mm512_store_ps(t + 32, c1_0);
    _mm512_store_ps(t + 48, c1_1);
    _mm512_store_ps(t + 64, c2_0);
    _mm512_store_ps(t + 80, c2_1);
    _mm512_store_ps(t + 96, c3_0);
    _mm512_store_ps(t + 112, c3_1);
    _mm512_store_ps(t + 128, c4_0);
    _mm512_store_ps(t + 144, c4_1);
    _mm512_store_ps(t + 160, c5_0);
    _mm512_store_ps(t + 176, c5_1);
    _mm512_store_ps(t + 192, c6_0);
    _mm512_store_ps(t + 208, c6_1);
    _mm512_store_ps(t + 224, c7_0);
    _mm512_store_ps(t + 240, c7_1);
    _mm512_store_ps(t + 256, c8_0);
    _mm512_store_ps(t + 272, c8_1);
    _mm512_store_ps(t + 288, c9_0);
    _mm512_store_ps(t + 304, c9_1);
    _mm512_store_ps(t + 320, c10_0);
    _mm512_store_ps(t + 336, c10_1);
    _mm512_store_ps(t + 352, c11_0);
    _mm512_store_ps(t + 368, c11_1);
    for (int64_t r = 0; r < mr; ++r)
        for (int64_t j = 0; j < nr; ++j)
            c[r * ldc + j] = (acc ? c[r * ldc + j] : 0.0f) + t[r * 32 + j];
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
    const int64_t MC = 24, NC = 3072, KC = 256;
    const int64_t kcmax = std::min(KC, K), ncmax = (std::min(NC, N) + 31) / 32 * 32;
    // packed B block (shared by all threads): ncmax / 32 panels of kc x 32
    float* bp = static_cast<float*>(std::aligned_alloc(64, (sizeof(float) * kcmax * ncmax + 63) / 64 * 64));
    const int64_t ap_len = ((MC + 11) / 12 * 12 * kcmax + 15) / 16 * 16;
    float* ap_all = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * ap_len * omp_get_max_threads()));
    if (!bp || !ap_all) { std::free(bp); std::free(ap_all); return 2; }
    #pragma omp parallel
    {
        float* ap = ap_all + omp_get_thread_num() * ap_len;   // this thread's A panels
        for (int64_t jc = 0; jc < N; jc += NC) {
            const int64_t nc = std::min(NC, N - jc);
            for (int64_t pc = 0; pc < K; pc += KC) {
                const int64_t kc = std::min(KC, K - pc);
                #pragma omp for schedule(static)
                for (int64_t jr = 0; jr < nc; jr += 32)
                    pack_b_panel(b + pc * N + jc + jr, N, kc, std::min<int64_t>(32, nc - jr), bp + jr * kc);
                #pragma omp for schedule(static)
                for (int64_t ic = 0; ic < M; ic += MC) {
                    const int64_t mc = std::min(MC, M - ic);
                    for (int64_t ir = 0; ir < mc; ir += 12)
                        pack_a_panel(a + (ic + ir) * K + pc, K, kc, std::min<int64_t>(12, mc - ir), ap + ir * kc);
                    for (int64_t jr = 0; jr < nc; jr += 32)
                        for (int64_t ir = 0; ir < mc; ir += 12)
                            micro_kernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * N + jc + jr, N,
                                         std::min<int64_t>(12, mc - ir), std::min<int64_t>(32, nc - jr), pc > 0);
                }
            }
        }
    }
    std::free(bp);
    std::free(ap_all);
    return 0;
}
