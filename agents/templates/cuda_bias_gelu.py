"""bias_gelu for the cuda and hip backends: y = gelu_tanh(x + bias) + residual, x/residual [M, N], bias [N].

C++ with the kscout_gpu.h ABI (device pointers, launches on the harness's stream), one source
for both vendors: the header maps the stream type and the launch-error check, and nothing here
assumes a warp size. The naive kernel mirrors eager: three launches (add bias into out, gelu in
place, add residual in place) over a flat grid, one element per thread. The space covers fusing
into one launch (x and residual read once, y written once: a third of the traffic), 16-byte
vector loads and stores (float4, with a scalar tail when N is not a multiple of 4), a
(row, column block) grid that indexes bias by column instead of a modulo per element, the
sigmoid form of gelu_tanh with the fast exp intrinsic, and the block size.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

K_BETA = "0.7978845608028654f"    # sqrt(2 / pi)
K_KAPPA = "0.044715f"


def _gelu(math: str) -> str:
    if math == "sigmoid":
        return f'''\
// 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)): one fast exp and one divide, saturates cleanly
__device__ __forceinline__ float gelu_tanh(float v) {{
    float u = {K_BETA} * (v + {K_KAPPA} * v * v * v);
    return __fdividef(v, 1.0f + __expf(-2.0f * u));
}}
'''
    return f'''\
__device__ __forceinline__ float gelu_tanh(float v) {{
    float u = {K_BETA} * (v + {K_KAPPA} * v * v * v);
    return 0.5f * v * (1.0f + tanhf(u));
}}
'''


class _BiasGeluGpu(TemplateFamily):
    family = "bias_gelu"
    comment = "//"
    naive_description = "naive: three launches like eager (add bias, gelu, add residual), flat grid, scalar"
    axes = [
        Axis(name="fuse", values=["unfused", "fused"], default="unfused",
             doc="unfused: three launches like eager; fused: one launch, x and residual read once, y written once"),
        Axis(name="vector", values=[1, 4], default=1,
             doc="elements per load/store: 4 = float4 (16-byte) accesses, a scalar tail where N % 4 != 0"),
        Axis(name="grid", values=["flat", "rows"], default="flat",
             doc="flat: 1-D grid over all elements (bias index = i % N); rows: 2-D (column block, row) grid"),
        Axis(name="math", values=["tanh", "sigmoid"], default="tanh",
             doc="gelu via tanhf, or the sigmoid form v / (1 + e^-2u) with __expf"),
        Axis(name="block", values=[128, 256, 512, 1024], default=256, kind="tunable",
             doc="threads per block"),
    ]
    moves = [
        Move(name="fuse-one-launch", description="fuse bias add, gelu and residual add into one kernel launch",
             assigns={"fuse": "fused"}, prior_gain=2.5),
        Move(name="vector-float4", description="16-byte float4 loads and stores, scalar tail",
             assigns={"vector": 4}, prior_gain=1.2),
        Move(name="grid-rows", description="2-D grid over (column block, row): bias indexed by column, no modulo",
             assigns={"grid": "rows"}, prior_gain=1.1),
        Move(name="sigmoid-gelu", description="gelu_tanh in sigmoid form with the fast exp intrinsic",
             assigns={"math": "sigmoid"}, prior_gain=1.1),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            "one fused launch" if p["fuse"] == "fused" else "three launches (add bias, gelu, add residual)",
            "float4 accesses" if p["vector"] == 4 else "scalar accesses",
            "2-D (column block, row) grid" if p["grid"] == "rows" else "flat 1-D grid",
            "sigmoid-form gelu with __expf" if p["math"] == "sigmoid" else "tanhf gelu",
            f"{p['block']} threads per block"])

    @staticmethod
    def _op(name: str, p: dict[str, Any]) -> tuple[str, str, str]:
        """(kernel parameters, the per-element statement on element e with bias column c, launch args)."""
        return {
            "fused": ("const float* __restrict__ x, const float* __restrict__ b, const float* __restrict__ r, "
                      "float* __restrict__ y", "y[e] = gelu_tanh(x[e] + b[c]) + r[e];", "x, b, r, y"),
            "add_bias": ("const float* __restrict__ x, const float* __restrict__ b, float* __restrict__ y",
                         "y[e] = x[e] + b[c];", "x, b, y"),
            "gelu": ("float* __restrict__ y", "y[e] = gelu_tanh(y[e]);", "y"),
            "add_residual": ("const float* __restrict__ r, float* __restrict__ y", "y[e] += r[e];", "r, y"),
        }[name]

    def _kernel(self, name: str, p: dict[str, Any]) -> str:
        params, stmt, _ = self._op(name, p)
        v = p["vector"]

        def cdecl(text: str) -> str:     # the bias column, declared only where the statement reads it
            return text if "[c]" in stmt else ""
        if v == 4:
            # The same statement on four lanes: float4 views of every array the statement touches.
            vec = {"fused": "y4[q] = gelu4(x4[q], b4[cq], r4[q]);",
                   "add_bias": "y4[q] = add4(x4[q], b4[cq]);",
                   "gelu": "y4[q] = gelu4(y4[q], zero4(), zero4());",
                   "add_residual": "y4[q] = add4(y4[q], r4[q]);"}[name]
            views = "".join(f"    {'const ' if a != 'y' else ''}float4* {a}4 = ({'const ' if a != 'y' else ''}float4*){a};\n"
                            for a in ("x", "b", "r", "y") if f"{a}4[" in vec)
        if p["grid"] == "rows":
            # gridDim.y is capped at 65535: each block steps over rows by gridDim.y.
            head = (f"__global__ void {name}({params}, int64_t M, int64_t N) {{\n"
                    f"    int64_t col = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * {v};\n"
                    "    if (col >= N) return;\n"
                    "    for (int64_t row = blockIdx.y; row < M; row += gridDim.y) {\n")
            if v == 1:
                return head + f"        int64_t e = row * N + col{cdecl(', c = col')};\n        {stmt}\n    }}\n}}\n"
            return head + (
                "        if (N % 4 == 0 && col + 4 <= N) {\n"
                + views.replace("    ", "            ", 1).replace("\n    ", "\n            ") +
                "            int64_t q = (row * N + col) / 4" + (", cq = col / 4" if "cq]" in vec else "") + ";\n"
                f"            {vec}\n"
                "        } else {\n"
                "            for (int64_t c = col; c < col + 4 && c < N; ++c) {\n"
                "                int64_t e = row * N + c;\n"
                f"                {stmt}\n"
                "            }\n"
                "        }\n    }\n}\n")
        head = (f"__global__ void {name}({params}, int64_t numel, int64_t N) {{\n"
                f"    int64_t i = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * {v};\n"
                "    if (i >= numel) return;\n")
        if v == 1:
            return head + f"    int64_t e = i{cdecl(', c = i % N')};\n    {stmt}\n}}\n"
        return head + (
            "    if (N % 4 == 0 && i + 4 <= numel) {   // rows of a multiple of 4: a float4 never spans two rows\n"
            + views.replace("    ", "        ", 1).replace("\n    ", "\n        ") +
            "        int64_t q = i / 4" + (", cq = (i % N) / 4" if "cq]" in vec else "") + ";\n"
            f"        {vec}\n"
            "    } else {\n"
            "        for (int64_t e = i; e < i + 4 && e < numel; ++e) {\n"
            + cdecl("            int64_t c = e % N;\n") +
            f"            {stmt}\n"
            "        }\n"
            "    }\n}\n")

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        names = ["fused"] if p["fuse"] == "fused" else ["add_bias", "gelu", "add_residual"]
        v, block = p["vector"], p["block"]
        if p["grid"] == "rows":
            grid = f"dim3 grid((unsigned)((N + {v * block - 1}) / {v * block}), (unsigned)(M < 65535 ? M : 65535))"
            tail = "M, N"
        else:
            grid = f"dim3 grid((unsigned)((numel + {v * block - 1}) / {v * block}))"
            tail = "numel, N"
        args = {"x": "(const float*)in[0].data", "b": "(const float*)in[1].data", "r": "(const float*)in[2].data",
                "y": "(float*)out->data"}
        launches = "\n".join(
            f"    {n}<<<grid, {block}, 0, stream>>>("
            + ", ".join(args[a.strip()] for a in self._op(n, p)[2].split(",")) + f", {tail});"
            for n in names)
        helpers = ""
        if v == 4:
            helpers = '''\
__device__ __forceinline__ float4 zero4() { return make_float4(0.f, 0.f, 0.f, 0.f); }
__device__ __forceinline__ float4 add4(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
// gelu_tanh(a + b) + r, lane by lane
__device__ __forceinline__ float4 gelu4(float4 a, float4 b, float4 r) {
    return make_float4(gelu_tanh(a.x + b.x) + r.x, gelu_tanh(a.y + b.y) + r.y,
                       gelu_tanh(a.z + b.z) + r.z, gelu_tanh(a.w + b.w) + r.w);
}
'''
        kernels = "\n".join(self._kernel(n, p) for n in names)
        return f'''{self.header(p, self.strategy(p))}#include "kscout_gpu.h"

{_gelu(p["math"])}
{helpers}
{kernels}
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, ks_stream stream) {{
    int64_t M = in[0].shape[0], N = in[0].shape[1], numel = M * N;
    if (numel == 0) return 0;
    {grid};
{launches}
    return KS_LAST_ERROR();
}}
'''


@register
class CudaBiasGeluTemplates(_BiasGeluGpu):
    backend = "cuda"


@register
class HipBiasGeluTemplates(_BiasGeluGpu):
    backend = "hip"
