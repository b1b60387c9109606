"""softmax for the triton backend: y[i, :] = softmax(x[i, :]), x [M, N], one program per row.

A Python module with @triton.jit kernels and `kscout_forward(x, out)` (the triton ABI:
harness/backends/triton.py). The naive kernel loops over a row in column blocks three times (max;
sum of exps; normalize). The space covers an online first sweep (running max and rescaled sum
together, then one write sweep), a whole-row fast path that keeps the row in registers when it
fits in one block (one read of x; rows too long for it still take the looping kernel), multiplying
by the reciprocal of the sum, block size and warps. Running maxima start at -3.0e38, not -inf, so a
lane that never sees data computes exp(-3e38 - m) = 0 instead of NaN.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily


@register
class TritonSoftmaxTemplates(TemplateFamily):
    family = "softmax"
    backend = "triton"
    comment = "#"
    naive_description = "naive: one program per row, three sweeps over column blocks"
    axes = [
        Axis(name="passes", values=["three", "online"], default="three",
             doc="three sweeps per row (max; exp+sum; normalize) or online max+sum, then one write sweep"),
        Axis(name="whole_row", values=["off", "on"], default="off",
             doc="rows with N <= WHOLE_MAX: one block holds the row, read once, kept in registers"),
        Axis(name="normalize", values=["divide", "reciprocal"], default="divide",
             doc="divide every element by the sum, or multiply by its reciprocal"),
        Axis(name="block", values=[1024, 2048, 4096], default=1024, kind="tunable",
             doc="columns per block in the looping kernel (a power of two)"),
        Axis(name="whole_max", values=[4096, 8192], default=8192, kind="tunable",
             doc="longest row the whole-row kernel takes"),
        Axis(name="num_warps", values=[4, 8, 16], default=4, kind="tunable"),
    ]
    moves = [
        Move(name="online", description="online softmax: running max and rescaled sum in one sweep, then one "
             "write sweep", assigns={"passes": "online"}, prior_gain=1.3),
        Move(name="whole-row", description="keep a row that fits in one block in registers: x read once",
             assigns={"whole_row": "on"}, prior_gain=1.6),
        Move(name="reciprocal", description="multiply by 1/sum instead of dividing every element",
             assigns={"normalize": "reciprocal"}, prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["online max+sum then write" if p["passes"] == "online" else "three sweeps per row",
                 f"whole row in registers up to N={p['whole_max']}" if p["whole_row"] == "on" else "column blocks only",
                 "multiply by reciprocal" if p["normalize"] == "reciprocal" else "divide",
                 f"BLOCK {p['block']}, {p['num_warps']} warps"]
        return "; ".join(parts)

    def _scale(self, p: dict[str, Any], e: str) -> str:
        return f"{e} * inv" if p["normalize"] == "reciprocal" else f"{e} / s"

    def _norm_setup(self, p: dict[str, Any], indent: str) -> str:
        return f"{indent}inv = 1.0 / s\n" if p["normalize"] == "reciprocal" else ""

    def _loop_kernel(self, p: dict[str, Any]) -> str:
        load = ("tl.load(x_ptr + base + c0 + cols, mask=c0 + cols < N, other=float(\"-inf\")).to(tl.float32)")
        if p["passes"] == "three":
            first = f'''\
    m_acc = tl.full([BLOCK], -3.0e38, tl.float32)
    for c0 in range(0, N, BLOCK):                      # sweep 1: row max
        m_acc = tl.maximum(m_acc, {load})
    m = tl.max(m_acc, axis=0)
    s_acc = tl.zeros([BLOCK], tl.float32)
    for c0 in range(0, N, BLOCK):                      # sweep 2: sum of exps
        s_acc += tl.exp({load} - m)
    s = tl.sum(s_acc, axis=0)
'''
        else:
            first = f'''\
    m_acc = tl.full([BLOCK], -3.0e38, tl.float32)       # per-lane running max, finite
    s_acc = tl.zeros([BLOCK], tl.float32)              # per-lane sum of e^(x - m_acc)
    for c0 in range(0, N, BLOCK):                      # sweep 1 (online): max and sum together
        x = {load}
        m_new = tl.maximum(m_acc, x)
        s_acc = s_acc * tl.exp(m_acc - m_new) + tl.exp(x - m_new)
        m_acc = m_new
    m = tl.max(m_acc, axis=0)
    s = tl.sum(s_acc * tl.exp(m_acc - m), axis=0)
'''
        return f'''\
@triton.jit
def _softmax_loop(x_ptr, y_ptr, N, BLOCK: tl.constexpr):
    base = tl.program_id(0).to(tl.int64) * N
    cols = tl.arange(0, BLOCK)
{first}{self._norm_setup(p, "    ")}    for c0 in range(0, N, BLOCK):                      # last sweep: normalize
        e = tl.exp({load} - m)
        tl.store(y_ptr + base + c0 + cols, {self._scale(p, "e")}, mask=c0 + cols < N)
'''

    def _whole_kernel(self, p: dict[str, Any]) -> str:
        return f'''\
@triton.jit
def _softmax_whole(x_ptr, y_ptr, N, BLOCK: tl.constexpr):
    base = tl.program_id(0).to(tl.int64) * N
    cols = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + base + cols, mask=cols < N, other=float("-inf")).to(tl.float32)
    m = tl.max(x, axis=0)
    e = tl.exp(x - m)                                  # masked lanes: exp(-inf) = 0
    s = tl.sum(e, axis=0)
{self._norm_setup(p, "    ")}    tl.store(y_ptr + base + cols, {self._scale(p, "e")}, mask=cols < N)
'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        kernels = [self._loop_kernel(p)]
        launch = "    _softmax_loop[(M,)](x, out, N, BLOCK=BLOCK, num_warps=WARPS)\n"
        if p["whole_row"] == "on":
            kernels.append(self._whole_kernel(p))
            launch = ("    if N <= WHOLE_MAX:                                 # the row fits one block\n"
                      "        _softmax_whole[(M,)](x, out, N, BLOCK=triton.next_power_of_2(N), num_warps=WARPS)\n"
                      "    else:\n    " + launch)
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

BLOCK = {p["block"]}
{f"WHOLE_MAX = {p['whole_max']}{chr(10)}" if p["whole_row"] == "on" else ""}WARPS = {p["num_warps"]}


{(chr(10) * 2).join(kernels)}

def kscout_forward(x, out):
    M, N = x.shape
    if M == 0 or N == 0:
        return None
{launch}    return None
'''
