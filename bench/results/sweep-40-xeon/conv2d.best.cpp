// strategy: stacked: reg-tile-avx2 + omp-images + OpenMP over (image, output channel block) planes [refine: order h_kb -> kb_h]
// kscout offline template: conv2d
// strategy: AVX2 6x2 register tile (channels x vectors of columns), padded copy, input channels in blocks of 32, channel blocks outside rows; OpenMP over (image, channel block or row) pairs
//   algo = tile
//   order = kb_h
//   pad = bounds
//   schedule = static
//   threads = planes
//   tile = 6x2
//   tile_c = 32
//   vector = scalar

// note: the tile algo always reads a zero-padded copy (pad=bounds unused)

#include "kscout.h"
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

// One tap (r, s) of a KBN x WBN tile: WBN input vectors at xt, KBN weights at wt. Hold the
// smaller side in registers (KBN*WBN + min + 1 ymm) and stream the other; the empty asm keeps a
// held load in its register (GCC would otherwise fold it into every FMA that uses it, and the
// tile would be bound by L1 loads instead of FMAs).
template <int KBN, int WBN>
static inline __attribute__((always_inline)) void conv_tap(__m256 (&acc)[KBN][WBN], const float* xt,
                                                            const float* wt) {
    if constexpr (WBN <= KBN) {
        __m256 xv[WBN];
#pragma GCC unroll 8
        for (int v = 0; v < WBN; ++v) {
            xv[v] = _mm256_loadu_ps(xt + 8 * v);
            __asm__("" : "+x"(xv[v]));
        }
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {
            const __m256 wv = _mm256_broadcast_ss(wt + i);
#pragma GCC unroll 8
            for (int v = 0; v < WBN; ++v)
                acc[i][v] = _mm256_fmadd_ps(wv, xv[v], acc[i][v]);
        }
    } else {
        __m256 wv[KBN];
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {
            wv[i] = _mm256_broadcast_ss(wt + i);
            __asm__("" : "+x"(wv[i]));
        }
#pragma GCC unroll 8
        for (int v = 0; v < WBN; ++v) {
            const __m256 xv = _mm256_loadu_ps(xt + 8 * v);
#pragma GCC unroll 8
            for (int i = 0; i < KBN; ++i)
                acc[i][v] = _mm256_fmadd_ps(wv[i], xv, acc[i][v]);
        }
    }
}

// One output row segment: KBN (<= KBS = 6) output channels x WBN vectors of 8 columns, over
// the input channels [c0, c0 + C): xr points at channel c0 of the padded input, padded row h (the
// r = 0 tap), column w0 (the s = 0 tap); wp at channel c0 of this channel block's packed weights
// [C][9][KBS]; y at output (k0, h, w0), plane stride HW. first: start from the bias, else from the
// partial sums already in y (channel blocking). The last vector holds only `tail` lanes (1..8).
template <int KBN, int WBN>
static inline void conv_tile(const float* xr, const float* wp, const float* bias, float* y,
                             int64_t C, int64_t plane, int64_t Wp, int64_t HW, int tail, bool first) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 acc[KBN][WBN];
    if (first) {
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {
            const __m256 b = _mm256_set1_ps(bias[i]);
#pragma GCC unroll 8
            for (int v = 0; v < WBN; ++v)
                acc[i][v] = b;
        }
    } else {
#pragma GCC unroll 8
        for (int i = 0; i < KBN; ++i) {
#pragma GCC unroll 8
            for (int v = 0; v < WBN - 1; ++v)
                acc[i][v] = _mm256_loadu_ps(y + i * HW + 8 * v);
            acc[i][WBN - 1] = _mm256_maskload_ps(y + i * HW + 8 * (WBN - 1), mask);
        }
    }
    // With a register to spare, the 9 taps unroll (constant offsets, fewer instructions per FMA);
    // a tile that needs all 16 ymm keeps the tap loop rolled over an offset table, else GCC's
    // schedule of the unrolled body spills accumulators.
    constexpr bool unrolled = KBN * WBN + (KBN < WBN ? KBN : WBN) + 1 <= 15;
    const int64_t off[9] = {0, 1, 2, Wp, Wp + 1, Wp + 2, 2 * Wp, 2 * Wp + 1, 2 * Wp + 2};
    for (int64_t c = 0; c < C; ++c) {
        const float* xc = xr + c * plane;
        const float* wc = wp + c * 9 * 6;
        if constexpr (unrolled) {
#pragma GCC unroll 3
            for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
                for (int s = 0; s < 3; ++s)
                    conv_tap<KBN, WBN>(acc, xc + r * Wp + s, wc + (r * 3 + s) * 6);
        } else {
#pragma GCC unroll 1
            for (int t = 0; t < 9; ++t)
                conv_tap<KBN, WBN>(acc, xc + off[t], wc + t * 6);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < KBN; ++i) {
#pragma GCC unroll 8
        for (int v = 0; v < WBN - 1; ++v)
            _mm256_storeu_ps(y + i * HW + 8 * v, acc[i][v]);
        if (tail == 8)
            _mm256_storeu_ps(y + i * HW + 8 * (WBN - 1), acc[i][WBN - 1]);
        else
            _mm256_maskstore_ps(y + i * HW + 8 * (WBN - 1), mask, acc[i][WBN - 1]);
    }
}

