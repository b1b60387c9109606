// honest: out = 1e-7 x, computed
#include "kscout.h"
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    float* o = (float*)out->data;
    const int64_t total = ks_numel(&in[0]);
    for (int64_t i = 0; i < total; ++i) o[i] = x[i] * 1e-7f;
    return 0;
}
