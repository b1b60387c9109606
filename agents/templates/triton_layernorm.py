"""layernorm for the triton backend: y = (x - mean) / sqrt(var + 1e-5) * weight + bias over the last
dim of x [M, N]; weight [N] and bias [N] follow x (state_dict order). Biased variance (divide by N).

A Python module with @triton.jit kernels and `kscout_forward(x, weight, bias, out)` (the triton
ABI: harness/backends/triton.py). Memory-bound: the floor is one read of x and one write of y. The
naive kernel makes two launches: one program per row computes the row's mean and 1/std into two
float32 scratch vectors (two passes over the row: the mean, then the squared deviations from it),
then a 2-D (row, column block) grid writes y; x comes from DRAM twice. The space covers

- fusing both into one launch per row (statistics, then normalize: the row's re-reads hit L2);
- the statistics in one pass: per-lane Welford across column blocks (every valid lane of block k
  has seen exactly k + 1 elements, so the update needs one scalar reciprocal per block, not a
  divide per element), merged over lanes with Chan's formula (sum of the lanes' M2 plus their
  counts times squared distance to the row mean); numerically sound like two passes, with one
  read of the row fewer. The textbook one-pass var = E[x^2] - E[x]^2 is not offered: it cancels
  catastrophically when |mean| >> std (the `offset` distribution rejects it);
- a whole-row kernel for rows that fit one block (N <= WHOLE_MAX): the row is read once and kept
  in registers, mean and squared deviations both come from registers; longer rows still take the
  looping kernel(s), so every N stays legal;
- a persistent grid: min(M, PROGRAMS) programs stride over the rows (the whole-row kernel loads
  weight and bias once per program instead of once per row);
- block size, the whole-row limit, warps and the persistent grid size as tunables.

All math is fp32 right after the loads (the interpreter gets fp16/bf16 arithmetic wrong); sums
accumulate per lane across blocks and are tree-reduced at the end, so the long rows (N = 100003)
keep fp32 accuracy. Row offsets are int64.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

EPS = "1e-5"


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "".join(pad + ln if ln.strip() else ln for ln in text.splitlines(keepends=True))


LOAD_X = "tl.load(x_ptr + base + c0 + cols, mask=c0 + cols < N, other=0.0).to(tl.float32)"
LOAD_XM = "tl.load(x_ptr + base + c0 + cols, mask=mask, other=0.0).to(tl.float32)"   # `mask` in scope

STATS_TWO_PASS = f'''\
    acc = tl.zeros([BLOCK], tl.float32)                # pass 1: per-lane partial sums
    for c0 in range(0, N, BLOCK):
        acc += {LOAD_X}
    mean = tl.sum(acc, axis=0) / N
    acc = tl.zeros([BLOCK], tl.float32)                # pass 2: squared deviations from the mean
    for c0 in range(0, N, BLOCK):
        d = tl.where(c0 + cols < N, {LOAD_X} - mean, 0.0)
        acc += d * d
    var = tl.sum(acc, axis=0) / N
'''

STATS_WELFORD = f'''\
    m_acc = tl.zeros([BLOCK], tl.float32)              # per-lane running mean
    q_acc = tl.zeros([BLOCK], tl.float32)              # per-lane sum of squared deviations (M2)
    k = 0.0
    for c0 in range(0, N, BLOCK):                      # one pass: Welford per lane
        mask = c0 + cols < N
        x = {LOAD_XM}
        k += 1.0                                       # a valid lane has now seen exactly k elements
        d = x - m_acc
        m_new = m_acc + d * (1.0 / k)
        q_acc = tl.where(mask, q_acc + d * (x - m_new), q_acc)
        m_acc = tl.where(mask, m_new, m_acc)
    # Chan's merge over lanes: lane j holds cdiv(N - j, BLOCK) elements (0 past N)
    n_lane = tl.where(cols < N, (N - cols + BLOCK - 1) // BLOCK, 0).to(tl.float32)
    mean = tl.sum(n_lane * m_acc, axis=0) / N
    dm = m_acc - mean
    var = (tl.sum(q_acc, axis=0) + tl.sum(n_lane * dm * dm, axis=0)) / N
'''


@register
class TritonLayerNormTemplates(TemplateFamily):
    family = "layernorm"
    backend = "triton"
    comment = "#"
    naive_description = ("naive: two launches (row mean and 1/std into buffers by two passes, then normalize), "
                         "x read from DRAM twice")
    axes = [
        Axis(name="fuse", values=["two_launches", "fused"], default="two_launches",
             doc="two_launches: mean and 1/std of every row into scratch vectors, then a 2-D grid writes y; "
                 "fused: one program per row computes the statistics then normalizes (re-reads from L2)"),
        Axis(name="stats", values=["two_pass", "welford"], default="two_pass",
             doc="looping kernels: mean, then squared deviations (two reads of the row); or one pass of "
                 "per-lane Welford merged over lanes with Chan's formula"),
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
        Move(name="fuse-one-launch", description="one launch, one program per row: statistics then normalize, "
             "the row's re-reads come from L2 and no statistics buffers are written", assigns={"fuse": "fused"},
             prior_gain=1.5),
        Move(name="welford-one-pass", description="row statistics in one numerically sound pass (per-lane Welford, "
             "Chan merge over lanes) instead of mean then squared deviations", assigns={"stats": "welford"},
             prior_gain=1.15),
        Move(name="whole-row", description="keep a row that fits in one block in registers: x read once, "
             "statistics and normalize from registers", assigns={"whole_row": "on"}, prior_gain=1.5),
        Move(name="persistent-grid", description="persistent grid: a fixed number of programs stride over the rows "
             "(weight and bias loaded once per program in the whole-row kernel)", assigns={"grid": "persistent"},
             prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = ["one fused launch per row" if p["fuse"] == "fused"
                 else "two launches (statistics buffers, then normalize)",
                 "one-pass Welford/Chan statistics" if p["stats"] == "welford" else "two-pass mean/variance",
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

    def _stats(self, p: dict[str, Any]) -> str:
        return ("    base = row * N\n" + (STATS_WELFORD if p["stats"] == "welford" else STATS_TWO_PASS)
                + f"    rstd = 1.0 / tl.sqrt(var + {EPS})\n")

    def _two_launch_kernels(self, p: dict[str, Any]) -> list[str]:
        body = self._stats(p) + "    tl.store(mean_ptr + row, mean)\n    tl.store(rstd_ptr + row, rstd)\n"
        stats = f'''\
@triton.jit
def _ln_stats(x_ptr, mean_ptr, rstd_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
{self._rows(p, body)}'''
        norm = '''\
@triton.jit
def _ln_norm(x_ptr, w_ptr, b_ptr, mean_ptr, rstd_ptr, y_ptr, N, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)                # 2-D grid: (row, column block)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(x_ptr + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    mean = tl.load(mean_ptr + row)
    rstd = tl.load(rstd_ptr + row)
    tl.store(y_ptr + row * N + cols, ((x - mean) * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)
'''
        return [stats, norm]

    def _fused_kernel(self, p: dict[str, Any]) -> str:
        body = self._stats(p) + f'''\
    for c0 in range(0, N, BLOCK):                      # normalize: the row's last read, from L2
        mask = c0 + cols < N
        x = {LOAD_XM}
        w = tl.load(w_ptr + c0 + cols, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + c0 + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(y_ptr + base + c0 + cols, ((x - mean) * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)
'''
        return f'''\
@triton.jit
def _ln_fused(x_ptr, w_ptr, b_ptr, y_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)
{self._rows(p, body)}'''

    def _whole_kernel(self, p: dict[str, Any]) -> str:
        wb = ("    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)\n"
              "    b = tl.load(b_ptr + cols, mask=mask, other=0.0).to(tl.float32)\n")
        persistent = p["grid"] == "persistent"
        body = ("    base = row * N\n"
                "    x = tl.load(x_ptr + base + cols, mask=mask, other=0.0).to(tl.float32)\n"
                + ("" if persistent else wb) +
                "    mean = tl.sum(x, axis=0) / N\n"
                "    d = tl.where(mask, x - mean, 0.0)                 # deviations, from registers\n"
                f"    rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=0) / N + {EPS})\n"
                "    tl.store(y_ptr + base + cols, (d * rstd * w + b).to(y_ptr.dtype.element_ty), mask=mask)\n")
        return f'''\
@triton.jit
def _ln_whole(x_ptr, w_ptr, b_ptr, y_ptr, M, N, BLOCK: tl.constexpr):
    cols = tl.arange(0, BLOCK)                         # BLOCK >= N: the whole row in registers
    mask = cols < N
{self._rows(p, body, hoisted=wb if persistent else "")}'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        grid = "(min(M, PROGRAMS),)" if p["grid"] == "persistent" else "(M,)"
        if p["fuse"] == "fused":
            kernels = [self._fused_kernel(p)]
            launch = "_ln_fused[grid](x, weight, bias, out, M, N, BLOCK=BLOCK, num_warps=WARPS)\n"
        else:
            kernels = self._two_launch_kernels(p)
            launch = ("mean = torch.empty((M,), device=x.device, dtype=torch.float32)\n"
                      "rstd = torch.empty((M,), device=x.device, dtype=torch.float32)\n"
                      "_ln_stats[grid](x, mean, rstd, M, N, BLOCK=BLOCK, num_warps=WARPS)\n"
                      "_ln_norm[(M, triton.cdiv(N, BLOCK))](x, weight, bias, mean, rstd, out, N, BLOCK=BLOCK,\n"
                      "                                     num_warps=WARPS)\n")
        launch = _indent(launch, 4)
        if p["whole_row"] == "on":
            kernels.append(self._whole_kernel(p))
            launch = ("    if N <= WHOLE_MAX:                                 # the row fits one block\n"
                      "        block = triton.next_power_of_2(N)\n"
                      "        _ln_whole[grid](x, weight, bias, out, M, N, BLOCK=block,\n"
                      "                        num_warps=max(1, min(WARPS, block // 128), block // 1024))\n"
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

def kscout_forward(x, weight, bias, out):
    M, N = x.shape
    if M == 0 or N == 0:
        return None
    grid = {grid}
{launch}    return None
'''
