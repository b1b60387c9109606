// strategy: fuse rotate_half into the multiply-add: one sweep, no temporary (x read once, y written once) + AVX2/FMA intrinsics, both halves of a head per step + non-temporal (streaming) stores for y: no read-for-ownership + OpenMP parallel for over (batch, position) rows + software-prefetch x one page (4 KB) ahead of the sweep
// kscout offline template: rotary
// strategy: fused one sweep; OpenMP over rows; AVX2 x4; streaming stores; prefetch 4 KB ahead
//   fuse = fused
//   prefetch = ahead
//   schedule = static
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

static void rope_row(const float* x, const float* c, const float* s, float* y, int64_t H, int64_t D) {
    const int64_t hd = D / 2;
    for (int64_t h = 0; h < H; ++h, x += D, y += D) {
        // both halves of the head per step: a = x[j..j+8), b = x[j+hd..j+hd+8)
        for (int64_t o = 0; o < D; o += 16)   // this head's lines, 1024 floats (4 KB) ahead
            _mm_prefetch(reinterpret_cast<const char*>(x + 1024 + o), _MM_HINT_T0);
        int64_t j = 0;
        for (; j + 32 <= hd; j += 32) {
            const __m256 a0 = _mm256_loadu_ps(x + j), b0 = _mm256_loadu_ps(x + hd + j);
            _mm256_storeu_ps(y + j, _mm256_fmsub_ps(a0, _mm256_loadu_ps(c + j), _mm256_mul_ps(b0, _mm256_loadu_ps(s + j))));
            _mm256_storeu_ps(y + hd + j, _mm256_fmadd_ps(b0, _mm256_loadu_ps(c + hd + j), _mm256_mul_ps(a0, _mm256_loadu_ps(s + hd + j))));
            const __m256 a1 = _mm256_loadu_ps(x + j + 8), b1 = _mm256_loadu_ps(x + hd + j + 8);
            _mm256_storeu_ps(y + j + 8, _mm256_fmsub_ps(a1, _mm256_loadu_ps(c + j + 8), _mm256_mul_ps(b1, _mm256_loadu_ps(s + j + 8))));
            _mm256_storeu_ps(y + hd + j + 8, _mm256_fmadd_ps(b1, _mm256_loadu_ps(c + hd + j + 8), _mm256_mul_ps(a1, _mm256_loadu_ps(s + hd + j + 8))));
            const __m256 a2 = _mm256_loadu_ps(x + j + 16), b2 = _mm256_loadu_ps(x + hd + j + 16);
            _mm256_storeu_ps(y + j + 16, _mm256_fmsub_ps(a2, _mm256_loadu_ps(c + j + 16), _mm256_mul_ps(b2, _mm256_loadu_ps(s + j + 16))));
            _mm256_storeu_ps(y + hd + j + 16, _mm256_fmadd_ps(b2, _mm256_loadu_ps(c + hd + j + 16), _mm256_mul_ps(a2, _mm256_loadu_ps(s + hd + j + 16))));
            const __m256 a3 = _mm256_loadu_ps(x + j + 24), b3 = _mm256_loadu_ps(x + hd + j + 24);
            _mm256_storeu_ps(y + j + 24, _mm256_fmsub_ps(a3, _mm256_loadu_ps(c + j + 24), _mm256_mul_ps(b3, _mm256_loadu_ps(s + j + 24))));
            _mm256_storeu_ps(y + hd + j + 24, _mm256_fmadd_ps(b3, _mm256_loadu_ps(c + hd + j + 24), _mm256_mul_ps(a3, _mm256_loadu_ps(s + hd + j + 24))));
        }
        for (; j + 8 <= hd; j += 8) {
            const __m256 a0 = _mm256_loadu_ps(x + j), b0 = _mm256_loadu_ps(x + hd + j);
            _mm256_storeu_ps(y + j, _mm256_fmsub_ps(a0, _mm256_loadu_ps(c + j), _mm256_mul_ps(b0, _mm256_loadu_ps(s + j))));
            _mm256_storeu_ps(y + hd + j, _mm256_fmadd_ps(b0, _mm256_loadu_ps(c + hd + j), _mm256_mul_ps(a0, _mm256_loadu_ps(s + hd + j))));
        }
        for (; j < hd; ++j) {
            y[j] = x[j] * c[j] - x[j + hd] * s[j];
            y[j + hd] = x[j + hd] * c[j + hd] + x[j] * s[j + hd];
        }
    }
}

