// workload: axpy_loose  twin: axpy
// Computes in fp16 where fp32 was asked (half the bytes in registers, twice the math rate on some
// parts): within a loose tolerance, far less exact than float32 allows.
#include "kscout_gpu.h"
#include <cuda_fp16.h>
__global__ void axpy(const float* x, const float* y, float* o, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = __half2float(__hadd(__hmul(__float2half(2.0f), __float2half(x[i])), __float2half(y[i])));
}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, ks_stream stream) {
    int64_t n = ks_numel(out);
    axpy<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((const float*)in[0].data, (const float*)in[1].data,
                                                        (float*)out->data, n);
    return KS_LAST_ERROR();
}
