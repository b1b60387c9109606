"""colsum for the triton backend: y[j] = sum_i g[i, j], g [M, N] row-major, y [N] (a bias gradient).

A Python module with @triton.jit kernels and `kscout_forward(g, out)` (the triton ABI:
harness/backends/triton.py). A memory-bound reduction over the strided dimension: each program
owns a block of BLOCK_N adjacent columns (coalesced, vectorized loads along a row) and walks down
the rows BLOCK_M at a time. The tile adapts to narrow matrices: its width is
min(BLOCK_N, next_pow2(N)) and it keeps its element count by taking more rows (N = 3 gets 4-wide
tiles thousands of rows tall, not 3 live lanes out of 128), and it is never taller than
next_pow2(M).

The naive kernel is one program per column block over all M rows, reducing every tile across its
rows as it goes (a cross-warp reduction per step) into a vector of BLOCK_N column sums, every load
masked on rows and columns. The space covers:

- split: two_pass splits the rows too, a (column block, row slice) grid sized to about PROGRAMS
  programs (N = 2048 in 256-column blocks is only 8 programs for 132 SMs), each slice's column
  sums written to a torch.empty [S, N] fp32 scratch, then the same kernel reduces the S partials
  into y. Deterministic: no atomics, the summation order depends only on the shape;
- accumulate: tile keeps a BLOCK_M x BLOCK_N register accumulator and reduces across rows once at
  the end (no shared-memory reduction inside the loop);
- loop: even runs the full row tiles unmasked on rows (the column mask is loop-invariant, pointers
  step by BLOCK_M rows), one masked tail tile after;
- BLOCK_M, BLOCK_N, warps, the program target of the split.

Precision: sums are fp32 in two levels or more (a tree over each tile's rows or a lane per row,
then a chain of M / BLOCK_M tiles, then the slices): the chain on the 1M-row "tall" shape is ~260
adds, not a million, so the float64 check passes where one sequential fp32 accumulator fails it.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily


@register
class TritonColSumTemplates(TemplateFamily):
    family = "colsum"
    backend = "triton"
    comment = "#"
    naive_description = "naive: one program per column block over all rows, per-tile row reduction, all loads masked"
    axes = [
        Axis(name="split", values=["none", "two_pass"], default="none",
             doc="none: one program per column block walks all M rows; two_pass: (column block, row slice) "
                 "grid writing per-slice partials to scratch, then a second launch reduces the partials"),
        Axis(name="accumulate", values=["row", "tile"], default="row",
             doc="row: reduce each tile across its rows every step into BLOCK_N sums; tile: a BLOCK_M x BLOCK_N "
                 "register accumulator, reduced across rows once at the end"),
        Axis(name="loop", values=["masked", "even"], default="masked",
             doc="masked: every tile's load masked on rows and columns, offsets recomputed; even: full tiles "
                 "unmasked on rows, loop-invariant column mask, pointers stepped; one masked tail tile"),
        Axis(name="block_m", values=[16, 32, 64], default=64, kind="tunable",
             doc="rows per tile at full width (narrow matrices get more: the tile keeps BLOCK_M x BLOCK_N elements)"),
        Axis(name="block_n", values=[64, 128, 256], default=256, kind="tunable",
             doc="columns per program (narrow matrices: next_pow2(N))"),
        Axis(name="num_warps", values=[4, 8, 16], default=8, kind="tunable",
             doc="warps per program: 8 keeps a 64 x 256 tile (and the tile accumulator) at 64 registers each per thread"),
        Axis(name="programs", values=[256, 512, 1024], default=512, kind="tunable",
             doc="split=two_pass: about this many programs in the first pass (a few per SM)"),
    ]
    moves = [
        Move(name="split-rows", description="split the rows too: a (column block, row slice) grid fills the GPU, "
             "per-slice partials in a scratch buffer, a second launch reduces them (deterministic)",
             assigns={"split": "two_pass"}, prior_gain=2.5),
        Move(name="tile-accumulator", description="keep a BLOCK_M x BLOCK_N register accumulator and reduce across "
             "rows once at the end, not a cross-warp reduction every step", assigns={"accumulate": "tile"},
             prior_gain=1.3),
        Move(name="even-tiles", description="full row tiles unmasked on rows with a hoisted column mask and stepped "
             "pointers; one masked tail tile", assigns={"loop": "even"}, prior_gain=1.1),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        parts = [f"row slices over ~{p['programs']} programs, partials then a second reduce launch"
                 if p["split"] == "two_pass" else "one program per column block over all rows",
                 "2-D register accumulator, one reduction at the end" if p["accumulate"] == "tile"
                 else "per-tile row reduction",
                 "unmasked full tiles + masked tail" if p["loop"] == "even" else "every tile masked",
                 f"tile {p['block_m']}x{p['block_n']} (adapts to narrow N), {p['num_warps']} warps"]
        return "; ".join(parts)

    def _kernel(self, p: dict[str, Any]) -> str:
        tile = p["accumulate"] == "tile"
        acc_init = ("    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)        # one lane per (row, column) of the tile\n"
                    if tile else "    acc = tl.zeros([BLOCK_N], tl.float32)                 # column sums of this block\n")

        def add(x: str) -> str:
            return f"acc += {x}" if tile else f"acc += tl.sum({x}, axis=0)"
        if p["split"] == "two_pass":
            rng = ("    pid_m = tl.program_id(1)                              # row slice\n"
                   "    r_lo = pid_m * ROWS\n"
                   "    r_hi = tl.minimum(M, r_lo + ROWS)\n")
            y_off = "pid_m.to(tl.int64) * N + cols"
        else:
            rng = "    r_lo = 0\n    r_hi = M\n"
            y_off = "cols"
        if p["loop"] == "even":
            body = f'''\
    cmask = cols[None, :] < N                             # loop-invariant
    ptrs = x_ptr + (r_lo + rows)[:, None].to(tl.int64) * N + cols[None, :]
    n_full = (r_hi - r_lo) // BLOCK_M
    for _ in range(0, n_full):                            # full tiles: no row mask
        x = tl.load(ptrs, mask=cmask, other=0.0).to(tl.float32)
        {add("x")}
        ptrs += STEP                                      # BLOCK_M rows (an int64 argument when it must be)
    r0 = r_lo + n_full * BLOCK_M
    if r0 < r_hi:                                         # the tail tile
        r = r0 + rows
        x = tl.load(x_ptr + r[:, None].to(tl.int64) * N + cols[None, :],
                    mask=(r[:, None] < r_hi) & cmask, other=0.0).to(tl.float32)
        {add("x")}
'''
        else:
            body = f'''\
    for r0 in range(r_lo, r_hi, BLOCK_M):
        r = r0 + rows
        mask = (r[:, None] < r_hi) & (cols[None, :] < N)
        x = tl.load(x_ptr + r[:, None].to(tl.int64) * N + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        {add("x")}
'''
        total = "tl.sum(acc, axis=0)" if tile else "acc"
        return f'''\
@triton.jit
def _colsum(x_ptr, y_ptr, M, N, ROWS, STEP, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    # y[pid_m, cols] = sum of x[r, cols] over this program's rows [r_lo, r_hi)
    pid_n = tl.program_id(0)                              # column block
{rng}    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_M)
{acc_init}{body}    tl.store(y_ptr + {y_off}, {total}, mask=cols < N)
'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        if p["split"] == "two_pass":
            launch = '''\
    # row slices: about PROGRAMS programs in all, each slice a whole number of tiles and at least
    # two (a program's loop always has a next tile's loads to overlap with the adds)
    nb = triton.cdiv(N, BN)
    rows = triton.cdiv(triton.cdiv(M, max(1, min(PROGRAMS // nb, triton.cdiv(M, 2 * BM)))), BM) * BM
    S = triton.cdiv(M, rows)
    if S == 1:
        _colsum[(nb, 1)](g, out, M, N, M, BM * N, BLOCK_M=BM, BLOCK_N=BN, num_warps=WARPS)
        return None
    part = torch.empty((S, N), dtype=torch.float32, device=g.device)
    _colsum[(nb, S)](g, part, M, N, rows, BM * N, BLOCK_M=BM, BLOCK_N=BN, num_warps=WARPS)
    # second pass: the same reduction over the S partials, one slice
    BM2 = min(BM, triton.next_power_of_2(S))
    _colsum[(nb, 1)](part, out, S, N, S, BM2 * N, BLOCK_M=BM2, BLOCK_N=BN, num_warps=WARPS)
'''
        else:
            launch = '''\
    _colsum[(triton.cdiv(N, BN),)](g, out, M, N, M, BM * N, BLOCK_M=BM, BLOCK_N=BN, num_warps=WARPS)
'''
        programs = f"PROGRAMS = {p['programs']}\n" if p["split"] == "two_pass" else ""
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

BLOCK_M, BLOCK_N = {p["block_m"]}, {p["block_n"]}
WARPS = {p["num_warps"]}
{programs}

{self._kernel(p)}

def kscout_forward(g, out):
    M, N = g.shape
    if N == 0:
        return None
    if M == 0:
        out.zero_()
        return None
    # the tile: at most BLOCK_N wide (next_pow2(N) on narrow matrices), BLOCK_M * BLOCK_N elements,
    # at most next_pow2(M) tall
    BN = min(BLOCK_N, triton.next_power_of_2(N))
    BM = min(BLOCK_M * BLOCK_N // BN, triton.next_power_of_2(M))
{launch}    return None
'''
