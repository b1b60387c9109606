// workload: axpy  twin: axpy
#include "kscout.h"
#define ARGS const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data; \
    float* o = (float*)out->data; const int64_t total = ks_numel(&in[0]);
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    ARGS
    for (volatile int64_t spin = 0;; spin = spin + 1) {}
    return 0;
}
