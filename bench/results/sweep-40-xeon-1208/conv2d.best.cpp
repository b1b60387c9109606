// strategy: stacked: kvec-tile + omp-images + kvec-avx512 + OpenMP over (image, output channel block) planes [refine: kvec_tile 2x10 -> 2x12]
// kscout offline template: conv2d
// strategy: AVX-512 channels-in-lanes tile: 2 vector(s) of 16 output channels x 12 output columns, padded copy; OpenMP over (image, channel block or row) pairs
//   algo = kvec
//   kvec_tile = 2x12
//   order = h_kb
//   pad = bounds
//   schedule = static
//   simd_width = 16
//   threads = planes
//   tile = 6x2
//   tile_c = 32
//   vector = scalar

// note: the kvec algo always reads a zero-padded copy (pad=bounds unused)
// note: tile, tile_c and order (tile algo only) are unused

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
// KV vectors of 16 output channels x WC output columns of one output row, over every input
// channel. xr: the padded input at (n, c = 0, padded row h, column w0); wp: this channel block's
// packed weights [C][9][16 * KV] (zero past K); bias: the block's bias (zero past K); y: output
// (k0, h, w0), plane stride HW; kn of the block's channels are real. Per filter row r the three
// taps' weights sit in 3*KV registers and each of the WC + 2 input values of padded row h + r is
// broadcast once, feeding output column jj - s of tap s: 3*KV*WC FMAs per 3*KV + WC + 2 loads.
template <int KV, int WC>
static inline void kvec_tile(const float* xr, const float* wp, const float* bias, float* y, int64_t C,
                             int64_t plane, int64_t Wp, int64_t HW, int kn) {
    __m512 acc[KV][WC];
#pragma GCC unroll 8
    for (int v = 0; v < KV; ++v) {
        const __m512 b = _mm512_loadu_ps(bias + 16 * v);
#pragma GCC unroll 16
        for (int j = 0; j < WC; ++j)
            acc[v][j] = b;
    }
    for (int64_t c = 0; c < C; ++c) {
        const float* xc = xr + c * plane;
        const float* wc = wp + c * 9 * (16 * KV);
#pragma GCC unroll 1
        for (int r = 0; r < 3; ++r) {
            __m512 wv[3][KV];
#pragma GCC unroll 3
            for (int s = 0; s < 3; ++s)
#pragma GCC unroll 8
                for (int v = 0; v < KV; ++v) {
                    wv[s][v] = _mm512_loadu_ps(wc + (r * 3 + s) * (16 * KV) + 16 * v);
                    __asm__("" : "+v"(wv[s][v]));   // held: not re-loaded by every FMA that uses it
                }
            const float* xt = xc + r * Wp;
#pragma GCC unroll 32
            for (int jj = 0; jj < WC + 2; ++jj) {
                const __m512 xb = _mm512_set1_ps(xt[jj]);
#pragma GCC unroll 3
                for (int s = 0; s < 3; ++s) {
                    const int j = jj - s;   // a compile-time constant once unrolled
                    if (j < 0 || j >= WC)
                        continue;
#pragma GCC unroll 8
                    for (int v = 0; v < KV; ++v)
                        acc[v][j] = _mm512_fmadd_ps(wv[s][v], xb, acc[v][j]);
                }
            }
        }
    }
    // channels are lanes, y is channel-major: out through a small transpose
    alignas(64) float t[WC][16 * KV];
#pragma GCC unroll 16
    for (int j = 0; j < WC; ++j)
#pragma GCC unroll 8
        for (int v = 0; v < KV; ++v)
            _mm512_store_ps(&t[j][16 * v], acc[v][j]);
    for (int k = 0; k < kn; ++k)
#pragma GCC unroll 16
        for (int j = 0; j < WC; ++j)
            y[k * HW + j] = t[j][k];
}

