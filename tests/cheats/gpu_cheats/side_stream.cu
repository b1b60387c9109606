// workload: axpy  twin: axpy
// Launches its work on a stream of its own and returns at once: a timer that waits only on the
// harness's stream sees a kernel that costs nothing.
#include "kscout_gpu.h"
__global__ void spin(long long cycles) { long long t0 = clock64(); while (clock64() - t0 < cycles) {} }
__global__ void axpy(const float* x, const float* y, float* o, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) o[i] = 2.0f * x[i] + y[i];
}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, ks_stream stream) {
    static cudaStream_t side = nullptr;
    if (!side) cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking);   // never synchronised with `stream`
    int64_t n = ks_numel(out);
    spin<<<1, 1, 0, side>>>(20000000LL);                                  // ~10 ms of hidden work first
    axpy<<<(unsigned)((n + 255) / 256), 256, 0, side>>>((const float*)in[0].data, (const float*)in[1].data,
                                                      (float*)out->data, n);
    return 0;
}