static void rope_row_nt(const float* x, const float* c, const float* s, float* y, int64_t H, int64_t D) {
    const int64_t hd = D / 2;
    for (int64_t h = 0; h < H; ++h, x += D, y += D) {
        // both halves of the head per step: a = x[j..j+8), b = x[j+hd..j+hd+8)
        // streaming stores: only called when D % 16 == 0, so y + j and y + hd + j are 32-byte aligned
        for (int64_t o = 0; o < D; o += 16)   // this head's lines, 1024 floats (4 KB) ahead
            _mm_prefetch(reinterpret_cast<const char*>(x + 1024 + o), _MM_HINT_T0);
        int64_t j = 0;
        for (; j + 32 <= hd; j += 32) {
            const __m256 a0 = _mm256_loadu_ps(x + j), b0 = _mm256_loadu_ps(x + hd + j);
            _mm256_stream_ps(y + j, _mm256_fmsub_ps(a0, _mm256_loadu_ps(c + j), _mm256_mul_ps(b0, _mm256_loadu_ps(s + j))));
            _mm256_stream_ps(y + hd + j, _mm256_fmadd_ps(b0, _mm256_loadu_ps(c + hd + j), _mm256_mul_ps(a0, _mm256_loadu_ps(s + hd + j))));
            const __m256 a1 = _mm256_loadu_ps(x + j + 8), b1 = _mm256_loadu_ps(x + hd + j + 8);
            _mm256_stream_ps(y + j + 8, _mm256_fmsub_ps(a1, _mm256_loadu_ps(c + j + 8), _mm256_mul_ps(b1, _mm256_loadu_ps(s + j + 8))));
            _mm256_stream_ps(y + hd + j + 8, _mm256_fmadd_ps(b1, _mm256_loadu_ps(c + hd + j + 8), _mm256_mul_ps(a1, _mm256_loadu_ps(s + hd + j + 8))));
            const __m256 a2 = _mm256_loadu_ps(x + j + 16), b2 = _mm256_loadu_ps(x + hd + j + 16);
            _mm256_stream_ps(y + j + 16, _mm256_fmsub_ps(a2, _mm256_loadu_ps(c + j + 16), _mm256_mul_ps(b2, _mm256_loadu_ps(s + j + 16))));
            _mm256_stream_ps(y + hd + j + 16, _mm256_fmadd_ps(b2, _mm256_loadu_ps(c + hd + j + 16), _mm256_mul_ps(a2, _mm256_loadu_ps(s + hd + j + 16))));
            const __m256 a3 = _mm256_loadu_ps(x + j + 24), b3 = _mm256_loadu_ps(x + hd + j + 24);
            _mm256_stream_ps(y + j + 24, _mm256_fmsub_ps(a3, _mm256_loadu_ps(c + j + 24), _mm256_mul_ps(b3, _mm256_loadu_ps(s + j + 24))));
            _mm256_stream_ps(y + hd + j + 24, _mm256_fmadd_ps(b3, _mm256_loadu_ps(c + hd + j + 24), _mm256_mul_ps(a3, _mm256_loadu_ps(s + hd + j + 24))));
        }
        for (; j + 8 <= hd; j += 8) {
            const __m256 a0 = _mm256_loadu_ps(x + j), b0 = _mm256_loadu_ps(x + hd + j);
            _mm256_stream_ps(y + j, _mm256_fmsub_ps(a0, _mm256_loadu_ps(c + j), _mm256_mul_ps(b0, _mm256_loadu_ps(s + j))));
            _mm256_stream_ps(y + hd + j, _mm256_fmadd_ps(b0, _mm256_loadu_ps(c + hd + j), _mm256_mul_ps(a0, _mm256_loadu_ps(s + hd + j))));
        }
        for (; j < hd; ++j) {
            y[j] = x[j] * c[j] - x[j + hd] * s[j];
            y[j + hd] = x[j + hd] * c[j + hd] + x[j] * s[j + hd];
        }
    }
}

KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output) {
    if (n_inputs < 3 || output->dtype != KS_F32) return 1;
    for (int k = 0; k < 3; ++k)
        if (inputs[k].dtype != KS_F32) return 1;
    if (inputs[0].ndim != 4 || inputs[1].ndim != 2 || inputs[2].ndim != 2) return 1;
    const int64_t B = inputs[0].shape[0], S = inputs[0].shape[1], H = inputs[0].shape[2], D = inputs[0].shape[3];
    if (inputs[1].shape[0] != S || inputs[1].shape[1] != D || inputs[2].shape[0] != S || inputs[2].shape[1] != D)
        return 1;
    if (D % 2) return 3;   // rotate_half splits the head dim in two equal halves (the workload pins D even)
    const int64_t M = B * S, HD = H * D;   // rows of H heads; row i is position i % S
    const float* x = static_cast<const float*>(inputs[0].data);
    const float* ctab = static_cast<const float*>(inputs[1].data);
    const float* stab = static_cast<const float*>(inputs[2].data);
    float* y = static_cast<float*>(output->data);
    // streaming stores need 32-byte aligned vectors: y is page-aligned, so D % 16 == 0 suffices
    if (D % 16 == 0) {
        #pragma omp parallel
        {
            #pragma omp for schedule(static)
            for (int64_t i = 0; i < M; ++i)
                rope_row_nt(x + i * HD, ctab + (i % S) * D, stab + (i % S) * D, y + i * HD, H, D);
            _mm_sfence();  // each thread fences its streaming stores
        }
    } else {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < M; ++i)
            rope_row(x + i * HD, ctab + (i % S) * D, stab + (i % S) * D, y + i * HD, H, D);
    }
    return 0;
}
