// honest: a static workspace reused across calls (state that never decides the result)
#include "kscout.h"
#include <cstdlib>
#include <cstring>
static float* ws = nullptr;
static int64_t ws_len = 0;
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    const float* y = (const float*)in[1].data;
    const int64_t total = ks_numel(&in[0]);
    if (ws_len < total) {
        std::free(ws);
        ws = (float*)std::malloc(sizeof(float) * total);
        if (!ws) return 2;
        ws_len = total;
    }
    for (int64_t i = 0; i < total; ++i) ws[i] = 2.0f * x[i];
    for (int64_t i = 0; i < total; ++i) ws[i] += y[i];
    std::memcpy(out->data, ws, sizeof(float) * total);
    return 0;
}
