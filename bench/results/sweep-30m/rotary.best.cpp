// strategy: fuse rotate_half into the multiply-add: one sweep, no temporary (x read once, y written once) + OpenMP parallel for over (batch, position) rows + #pragma omp simd on the head-dim loops
// kscout offline template: rotary
// strategy: fused one sweep; OpenMP over rows; omp simd
//   fuse = fused
//   prefetch = none
//   schedule = static
//   store = normal
//   threads = rows
//   unroll = 1
//   vector = omp_simd


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
        #pragma omp simd
        for (int64_t j = 0; j < hd; ++j) {
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
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; ++i)
        rope_row(x + i * HD, ctab + (i % S) * D, stab + (i % S) * D, y + i * HD, H, D);
    return 0;
}
