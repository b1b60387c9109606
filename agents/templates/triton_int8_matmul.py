"""int8_matmul for the triton backend: y[M, N] = x[M, K] @ (weight.float() * scale[:, None]).T (W8A32).

A Python module with @triton.jit kernels and `kscout_forward(x, weight, scale, out)` (the triton
ABI: harness/backends/triton.py): x fp32 [M, K], weight int8 [N, K], scale fp32 [N] (one per output
channel). Eager writes and re-reads a whole fp32 copy of the weight (4x its bytes) before its GEMM;
every kernel here loads int8 weight tiles and dequantizes them in registers inside the K loop, so
the fp32 weight never exists in memory and each weight byte is read once per row tile of x.

The naive kernel: one program per BLOCK_M x BLOCK_N tile of y (N tiles on the first grid axis),
stepping over K: load an x tile [BLOCK_M, BLOCK_K] and an int8 weight tile [BLOCK_N, BLOCK_K] (rows
of the weight, contiguous along K: coalesced), convert to fp32, multiply by scale[n] (the
reference's order: every term dequantized), tl.dot into an fp32 accumulator (input_precision="ieee":
TF32 would be a precision downcast; the interpreter ignores it). All edges masked.

The space (decode-like M: a handful of rows against a big weight, bandwidth-bound on the weight):
- dequant=scale_after: the scale is per output channel, so it factors out of the K sum: accumulate
  x * w and multiply by scale[n] once per output instead of once per weight element.
- kernel=gemv: one program per (row of x, BLOCK_N outputs), no tl.dot: the int8 tile times the x
  row broadcast, accumulated elementwise in a [BLOCK_N, BLOCK_K] register tile and reduced along K
  once at the end. No 16-row padding of tl.dot for M = 1..4; larger M re-reads the weight per row
  (from L2).
- split_k: the K range is split over up to SPLIT programs per output tile (grid axis 2), each
  slice at least MIN_STEPS BLOCK_K steps deep (a shallower one is all prologue, so short K gets
  fewer slices), writing fp32 partials to a scratch buffer [splits, M, N]; a second launch sums
  them (and applies the scale when it comes after). At M = 16, N = 4096 the output has only
  N / BLOCK_N tiles, too few programs to keep every SM streaming the weight.
- stages: num_stages, software pipelining of the weight loads (the whole game when bandwidth-bound).
Tunables: BLOCK_M (dot kernel), BLOCK_N, BLOCK_K, num_warps.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily


@register
class TritonInt8MatmulTemplates(TemplateFamily):
    family = "int8_matmul"
    backend = "triton"
    comment = "#"
    naive_description = "naive: tl.dot tiles, every weight term dequantized (w * s) in the K loop, one launch"
    axes = [
        Axis(name="dequant", values=["per_term", "scale_after"], default="per_term",
             doc="per_term: x * (w * s) as the reference; scale_after: (sum x * w) * s once per output"),
        Axis(name="kernel", values=["dot", "gemv"], default="dot",
             doc="dot: BLOCK_M x BLOCK_N tiles with tl.dot; gemv: one row of x per program, "
                 "elementwise multiply-accumulate and one reduction along K (no padding of tiny M)"),
        Axis(name="split_k", values=[1, 4, 8], default=1,
             doc="most programs per output tile along K, each >= MIN_STEPS BLOCK_K steps deep "
                 "(fp32 partials, then a second launch sums them)"),
        Axis(name="stages", values=[1, 3, 4], default=1,
             doc="num_stages: weight-tile loads in flight ahead of the math (software pipelining)"),
        Axis(name="block_m", values=[16, 32], default=16, kind="tunable",
             doc="dot kernel: rows of x per tile (tl.dot needs 16 or more)"),
        Axis(name="block_n", values=[32, 64, 128], default=64, kind="tunable", doc="outputs (weight rows) per program"),
        Axis(name="block_k", values=[32, 64, 128], default=128, kind="tunable", doc="K per step"),
        Axis(name="num_warps", values=[2, 4, 8], default=4, kind="tunable"),
    ]
    moves = [
        Move(name="scale-after", description="accumulate x * w, apply the per-channel scale once per output",
             assigns={"dequant": "scale_after"}, prior_gain=1.15),
        Move(name="gemv", description="GEMV kernel for decode: one row of x per program, int8 tile times the "
             "broadcast x row accumulated in registers, one reduction along K (no 16-row tl.dot padding)",
             assigns={"kernel": "gemv"}, prior_gain=1.3),
        Move(name="split-k-4", description="split K over 4 programs per output tile (fp32 partials, second "
             "launch sums): 4x the programs streaming the weight", assigns={"split_k": 4},
             requires={"split_k": 1}, prior_gain=1.6),
        Move(name="split-k-8", description="split K over 8 programs per output tile", assigns={"split_k": 8},
             requires={"split_k": 4}, prior_gain=1.15),
        Move(name="pipeline-3", description="software-pipeline the K loop: 3 stages of weight loads in flight",
             assigns={"stages": 3}, prior_gain=1.3),
        Move(name="pipeline-4", description="4 pipeline stages", assigns={"stages": 4}, requires={"stages": 3},
             prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        gemv = p["kernel"] == "gemv"
        parts = [f"GEMV, one x row per program, BLOCK_N {p['block_n']}" if gemv
                 else f"tl.dot tiles {p['block_m']}x{p['block_n']}",
                 f"BLOCK_K {p['block_k']}",
                 "scale once per output" if p["dequant"] == "scale_after" else "dequantize every term",
                 f"split-K {p['split_k']} + reduction launch" if p["split_k"] > 1 else "one launch",
                 f"{p['stages']} pipeline stage(s)", f"{p['num_warps']} warps"]
        return "; ".join(parts)

    def _kernel(self, p: dict[str, Any]) -> str:
        after = p["dequant"] == "scale_after"
        split = p["split_k"] > 1
        if split:   # partials[pid_k, m, n]: fp32 scratch, the reduction launch writes y
            dst = "    y_ptr += tl.program_id(2).to(tl.int64) * M * N          # this split's partial sums\n"
        else:
            dst = ""
        k_range = ("    k_lo = tl.program_id(2) * K_SPLIT                    # this program's slice of K\n"
                   "    k_hi = tl.minimum(k_lo + K_SPLIT, K)\n") if split else "    k_lo = 0\n    k_hi = K\n"
        scale_store = after and not split   # with split-K the reduction applies a trailing scale
        ks = ", K_SPLIT" if split else ""
        s_load = ("    s = tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)   # per-channel scale\n"
                  if scale_store or not after else "")
        if p["kernel"] == "gemv":
            dq = "" if after else "        w = w * s[:, None]                              # dequantize: w * scale[n]\n"
            fin = "    y = tl.sum(acc, axis=1)\n" + ("    y = y * s\n" if scale_store else "")
            return f'''\
@triton.jit
def _w8_gemv(x_ptr, w_ptr, s_ptr, y_ptr, M, N, K{ks}, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # program (n-block, row m[, split]): y[m, n-block] = sum_k x[m, k] * dequant(w[n-block, k])
    row = tl.program_id(1).to(tl.int64)
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
{k_range}{dst}    n_ok = rn < N
{s_load}    x_ptrs = x_ptr + row * K + rk
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * K + rk[None, :]
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k0 in range(k_lo, k_hi, BLOCK_K):
        k_ok = k0 + rk < k_hi
        x = tl.load(x_ptrs + k0, mask=k_ok, other=0.0).to(tl.float32)
        w = tl.load(w_ptrs + k0, mask=n_ok[:, None] & k_ok[None, :], other=0).to(tl.float32)   # int8 -> fp32 in registers
{dq}        acc += w * x[None, :]
{fin}    tl.store(y_ptr + row * N + rn, y.to(y_ptr.dtype.element_ty), mask=n_ok)
'''
        dq = "" if after else "        w = w * s[:, None]                              # dequantize: w * scale[n]\n"
        fin = "    acc = acc * s[None, :]\n" if scale_store else ""
        return f'''\
@triton.jit
def _w8_matmul(x_ptr, w_ptr, s_ptr, y_ptr, M, N, K{ks},
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # program (n-tile, m-tile[, split]): y tile = x tile @ dequant(w tile).T
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = tl.arange(0, BLOCK_K)
{k_range}{dst}    m_ok = rm < M
    n_ok = rn < N
{s_load}    x_ptrs = x_ptr + rm[:, None].to(tl.int64) * K + rk[None, :]
    w_ptrs = w_ptr + rn[:, None].to(tl.int64) * K + rk[None, :]     # weight rows, contiguous along K
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(k_lo, k_hi, BLOCK_K):
        k_ok = k0 + rk < k_hi
        x = tl.load(x_ptrs + k0, mask=m_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        w = tl.load(w_ptrs + k0, mask=n_ok[:, None] & k_ok[None, :], other=0).to(tl.float32)   # int8 -> fp32 in registers
{dq}        acc += tl.dot(x, tl.trans(w), input_precision="ieee")
{fin}    y_ptrs = y_ptr + rm[:, None].to(tl.int64) * N + rn[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])
'''

    def _reduce(self, p: dict[str, Any]) -> str:
        after = p["dequant"] == "scale_after"
        sc = ("    acc = acc * tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)   # scale once per output\n"
              if after else "")
        return f'''\
@triton.jit
def _splitk_sum(part_ptr, s_ptr, y_ptr, M, N, splits, BLOCK: tl.constexpr):
    # program (n-block, row): y[row, n-block] = sum over the K slices' partials
    row = tl.program_id(1).to(tl.int64)
    rn = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    n_ok = rn < N
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for sp in range(splits):
        acc += tl.load(part_ptr + (sp * M + row) * N + rn, mask=n_ok, other=0.0)
{sc}    tl.store(y_ptr + row * N + rn, acc.to(y_ptr.dtype.element_ty), mask=n_ok)
'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        gemv = p["kernel"] == "gemv"
        split = p["split_k"]
        consts = [f"BLOCK_N, BLOCK_K = {p['block_n']}, {p['block_k']}" if gemv else
                  f"BLOCK_M, BLOCK_N, BLOCK_K = {p['block_m']}, {p['block_n']}, {p['block_k']}",
                  f"WARPS, STAGES = {p['num_warps']}, {p['stages']}"]
        kernels = [self._kernel(p)]
        if split > 1:
            consts += [f"SPLIT, MIN_STEPS = {split}, 4", "SUM_BLOCK = 1024"]
            kernels.append(self._reduce(p))
        if gemv:
            grid = "(triton.cdiv(N, BLOCK_N), M" + (", splits)" if split > 1 else ")")
            launch_kw = "BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K"
            name = "_w8_gemv"
        else:
            grid = "(triton.cdiv(N, BLOCK_N), triton.cdiv(M, BLOCK_M)" + (", splits)" if split > 1 else ")")
            launch_kw = "BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K"
            name = "_w8_matmul"
        if split > 1:
            body = f'''\
    # up to SPLIT slices of K, whole BLOCK_K steps, at least MIN_STEPS of them each (short K: fewer
    # slices); a slice past K leaves a zero partial
    splits = max(1, min(SPLIT, triton.cdiv(K, MIN_STEPS * BLOCK_K)))
    k_split = triton.cdiv(triton.cdiv(K, splits), BLOCK_K) * BLOCK_K
    part = torch.empty((splits, M, N), device=out.device, dtype=torch.float32)
    {name}[{grid}](x, weight, scale, part, M, N, K, k_split, {launch_kw},
        num_warps=WARPS, num_stages=STAGES)
    _splitk_sum[(triton.cdiv(N, SUM_BLOCK), M)](part, scale, out, M, N, splits, BLOCK=SUM_BLOCK, num_warps=4)
'''
        else:
            body = f'''\
    {name}[{grid}](x, weight, scale, out, M, N, K, {launch_kw},
        num_warps=WARPS, num_stages=STAGES)
'''
        nl = "\n"
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

{nl.join(consts)}


{(nl * 2).join(kernels)}

def kscout_forward(x, weight, scale, out):
    M, K = x.shape
    N = weight.shape[0]
    if M == 0 or N == 0:
        return None
{body}    return None
'''
