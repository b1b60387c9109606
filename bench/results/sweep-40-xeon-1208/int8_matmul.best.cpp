// strategy: AVX2: convert 8 int8 weights to fp32 in registers (cvtepi8_epi32 + cvtepi32_ps), FMA into a register tile of accumulators over K + weight tiles in the outer loop, rows of x inside: each int8 weight row is read from memory once and reused from cache by every row of x + OpenMP over tiles of output columns (weight rows) + accumulate x * w, apply the per-channel scale once per output + widen the intrinsics to AVX-512: 16 floats per zmm vector [refine: tile 4x6 -> 8x3]
// kscout offline template: int8_matmul
// strategy: weight tiles outside (each read once); scale once per output; OpenMP over output columns; AVX-512 8x3 register tile
//   dequant = scale_after
//   order = nm
//   prefetch = none
//   schedule = static
//   simd_width = 16
//   threads = cols
//   tile = 8x3
//   tile_k = 0
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
static inline float ks_hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }
static inline float ks_hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }
static inline __m512 ks_i8_to_ps(const int8_t* w) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}
// y[0:MB, 0:NB] over k in [k0, k1): MB rows of x (row stride K) against NB int8 weight rows (row
// stride K). Vectors run along K: each 16-byte weight load is converted once and feeds MB FMAs,
// each x vector feeds NB; MB*NB accumulators stay in vector registers (the loops unroll fully).
// first: y = partial (else y += partial); last: the per-channel scale goes on (scale_after).
template <int MB, int NB>
static inline void tile_dot(const float* x, const int8_t* w, const float* s, float* y,
                            int64_t K, int64_t N, int64_t k0, int64_t k1, bool first, bool last) {
    __m512 acc[MB][NB];
#pragma GCC unroll 8
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j)
            acc[i][j] = _mm512_setzero_ps();
    int64_t k = k0;
    for (; k + 16 <= k1; k += 16) {
        // Hold the smaller side of the tile in registers and stream the other (MB*NB + min + 1
        // vector registers). The empty asm keeps a held load in its register: otherwise GCC folds
        // it into every FMA that uses it and the loop is bound by L1 loads instead of FMAs.
        if constexpr (NB <= MB) {
            __m512 wv[NB];
#pragma GCC unroll 8
            for (int j = 0; j < NB; ++j) {
                wv[j] = ks_i8_to_ps(w + j * K + k);
            }
#pragma GCC unroll 8
            for (int i = 0; i < MB; ++i) {
                __m512 xv = _mm512_loadu_ps(x + i * K + k);
                __asm__("" : "+v"(xv));
#pragma GCC unroll 8
                for (int j = 0; j < NB; ++j)
                    acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
            }
        } else {
            __m512 xv[MB];
#pragma GCC unroll 8
            for (int i = 0; i < MB; ++i) {
                xv[i] = _mm512_loadu_ps(x + i * K + k);
                __asm__("" : "+v"(xv[i]));
            }
#pragma GCC unroll 8
            for (int j = 0; j < NB; ++j) {
                __m512 wv = ks_i8_to_ps(w + j * K + k);
#pragma GCC unroll 8
                for (int i = 0; i < MB; ++i)
                    acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
            }
        }
    }
    float t[MB][NB];
#pragma GCC unroll 8
    for (int i = 0; i < MB; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NB; ++j)
            t[i][j] = ks_hsum16(acc[i][j]);
    for (; k < k1; ++k)   // K tail
        for (int i = 0; i < MB; ++i)
            for (int j = 0; j < NB; ++j)
                t[i][j] += x[i * K + k] * static_cast<float>(w[j * K + k]);
    for (int i = 0; i < MB; ++i)
        for (int j = 0; j < NB; ++j) {
            const float v = first ? t[i][j] : y[i * N + j] + t[i][j];
            y[i * N + j] = (last ? v * s[j] : v);
        }
}

static inline void tile_any(int mb, int nb, const float* x, const int8_t* w, const float* s, float* y,
                            int64_t K, int64_t N, int64_t k0, int64_t k1, bool first, bool last) {
    switch (mb * 16 + nb) {
    case 17: tile_dot<1, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 18: tile_dot<1, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 19: tile_dot<1, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 33: tile_dot<2, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 34: tile_dot<2, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 35: tile_dot<2, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 49: tile_dot<3, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 50: tile_dot<3, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 51: tile_dot<3, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 65: tile_dot<4, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 66: tile_dot<4, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 67: tile_dot<4, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 81: tile_dot<5, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 82: tile_dot<5, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 83: tile_dot<5, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 97: tile_dot<6, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 98: tile_dot<6, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 99: tile_dot<6, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 113: tile_dot<7, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 114: tile_dot<7, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 115: tile_dot<7, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 129: tile_dot<8, 1>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 130: tile_dot<8, 2>(x, w, s, y, K, N, k0, k1, first, last); break;
    case 131: tile_dot<8, 3>(x, w, s, y, K, N, k0, k1, first, last); break;
    default: break;
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 3 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 2) return 1;
    if (inputs[1].dtype != KS_I8 || inputs[1].ndim != 2) return 1;
    if (inputs[2].dtype != KS_F32 || inputs[2].ndim != 1) return 1;
    const int64_t M = inputs[0].shape[0], K = inputs[0].shape[1], N = inputs[1].shape[0];
    if (inputs[1].shape[1] != K || inputs[2].shape[0] != N) return 1;
    const float* x = static_cast<const float*>(inputs[0].data);
    const int8_t* w = static_cast<const int8_t*>(inputs[1].data);
    const float* s = static_cast<const float*>(inputs[2].data);
    float* y = static_cast<float*>(output->data);
    const int64_t MB = 8, NB = 3;
    const int64_t KC = K;   // tile_k = 0: one block
    #pragma omp parallel
    {
        // K blocks: the barrier after each block's loop orders the partial sums written to y
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t k1 = std::min<int64_t>(K, k0 + KC);
            const bool first = k0 == 0, last = k1 == K;
            #pragma omp for schedule(static)
            for (int64_t n0 = 0; n0 < N; n0 += NB)
                for (int64_t m0 = 0; m0 < M; m0 += MB)
                    tile_any(std::min<int64_t>(MB, M - m0), std::min<int64_t>(NB, N - n0), x + m0 * K, w + n0 * K, s + n0, y + m0 * N + n0, K, N, k0, k1, first, last);
        }
    }
    return 0;
}
