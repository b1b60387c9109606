"""matmul for the cuda and hip backends: C[M, N] = A[M, K] @ B[K, N] in float32, row-major.

C++ with the kscout_gpu.h ABI, one source for both vendors (fp32 FMA on the CUDA/vector cores: no
tensor cores, which would downcast to TF32). The naive kernel is one thread per element of C
reading A and B from global memory. The space is the classic SGEMM ladder:

- `smem`: the block stages BM x BK of A and BK x BN of B in shared memory, each thread computes
  TM x TN outputs from registers (TM = TN = 1 is the textbook shared-memory tiling);
- register blocking: 64x64 tiles with 4x4 outputs per thread, then 128x128 with 8x8 (256
  threads either way), so every shared-memory load feeds TM or TN FMAs;
- A is stored transposed in shared memory (As[k][m]), so the inner loop reads TM consecutive
  floats, and padded by one column against bank conflicts on the transposing store;
- BK, the K slice per shared-memory stage, is tunable.

Edges are bounds-checked on load (zero fill) and store, so any M, N, K is legal.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

# tiling -> (BM, BN, TM, TN); threads per block = (BM / TM) * (BN / TN)
TILINGS = {"smem16": (16, 16, 1, 1), "reg64": (64, 64, 4, 4), "reg128": (128, 128, 8, 8)}

NAIVE = '''\
__global__ void matmul_naive(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                             int M, int N, int K) {
    int row = blockIdx.y * blockDim.y + threadIdx.y, col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row >= M || col >= N) return;
    float acc = 0.0f;
    for (int k = 0; k < K; ++k) acc += A[(size_t)row * K + k] * B[(size_t)k * N + col];
    C[(size_t)row * N + col] = acc;
}
'''

TILED = '''\
// One block: a BM x BN tile of C; one thread: TM x TN of it, accumulated in registers.
template <int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
matmul_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M, int N, int K) {
    constexpr int THREADS = (BM / TM) * (BN / TN);
    __shared__ float As[BK][BM + 1];     // A transposed: As[k][m]; +1 avoids bank conflicts on the store
    __shared__ float Bs[BK][BN];
    const int tid = threadIdx.x;
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = tid; e < BM * BK; e += THREADS) {          // A tile: consecutive threads, consecutive k
            int r = e / BK, c = e % BK, gr = m0 + r, gc = k0 + c;
            As[c][r] = (gr < M && gc < K) ? A[(size_t)gr * K + gc] : 0.0f;
        }
        for (int e = tid; e < BK * BN; e += THREADS) {          // B tile: consecutive threads, consecutive n
            int r = e / BN, c = e % BN, gr = k0 + r, gc = n0 + c;
            Bs[r][c] = (gr < K && gc < N) ? B[(size_t)gr * N + gc] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) a[i] = As[kk][tr * TM + i];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tc * TN + j];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int r = m0 + tr * TM + i;
        if (r >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int c = n0 + tc * TN + j;
            if (c < N) C[(size_t)r * N + c] = acc[i][j];
        }
    }
}
'''


class _MatmulGpu(TemplateFamily):
    family = "matmul"
    comment = "//"
    naive_description = "naive: one thread per element of C, A and B read from global memory"
    axes = [
        Axis(name="tiling", values=["none", *TILINGS], default="none",
             doc="none: naive; smem16: 16x16 shared-memory tiles, 1 output per thread; reg64 / reg128: "
                 "64x64 / 128x128 tiles with 4x4 / 8x8 outputs per thread in registers"),
        Axis(name="block_k", values=[8, 16, 32], default=16, kind="tunable",
             doc="BK: the K slice staged in shared memory per step (tiled kernels)"),
    ]
    moves = [
        Move(name="smem-tiles", description="stage 16x16 tiles of A and B in shared memory",
             assigns={"tiling": "smem16"}, requires={"tiling": "none"}, prior_gain=3.0),
        Move(name="register-block-4x4", description="64x64 tiles, 4x4 outputs per thread in registers",
             assigns={"tiling": "reg64"}, requires={"tiling": "smem16"}, prior_gain=3.0),
        Move(name="register-block-8x8", description="128x128 tiles, 8x8 outputs per thread in registers",
             assigns={"tiling": "reg128"}, requires={"tiling": "reg64"}, prior_gain=1.4),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        if p["tiling"] == "none":
            return "one thread per output, global memory only"
        bm, bn, tm, tn = TILINGS[p["tiling"]]
        return (f"{bm}x{bn} shared-memory tiles, BK {p['block_k']}, {tm}x{tn} outputs per thread, "
                f"{(bm // tm) * (bn // tn)} threads per block")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        if p["tiling"] == "none":
            body, launch = NAIVE, ("    dim3 block(16, 16), grid((unsigned)((N + 15) / 16), (unsigned)((M + 15) / 16));\n"
                                   "    matmul_naive<<<grid, block, 0, stream>>>(A, B, C, (int)M, (int)N, (int)K);\n")
        else:
            bm, bn, tm, tn = TILINGS[p["tiling"]]
            threads = (bm // tm) * (bn // tn)
            body = TILED
            launch = (f"    dim3 grid((unsigned)((N + {bn - 1}) / {bn}), (unsigned)((M + {bm - 1}) / {bm}));\n"
                      f"    matmul_tiled<{bm}, {bn}, {p['block_k']}, {tm}, {tn}><<<grid, {threads}, 0, stream>>>"
                      "(A, B, C, (int)M, (int)N, (int)K);\n")
        return f'''{self.header(p, self.strategy(p))}#include "kscout_gpu.h"

{body}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, ks_stream stream) {{
    const float* A = (const float*)in[0].data;
    const float* B = (const float*)in[1].data;
    float* C = (float*)out->data;
    int64_t M = in[0].shape[0], K = in[0].shape[1], N = in[1].shape[1];
    if (M == 0 || N == 0) return 0;
{launch}    return KS_LAST_ERROR();
}}
'''


@register
class CudaMatmulTemplates(_MatmulGpu):
    backend = "cuda"


@register
class HipMatmulTemplates(_MatmulGpu):
    backend = "hip"