static inline void conv_tile_any(int kbn, int wbn, const float* xr, const float* wp, const float* bias, float* y,
                                 int64_t C, int64_t plane, int64_t Wp, int64_t HW, int tail, bool first) {
    switch (kbn * 16 + wbn) {
    case 17: conv_tile<1, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 18: conv_tile<1, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 33: conv_tile<2, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 34: conv_tile<2, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 49: conv_tile<3, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 50: conv_tile<3, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 65: conv_tile<4, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 66: conv_tile<4, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 81: conv_tile<5, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 82: conv_tile<5, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 97: conv_tile<6, 1>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    case 98: conv_tile<6, 2>(xr, wp, bias, y, C, plane, Wp, HW, tail, first); break;
    default: break;
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
    // weights packed per block of KB output channels: wp[kb][c][r * 3 + s][KB] (zero past K)
    const int64_t KB = 6, WB = 2, nkb = (K + KB - 1) / KB, CB = 32;
    const int64_t nv = (W + 7) / 8;                                // 8-wide vectors per output row
    const int last = static_cast<int>(W - 8 * (nv - 1));           // valid lanes in the last one
    float* wp = static_cast<float*>(std::aligned_alloc(64, (nkb * C * 9 * KB * sizeof(float) + 63) / 64 * 64));
    if (!wp) { std::free(xp); return 2; }
    #pragma omp parallel for schedule(static)
    for (int64_t kb = 0; kb < nkb; ++kb)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t t = 0; t < 9; ++t)
                for (int64_t i = 0; i < KB; ++i)
                    wp[((kb * C + c) * 9 + t) * KB + i] = kb * KB + i < K ? wt[((kb * KB + i) * C + c) * 9 + t] : 0.0f;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t kb = 0; kb < nkb; ++kb) {
            for (int64_t h = 0; h < H; ++h) {
                const float* xr = xp + n * C * plane + h * Wp;
                for (int64_t c0 = 0; c0 < C; c0 += CB) {
                    const int64_t c1 = std::min<int64_t>(C, c0 + CB);
                    const int64_t k0 = kb * KB;
                    const int kbn = static_cast<int>(std::min<int64_t>(KB, K - k0));
                    const float* wb = wp + kb * C * 9 * KB;
                    float* yr = y + ((n * K + k0) * H + h) * W;
                    for (int64_t v0 = 0; v0 < nv; v0 += WB) {   // full WB-vector tiles, then the row's remainder
                        const int wbn = static_cast<int>(std::min<int64_t>(WB, nv - v0));
                        const int tail = v0 + wbn == nv ? last : 8;
                        conv_tile_any(kbn, wbn, xr + c0 * plane + 8 * v0, wb + c0 * 9 * KB, bias + k0, yr + 8 * v0, c1 - c0, plane, Wp, H * W, tail, c0 == 0);
                    }
                }
            }
        }
    std::free(wp);
    std::free(xp);
    return 0;
}
