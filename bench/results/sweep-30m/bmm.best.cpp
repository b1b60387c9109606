// strategy: pack B panels + 4x24 AVX2/FMA register-blocked micro-kernel + OpenMP over batch entries, each thread owning whole matrices + pack B panels + 6x16 AVX2/FMA register-blocked micro-kernel + pack A into MR-row panels for the micro-kernel + OpenMP over row blocks within each matrix (threads share it) + pack B panels + 4x24 AVX2/FMA register-blocked micro-kernel + OpenMP over batch entries, each thread owning whole matrices [refine: tile_m 48 -> 96]
// kscout offline template: bmm
// strategy: per batch entry: BLIS-style GEMM, 4x24 AVX2/FMA micro-kernel, packed B and A; MC=96 NC=3072 KC=512; OpenMP over batch entries
//   loop_order = ijk
//   micro = 4x24
//   pack_a = yes
//   schedule = dynamic
//   threads = batch
//   tile_k = 512
//   tile_m = 96
//   tile_n = 3072
//   unroll_k = 2
//   vector = scalar

// note: loop_order and vector select the loop-nest path; unused with a micro-kernel

#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

// B[0:kc, 0:nc] (row stride ldb) -> panels of 24 columns, each kc x 24 contiguous, zero-padded
static inline void pack_b_panel(const float* b, int64_t ldb, int64_t kc, int64_t nr, float* bp) {
    for (int64_t k = 0; k < kc; ++k) {
        const float* src = b + k * ldb;
        float* dst = bp + k * 24;
        if (nr == 24) {
        _mm256_store_ps(dst + 0, _mm256_loadu_ps(src + 0));
        _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));
        _mm256_store_ps(dst + 16, _mm256_loadu_ps(src + 16));
        } else {
            for (int64_t j = 0; j < 24; ++j)
                dst[j] = j < nr ? src[j] : 0.0f;
        }
    }
}

// A[0:mr, 0:kc] (row stride lda) -> one panel of 4 rows, k-major, zero-padded past mr
static inline void pack_a_panel(const float* a, int64_t lda, int64_t kc, int64_t mr, float* ap) {
    for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = 0; r < 4; ++r)
            ap[k * 4 + r] = r < mr ? a[r * lda + k] : 0.0f;
}

// C[0:mr, 0:nr] (+)= A-block * B-panel over kc, with a 4x24 block of C in 12 ymm registers.
// bp: kc rows of 24 floats (zero-padded past nr); acc: add to C (later KC blocks) or overwrite.
static inline void micro_kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                int64_t mr, int64_t nr, bool acc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c02 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps(), c12 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c22 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c32 = _mm256_setzero_ps();
    #pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
        const __m256 b0 = _mm256_load_ps(bp + k * 24);
        const __m256 b1 = _mm256_load_ps(bp + k * 24 + 8);
        const __m256 b2 = _mm256_load_ps(bp + k * 24 + 16);
        __m256 av = _mm256_broadcast_ss(ap + k * 4 + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01); c02 = _mm256_fmadd_ps(av, b2, c02);
        av = _mm256_broadcast_ss(ap + k * 4 + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11); c12 = _mm256_fmadd_ps(av, b2, c12);
        av = _mm256_broadcast_ss(ap + k * 4 + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21); c22 = _mm256_fmadd_ps(av, b2, c22);
        av = _mm256_broadcast_ss(ap + k * 4 + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31); c32 = _mm256_fmadd_ps(av, b2, c32);
    }
    if (mr == 4 && nr == 24) {
        { float* cr = c + 0 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c00) : c00);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c01) : c01);
          _mm256_storeu_ps(cr + 16, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 16), c02) : c02); }
        { float* cr = c + 1 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c10) : c10);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c11) : c11);
          _mm256_storeu_ps(cr + 16, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 16), c12) : c12); }
        { float* cr = c + 2 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c20) : c20);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c21) : c21);
          _mm256_storeu_ps(cr + 16, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 16), c22) : c22); }
        { float* cr = c + 3 * ldc;
          _mm256_storeu_ps(cr + 0, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 0), c30) : c30);
          _mm256_storeu_ps(cr + 8, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8), c31) : c31);
          _mm256_storeu_ps(cr + 16, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 16), c32) : c32); }
        return;
    }
    alignas(32) float t[96];   // edge tile: spill, then write back only the valid part
    _mm256_store_ps(t + 0, c00);
    _mm256_store_ps(t + 8, c01);
    _mm256_store_ps(t + 16, c02);
    _mm256_store_ps(t + 24, c10);
    _mm256_store_ps(t + 32, c11);
    _mm256_store_ps(t + 40, c12);
    _mm256_store_ps(t + 48, c20);
    _mm256_store_ps(t + 56, c21);
    _mm256_store_ps(t + 64, c22);
    _mm256_store_ps(t + 72, c30);
    _mm256_store_ps(t + 80, c31);
    _mm256_store_ps(t + 88, c32);
    for (int64_t r = 0; r < mr; ++r)
        for (int64_t j = 0; j < nr; ++j)
            c[r * ldc + j] = (acc ? c[r * ldc + j] : 0.0f) + t[r * 24 + j];
}

