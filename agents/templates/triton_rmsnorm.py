"""rmsnorm for the triton backend: y = x * rsqrt(mean(x^2, -1) + 1e-6) * weight, x [M, N], weight [N].

A Python module with @triton.jit kernels and `kscout_forward(x, weight, out)` (the triton ABI:
harness/backends/triton.py). Memory-bound: the floor is one read of x and one write of y. The
naive kernel mirrors eager's two steps: one launch computes every row's 1/rms into a float32
scratch vector (one program per row, looping over column blocks), a second launch, a 2-D (row,
column block) grid, writes y = x * r * weight; x comes from DRAM twice. The space covers

- fusing both into one launch per row (sum of squares, then scale: the second read of the row
  hits L2, not DRAM, and no scratch vector or second launch);
- a whole-row kernel for rows that fit one block (N <= WHOLE_MAX): the row is loaded once and
  kept in registers between the reduction and the scale (the classic Triton norm kernel); longer
  rows still take the looping kernel(s), so every N stays legal;
- a persistent grid: min(M, PROGRAMS) programs stride over the rows, so launch and scheduling
  costs are paid once per program and the whole-row kernel loads weight once per program instead
  of once per row;
- block size, the whole-row limit, warps and the persistent grid size as tunables.

All math is fp32 right after the loads (the interpreter gets fp16/bf16 arithmetic wrong); the sum
of squares accumulates per lane across blocks and is tree-reduced at the end, so long rows
(N = 100003) keep fp32 accuracy. Row offsets are int64.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

EPS = "1e-6"


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + ln if ln.strip() else ln for ln in text.splitlines(keepends=True))


@register
class TritonRmsNormTemplates(TemplateFamily):
    family = "rmsnorm"
    backend = "triton"
    comment = "#"
    naive_description = "naive: two launches like eager (1/rms per row into a buffer, then scale), x read twice"
    axes = [
        Axis(name="fuse", values=["two_launches", "fused"], default="two_launches",
             doc="two_launches: 1/rms of every row into a scratch vector, then a 2-D grid writes y; "
                 "fused: one program per row sums the squares then scales (second read from L2)"),
        Axis(name="whole_row", values=["off", "on"], default="off",
             doc="rows with N <= WHOLE_MAX: one block holds the row, read once, kept in registers"),
        Axis(name="grid", values=["per_row", "persistent"], default="per_row",
             doc="per_row: one program per row; persistent: min(M, PROGRAMS) programs stride over the rows"),
        Axis(name="block", values=[1024, 2048, 4096], default=2048, kind="tunable",
             doc="columns per block in the looping kernels (a power of two)"),
        Axis(name="whole_max", values=[4096, 8192], default=8192, kind="tunable",
             doc="longest row the whole-row kernel takes (its block is next_power_of_2(N))"),
        Axis(name="num_warps", values=[4, 8, 16], default=4, kind="tunable",
             doc="warps per program; the whole-row kernel takes at most one per 128 columns on short rows "
                 "and at least one per 1024 on long ones (<= 32 fp32 of the row per thread, no spills)"),
        Axis(name="programs", values=[264, 528, 1056], default=528, kind="tunable",
             doc="persistent grid size: 2, 4 or 8 programs per SM on a 132-SM H100/H200"),
    ]
    moves = [
        Move(name="fuse-one-launch", description="one launch, one program per row: sum of squares then scale, "
             "the row's second read comes from L2 and no 1/rms buffer is written", assigns={"fuse": "fused"},
             prior_gain=1.5),
        Move(name="whole-row", description="keep a row that fits in one block in registers: x read once, "
             "reduce and scale from registers", assigns={"whole_row": "on"}, prior_gain=1.4),
        Move(name="persistent-grid", description="persistent grid: a fixed number of programs stride over the rows "
             "(weight loaded once per program in the whole-row kernel)", assigns={"grid": "persistent"},
             prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["one fused launch per row" if p["fuse"] == "fused" else "two launches (1/rms buffer, then scale)",
                 f"whole row in registers up to N={p['whole_max']}" if p["whole_row"] == "on" else "column blocks only",
                 f"persistent grid of {p['programs']} programs" if p["grid"] == "persistent" else "one program per row",
                 f"BLOCK {p['block']}, {p['num_warps']} warps"]
        return "; ".join(parts)

    def _rows(self, p: dict[str, Any], body: str, hoisted: str = "") -> str:
        """Wrap `body` (written at 4 spaces, sees `row` as int64) in the row loop of the grid axis.
        `hoisted` is code a persistent program runs once before its rows (a per-row one runs it per row)."""
        if p["grid"] == "persistent":
            return (hoisted + "    for row in range(tl.program_id(0).to(tl.int64), M, tl.num_programs(0)):\n"
                    + _indent(body, 4))
        return "    row = tl.program_id(0).to(tl.int64)\n" + hoisted + body

    def _sumsq(self) -> str:
        return f'''\
    base = row * N
    acc = tl.zeros([BLOCK], tl.float32)                # per-lane partial sums of x^2
    for c0 in range(0, N, BLOCK):
        x = tl.load(x_ptr + base + c0 + cols, mask=c0 + cols < N, other=0.0).to(tl.float32)
        acc += x * x
    r = 1.0 / tl.sqrt(tl.sum(acc, axis=0) / N + {EPS})
'''

    def _two_launch_kernels(self, p: dict[str, Any]) -> list[str]:
        body = self._sumsq() + "    tl.store(r_ptr + row, r)\n"
        rstd = f'''\
@triton.jit
def _rms_rstd(x_ptr, r_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
{self._rows(p, body)}'''
        scale = '''\
@triton.jit
def _rms_scale(x_ptr, w_ptr, r_ptr, y_ptr, N, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)                # 2-D grid: (row, column block)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    r = tl.load(r_ptr + row)
    tl.store(y_ptr + row * N + cols, (x * r * w).to(y_ptr.dtype.element_ty), mask=mask)
'''
        return [rstd, scale]

    def _fused_kernel(self, p: dict[str, Any]) -> str:
        body = self._sumsq() + '''\
    for c0 in range(0, N, BLOCK):                      # scale: the row's second read, from L2
        mask = c0 + cols < N
        x = tl.load(x_ptr + base + c0 + cols, mask=mask, other=0.0).to(tl.float32)
        w = tl.load(w_ptr + c0 + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + base + c0 + cols, (x * r * w).to(y_ptr.dtype.element_ty), mask=mask)
'''
        return f'''\
@triton.jit
def _rms_fused(x_ptr, w_ptr, y_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
{self._rows(p, body)}'''

    def _whole_kernel(self, p: dict[str, Any]) -> str:
        w = "    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)\n"
        persistent = p["grid"] == "persistent"
        body = ("    base = row * N\n"
                "    x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)\n"
                + ("" if persistent else w) +
                f"    r = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + {EPS})\n"
                "    tl.store(y_ptr + base + cols, (x * r * w).to(y_ptr.dtype.element_ty), mask=mask)\n")
        return f'''\
@triton.jit
def _rms_whole(x_ptr, w_ptr, y_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)                         # BLOCK >= N: the whole row in registers
    mask = cols < N
{self._rows(p, body, hoisted=w if persistent else "")}'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        grid = "(min(M, PROGRAMS),)" if p["grid"] == "persistent" else "(M,)"
        if p["fuse"] == "fused":
            kernels = [self._fused_kernel(p)]
            launch = "_rms_fused[grid](x, weight, out, M, N, BLOCK=BLOCK, num_warps=WARPS)\n"
        else:
            kernels = self._two_launch_kernels(p)
            launch = ("rstd = torch.empty((M,), device=x.device, dtype=torch.float32)\n"
                      "_rms_rstd[grid](x, rstd, M, N, BLOCK=BLOCK, num_warps=WARPS)\n"
                      "_rms_scale[(M, triton.cdiv(N, BLOCK))](x, weight, rstd, out, N, BLOCK=BLOCK, num_warps=WARPS)\n")
        launch = _indent(launch, 4)
        if p["whole_row"] == "on":
            kernels.append(self._whole_kernel(p))
            launch = ("    if N <= WHOLE_MAX:                                 # the row fits one block\n"
                      "        block = triton.next_power_of_2(N)\n"
                      "        _rms_whole[grid](x, weight, out, M, N, BLOCK=block,\n"
                      "                         num_warps=max(1, min(WARPS, block // 128), block // 1024))\n"
                      "    else:\n" + _indent(launch, 4))
        consts = [f"BLOCK = {p['block']}"]
        if p["whole_row"] == "on":
            consts.append(f"WHOLE_MAX = {p['whole_max']}")
        if p["grid"] == "persistent":
            consts.append(f"PROGRAMS = {p['programs']}")
        consts.append(f"WARPS = {p['num_warps']}")
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

{chr(10).join(consts)}


{(chr(10) * 2).join(kernels)}

def kscout_forward(x, weight, out):
    M, N = x.shape
    if M == 0 or N == 0:
        return None
    grid = {grid}
{launch}    return None
'''
