/* kscout_gpu.h — the C ABI every CUDA and HIP candidate implements.
 *
 * The harness calls, once per forward pass, from the host:
 *
 *     int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output, ks_stream stream);
 *
 * inputs   as in kscout.h (forward arguments, then the Model's state_dict tensors), except
 *          that every `data` pointer is DEVICE memory on the current device.
 * output   device memory with the reference's shape and dtype, poisoned (0xFF bytes) before each
 *          call and fenced by canary bytes: write every element, and nothing outside it.
 * stream   the stream the harness times and synchronises: launch every kernel on it. Work left
 *          on another stream is caught as async_work (the output changes after the call).
 * return   0 on success; any other value is a runtime_error with that code. Return the launch
 *          error if there is one: `return KS_LAST_ERROR();` after the last launch.
 *
 * The shape and stride arrays live in host memory and are valid only during the call; copy
 * what a kernel needs into its arguments. A candidate must be pure: no allocations that survive
 * the call (no caches keyed by pointer), no host threads, no files.
 */
#ifndef KSCOUT_GPU_H
#define KSCOUT_GPU_H
#define KSCOUT_GPU 1        /* kscout.h then leaves the CPU entry point undeclared */
#include "kscout.h"

#if defined(__HIP_PLATFORM_AMD__) || defined(__HIPCC__)
#include <hip/hip_runtime.h>
typedef hipStream_t ks_stream;
/* The launch error as an int, for the return value: one spelling for CUDA and HIP sources. */
#define KS_LAST_ERROR() ((int)hipGetLastError())
#else
#include <cuda_runtime.h>
typedef cudaStream_t ks_stream;
#define KS_LAST_ERROR() ((int)cudaGetLastError())
#endif

/* Declared here so a definition with another signature is a compile error, not a crash. */
KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output, ks_stream stream);

#endif /* KSCOUT_GPU_H */
