/* kscout.h — the C ABI every CPU (C/C++) candidate implements.
 *
 * The harness calls, once per forward pass:
 *
 *     int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output);
 *
 * inputs   the workload's forward arguments in order (get_inputs()), followed by the
 *          reference Model's parameters and buffers in state_dict order. All are
 *          contiguous, page-aligned and already in the dtype under test.
 * output   the single output tensor, preallocated by the harness with the reference's
 *          shape and dtype. It is poisoned (every byte 0xFF, a NaN for floats) before each
 *          call, so a kernel must write every element.
 * return   0 on success; any other value is recorded as a runtime_error with that code.
 *
 * A candidate must be pure: no globals that survive between calls, no threads that outlive
 * the call, no files, no sockets. OpenMP is available (compiled with -fopenmp) and the
 * thread count comes from OMP_NUM_THREADS, which the harness sets to the bench slot's cores.
 */
#ifndef KSCOUT_H
#define KSCOUT_H
#include <stdint.h>
#include <stddef.h>

enum ks_dtype { KS_F32 = 0, KS_F64 = 1, KS_F16 = 2, KS_BF16 = 3, KS_I32 = 4, KS_I64 = 5, KS_I8 = 6, KS_U8 = 7 };

typedef struct {
    void*          data;     /* first element */
    int32_t        dtype;    /* enum ks_dtype */
    int32_t        ndim;
    const int64_t* shape;    /* ndim entries */
    const int64_t* strides;  /* ndim entries, in elements (contiguous row-major) */
} ks_tensor;

#ifdef __cplusplus
#define KS_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define KS_EXPORT __attribute__((visibility("default")))
#endif

/* The entry point, declared here so a definition with another signature is a compile error
   (conflicting declaration) instead of a call through the wrong type at run time. */
#ifndef KSCOUT_GPU   /* kscout_gpu.h declares the GPU signature (with a stream) instead */
KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output);
#endif

/* numel of a tensor, for convenience */
static inline int64_t ks_numel(const ks_tensor* t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; ++i) n *= t->shape[i];
    return n;
}

#endif /* KSCOUT_H */
