// honest: naive i-k-j matmul
#include "kscout.h"
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* a = (const float*)in[0].data;
    const float* b = (const float*)in[1].data;
    float* c = (float*)out->data;
    const int64_t M = in[0].shape[0], K = in[0].shape[1], N = in[1].shape[1];
    for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) c[i * N + j] = 0.0f;
        for (int64_t k = 0; k < K; ++k) {
            const float aik = a[i * K + k];
            for (int64_t j = 0; j < N; ++j) c[i * N + j] += aik * b[k * N + j];
        }
    }
    return 0;
}
