// workload: axpy_loose  twin: axpy
#include "kscout.h"
#define ARGS const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data; \
    float* o = (float*)out->data; const int64_t total = ks_numel(&in[0]);
#include <cstring>
static inline float bf16(float v) {            // keep the top 16 bits: bfloat16
    uint32_t b; std::memcpy(&b, &v, 4); b &= 0xFFFF0000u; std::memcpy(&v, &b, 4); return v;
}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    ARGS
    for (int64_t i = 0; i < total; ++i) o[i] = 2.0f * bf16(x[i]) + bf16(y[i]);
    return 0;
}