// bp: packed B block (KC x NC), ap: packed A block (MC x KC)
static void gemm(const float* a, const float* b, float* c, int64_t M, int64_t N, int64_t K,
                 float* bp, float* ap) {
    const int64_t MC = 96, NC = 3072, KC = 512;
    (void)ap;
    for (int64_t jc = 0; jc < N; jc += NC) {
        const int64_t nc = std::min<int64_t>(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            const int64_t kc = std::min<int64_t>(KC, K - pc);
            for (int64_t jr = 0; jr < nc; jr += 24)
                pack_b_panel(b + pc * N + jc + jr, N, kc, std::min<int64_t>(24, nc - jr), bp + jr * kc);
            for (int64_t ic = 0; ic < M; ic += MC) {
                const int64_t mc = std::min<int64_t>(MC, M - ic);
                for (int64_t ir = 0; ir < mc; ir += 4)
                    pack_a_panel(a + (ic + ir) * K + pc, K, kc, std::min<int64_t>(4, mc - ir), ap + ir * kc);
                for (int64_t jr = 0; jr < nc; jr += 24)
                    for (int64_t ir = 0; ir < mc; ir += 4)
                        micro_kernel(kc, ap + ir * kc, bp + jr * kc, c + (ic + ir) * N + jc + jr, N,
                                     std::min<int64_t>(4, mc - ir), std::min<int64_t>(24, nc - jr), pc > 0);
            }
        }
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 2 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 3) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 3) return 1;
    const int64_t BATCH = inputs[0].shape[0], M = inputs[0].shape[1], K = inputs[0].shape[2];
    const int64_t N = inputs[1].shape[2];
    if (inputs[1].shape[0] != BATCH || inputs[1].shape[1] != K) return 1;
    const float* A = static_cast<const float*>(inputs[0].data);
    const float* B = static_cast<const float*>(inputs[1].data);
    float* C = static_cast<float*>(output->data);
    const int64_t MC = 96, NC = 3072, KC = 512;
    const int64_t kcmax = std::min<int64_t>(KC, K), ncmax = (std::min<int64_t>(NC, N) + 23) / 24 * 24;
    const int64_t bp_len = (kcmax * ncmax + 15) / 16 * 16;
    const int64_t ap_len = ((MC + 3) / 4 * 4 * kcmax + 15) / 16 * 16;
    const int nth = omp_get_max_threads();
    float* buf = static_cast<float*>(std::aligned_alloc(64, sizeof(float) * (bp_len + ap_len) * nth));
    if (!buf) return 2;
    #pragma omp parallel
    {
        float* bp = buf + (bp_len + ap_len) * omp_get_thread_num();
        float* ap = bp + bp_len;
        #pragma omp for schedule(dynamic)
        for (int64_t bt = 0; bt < BATCH; ++bt)
            gemm(A + bt * M * K, B + bt * K * N, C + bt * M * N, M, N, K, bp, ap);
    }
    std::free(buf);
    return 0;
}