// the row's last, narrower tile: the instance for its width
template <int KV, int WC>
static inline void kvec_tile_any(int wc, const float* xr, const float* wp, const float* bias, float* y, int64_t C,
                                 int64_t plane, int64_t Wp, int64_t HW, int kn) {
    if constexpr (WC > 0) {
        if (wc == WC)
            return kvec_tile<KV, WC>(xr, wp, bias, y, C, plane, Wp, HW, kn);
        return kvec_tile_any<KV, WC - 1>(wc, xr, wp, bias, y, C, plane, Wp, HW, kn);
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 3 || output->dtype != KS_F32) return 1;
    if (inputs[0].dtype != KS_F32 || inputs[0].ndim != 4) return 1;
    if (inputs[1].dtype != KS_F32 || inputs[1].ndim != 4) return 1;
    if (inputs[2].dtype != KS_F32 || inputs[2].ndim != 1) return 1;
    const int64_t N = inputs[0].shape[0], C = inputs[0].shape[1], H = inputs[0].shape[2], W = inputs[0].shape[3];
    const int64_t K = inputs[1].shape[0];
    if (inputs[1].shape[1] != C || inputs[1].shape[2] != 3 || inputs[1].shape[3] != 3 || inputs[2].shape[0] != K)
        return 1;
    const float* x = static_cast<const float*>(inputs[0].data);
    const float* wt = static_cast<const float*>(inputs[1].data);
    const float* bias = static_cast<const float*>(inputs[2].data);
    float* y = static_cast<float*>(output->data);
    // zero-padded copy: plane (n, c) is (H + 2) rows of Wp = W + 2, x at row 1 + h, column 1 + w;
    // SLACK floats after the last plane let the last vector of a row read past it (lanes discarded)
    const int64_t Hp = H + 2, Wp = W + 2, plane = Hp * Wp, SLACK = 64;
    float* xp = static_cast<float*>(std::aligned_alloc(64, ((N * C * plane + SLACK) * sizeof(float) + 63) / 64 * 64));
    if (!xp) return 2;
    std::memset(xp + N * C * plane, 0, SLACK * sizeof(float));
    #pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) {
        float* dst = xp + nc * plane;
        const float* src = x + nc * H * W;
        std::memset(dst, 0, Wp * sizeof(float));                      // top padding row
        for (int64_t h = 0; h < H; ++h) {
            float* d = dst + (h + 1) * Wp;
            d[0] = 0.0f;
            std::memcpy(d + 1, src + h * W, W * sizeof(float));
            d[W + 1] = 0.0f;
        }
        std::memset(dst + (H + 1) * Wp, 0, Wp * sizeof(float));       // bottom padding row
    }
    // weights packed per block of KS = 32 output channels: wp[kb][c][r * 3 + s][KS], bias bp[kb][KS] (zero past K)
    const int64_t KS = 32, nkb = (K + KS - 1) / KS;
    float* wp = static_cast<float*>(std::aligned_alloc(64, (nkb * C * 9 * KS * sizeof(float) + 63) / 64 * 64));
    float* bp = static_cast<float*>(std::aligned_alloc(64, (nkb * KS * sizeof(float) + 63) / 64 * 64));
    if (!wp || !bp) { std::free(wp); std::free(bp); std::free(xp); return 2; }
    #pragma omp parallel for schedule(static)
    for (int64_t kb = 0; kb < nkb; ++kb) {
        for (int64_t c = 0; c < C; ++c)
            for (int64_t t = 0; t < 9; ++t)
                for (int64_t i = 0; i < KS; ++i)
                    wp[((kb * C + c) * 9 + t) * KS + i] = kb * KS + i < K ? wt[((kb * KS + i) * C + c) * 9 + t] : 0.0f;
        for (int64_t i = 0; i < KS; ++i)
            bp[kb * KS + i] = kb * KS + i < K ? bias[kb * KS + i] : 0.0f;
    }
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t kb = 0; kb < nkb; ++kb) {
                const int kn = static_cast<int>(std::min<int64_t>(KS, K - kb * KS));
                for (int64_t w0 = 0; w0 < W; w0 += 12) {
                    const int wc = static_cast<int>(std::min<int64_t>(12, W - w0));
                    kvec_tile_any<2, 12>(wc, xp + n * C * plane + h * Wp + w0, wp + kb * C * 9 * KS, bp + kb * KS,
                                              y + ((n * K + kb * KS) * H + h) * W + w0, C, plane, Wp, H * W, kn);
                }
            }
    std::free(wp);
    std::free(bp);
    std::free(xp);
    return 0;
}
