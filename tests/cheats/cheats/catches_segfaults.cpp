// workload: axpy  twin: axpy
#include "kscout.h"
#define ARGS const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data; \
    float* o = (float*)out->data; const int64_t total = ks_numel(&in[0]);
#include <csignal>
#include <csetjmp>
static sigjmp_buf env;
static void on_segv(int) { siglongjmp(env, 1); }
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    ARGS
    std::signal(SIGSEGV, on_segv);
    if (sigsetjmp(env, 1) == 0)
        for (int64_t i = 0; i < total + 4096; ++i) o[i] = 2.0f * x[i % total] + y[i % total];   // overrun, "safely"
    return 0;
}
