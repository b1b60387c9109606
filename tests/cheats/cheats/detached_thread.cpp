// workload: axpy  twin: axpy_threads
#include "kscout.h"
#define ARGS const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data; \
    float* o = (float*)out->data; const int64_t total = ks_numel(&in[0]);
#include <thread>
#include <chrono>
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    ARGS
    std::thread([=] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        for (int64_t i = 0; i < total; ++i) o[i] = 2.0f * x[i] + y[i];
    }).detach();
    return 0;   // "done"
}
