// honest: worker threads, all joined before returning
#include "kscout.h"
#include <thread>
#include <vector>
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    const float* y = (const float*)in[1].data;
    float* o = (float*)out->data;
    const int64_t total = ks_numel(&in[0]);
    std::vector<std::thread> pool;
    for (int t = 0; t < 2; ++t)
        pool.emplace_back([=] {
            for (int64_t i = t * total / 2; i < (t + 1) * total / 2; ++i) o[i] = 2.0f * x[i] + y[i];
        });
    for (auto& th : pool) th.join();
    return 0;
}
