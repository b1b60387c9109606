"""bias_gelu for the triton backend: y = gelu_tanh(x + bias) + residual, x/residual [M, N], bias [N].

A Python module with @triton.jit kernels and `kscout_forward(x, bias, residual, out)` (the triton
ABI: harness/backends/triton.py). The naive kernel mirrors eager: three launches (add bias into
out, gelu in place, add residual in place), each a flat 1-D grid. The space covers fusing into one
launch, a 2-D (row, column block) grid that indexes bias by column instead of a modulo per element,
the sigmoid form of gelu_tanh (v / (1 + e^-2u): one exp, no cancellation near 0), block size and
warps. All math is fp32 right after the loads (the interpreter gets fp16/bf16 arithmetic wrong).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

K_BETA = "0.7978845608028654"    # sqrt(2 / pi)
K_KAPPA = "0.044715"


def _gelu(math: str) -> str:
    if math == "sigmoid":
        return f'''\
@triton.jit
def _gelu_tanh(v):
    # 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)): one exp, saturates cleanly for large |v|
    u = {K_BETA} * (v + {K_KAPPA} * v * v * v)
    return v / (1.0 + tl.exp(-2.0 * u))
'''
    return f'''\
@triton.jit
def _gelu_tanh(v):
    u = {K_BETA} * (v + {K_KAPPA} * v * v * v)
    # tanh(u) = 1 - 2 / (e^(2u) + 1), with u clamped so e^(2u) stays finite
    uc = tl.minimum(tl.maximum(u, -20.0), 20.0)
    t = 1.0 - 2.0 / (tl.exp(2.0 * uc) + 1.0)
    return 0.5 * v * (1.0 + t)
'''


@register
class TritonBiasGeluTemplates(TemplateFamily):
    family = "bias_gelu"
    backend = "triton"
    comment = "#"
    naive_description = "naive: three launches like eager (add bias, gelu, add residual), flat grid"
    axes = [
        Axis(name="fuse", values=["unfused", "fused"], default="unfused",
             doc="unfused: three launches like eager; fused: one launch, x and residual read once, y written once"),
        Axis(name="grid", values=["flat", "rows"], default="flat",
             doc="flat: 1-D grid over all elements (bias index = offset % N); rows: 2-D (row, column block) grid"),
        Axis(name="math", values=["tanh", "sigmoid"], default="tanh",
             doc="gelu via tanh from exp (two divides), or the sigmoid form v / (1 + e^-2u)"),
        Axis(name="block", values=[1024, 2048, 4096, 8192], default=1024, kind="tunable",
             doc="elements per program (a power of two)"),
        Axis(name="num_warps", values=[4, 8], default=4, kind="tunable"),
    ]
    moves = [
        Move(name="fuse-one-launch", description="fuse bias add, gelu and residual add into one kernel launch",
             assigns={"fuse": "fused"}, prior_gain=2.5),
        Move(name="grid-rows", description="2-D grid over (row, column block): bias indexed by column, no modulo",
             assigns={"grid": "rows"}, prior_gain=1.1),
        Move(name="sigmoid-gelu", description="gelu_tanh in sigmoid form: one exp and one divide per element",
             assigns={"math": "sigmoid"}, prior_gain=1.1),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            "one fused launch" if p["fuse"] == "fused" else "three launches (add bias, gelu, add residual)",
            "2-D (row, column block) grid" if p["grid"] == "rows" else "flat 1-D grid",
            "sigmoid-form gelu" if p["math"] == "sigmoid" else "tanh-form gelu",
            f"BLOCK {p['block']}, {p['num_warps']} warps"])

    def _kernel(self, name: str, args: str, body: str, p: dict[str, Any]) -> str:
        """One elementwise kernel; `body` sees offs, mask, col (the column of each element)."""
        if p["grid"] == "rows":
            index = ("    row = tl.program_id(0).to(tl.int64)\n"
                     "    col = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)\n"
                     "    mask = col < N\n"
                     "    offs = row * N + col\n")
        else:
            index = ("    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)\n"
                     "    mask = offs < numel\n"
                     "    col = offs % N\n")
        return f"@triton.jit\ndef {name}({args}, numel, N, BLOCK: tl.constexpr):\n{index}{body}"

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        ld = "tl.load({0} + {1}, mask=mask, other=0.0).to(tl.float32)"
        kernels = []
        if p["fuse"] == "fused":
            kernels.append(self._kernel("_bias_gelu_res", "x_ptr, b_ptr, r_ptr, y_ptr",
                                        f"    x = {ld.format('x_ptr', 'offs')}\n"
                                        f"    b = {ld.format('b_ptr', 'col')}\n"
                                        f"    r = {ld.format('r_ptr', 'offs')}\n"
                                        "    tl.store(y_ptr + offs, _gelu_tanh(x + b) + r, mask=mask)\n", p))
            launches = ["_bias_gelu_res[grid](x, bias, residual, out, numel, N, BLOCK=BLOCK, num_warps=WARPS)"]
        else:
            kernels += [
                self._kernel("_add_bias", "x_ptr, b_ptr, y_ptr",
                             f"    x = {ld.format('x_ptr', 'offs')}\n    b = {ld.format('b_ptr', 'col')}\n"
                             "    tl.store(y_ptr + offs, x + b, mask=mask)\n", p),
                self._kernel("_gelu_inplace", "y_ptr",
                             f"    v = {ld.format('y_ptr', 'offs')}\n"
                             "    tl.store(y_ptr + offs, _gelu_tanh(v), mask=mask)\n", p),
                self._kernel("_add_residual", "r_ptr, y_ptr",
                             f"    y = {ld.format('y_ptr', 'offs')}\n    r = {ld.format('r_ptr', 'offs')}\n"
                             "    tl.store(y_ptr + offs, y + r, mask=mask)\n", p),
            ]
            launches = ["_add_bias[grid](x, bias, out, numel, N, BLOCK=BLOCK, num_warps=WARPS)",
                        "_gelu_inplace[grid](out, numel, N, BLOCK=BLOCK, num_warps=WARPS)",
                        "_add_residual[grid](residual, out, numel, N, BLOCK=BLOCK, num_warps=WARPS)"]
        grid = "(M, triton.cdiv(N, BLOCK))" if p["grid"] == "rows" else "(triton.cdiv(numel, BLOCK),)"
        body = "\n".join(f"    {ln}" for ln in launches)
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

BLOCK = {p["block"]}
WARPS = {p["num_warps"]}


{_gelu(p["math"])}

{(chr(10) * 2).join(kernels)}

def kscout_forward(x, bias, residual, out):
    M, N = x.shape
    numel = M * N
    if numel == 0:
        return None
    grid = {grid}
{body}
    return None
'''
