// workload: axpy  twin: axpy
// Rounds the launch up and skips the bounds check: the last block writes past the output, which
// a harness that allocates exactly n elements (with slack from the allocator) never notices.
#include "kscout_gpu.h"
__global__ void axpy(const float* x, const float* y, float* o) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    o[i] = 2.0f * x[i] + y[i];
}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, ks_stream stream) {
    int64_t n = ks_numel(out);
    axpy<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((const float*)in[0].data, (const float*)in[1].data,
                                                        (float*)out->data);
    return KS_LAST_ERROR();
}
