// workload: axpy  twin: axpy
#include "kscout.h"
#define ARGS const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data; \
    float* o = (float*)out->data; const int64_t total = ks_numel(&in[0]);
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    ARGS
    const int64_t body = total / 8 * 8;   // 8-wide body only; "the tail never happens"
    for (int64_t i = 0; i < body; ++i) o[i] = 2.0f * x[i] + y[i];
    return 0;
}
