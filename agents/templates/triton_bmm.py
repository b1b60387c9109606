"""bmm for the triton backend: C[b] = A[b] @ B[b], A [BATCH, M, K], B [BATCH, K, N], float32.

A Python module with one @triton.jit kernel and `kscout_forward(a, b, out)` (the triton ABI:
harness/backends/triton.py). The naive kernel is the matmul family's naive kernel with the batch on
the second grid axis: one program per (32x32 tile of C[b], b), stepping over K in BLOCK_K slices
with tl.dot into a float32 accumulator; every edge is masked, so any BATCH, M, N, K is legal. The
dot runs with input_precision="ieee": float32 was asked for, and TF32 would be a precision downcast
the harness rejects as precision_loss on a GPU (the interpreter ignores input_precision, so it
cannot tell). Batch offsets are int64 (BATCH * M * N passes 2^31 long before the GPU runs out).

The space (GPU strategies, as for matmul, plus how the batch is scheduled):
- tile: BLOCK_M x BLOCK_N of C per program (32x32 .. 128x128): each element of A and B loaded
  into shared memory feeds BLOCK_N (BLOCK_M) FMAs, so reuse grows with the tile.
- order=grouped: within one batch entry, GROUP_M row-tiles run per column sweep, so concurrently
  running programs share B[b]'s column tiles (and A[b]'s row tiles) in L2.
- schedule=persistent: a fixed grid of PROGRAMS programs (one or two per SM) loops over every
  (batch entry, tile) pair, batch-major: no launch tail of partial waves over BATCH * tiles
  programs, and consecutive tiles of one program share its batch entry's operands.
- stages: num_stages, software pipelining of the K loop (loads of the next slices in flight
  while the current dot runs). Triton keeps stages - 1 fp32 A and B slices in shared memory
  (128x128 tiles at BLOCK_K 64: 64 KiB each); where the GPU has less (a gfx942 workgroup: 64 KiB
  of LDS) the launcher steps BLOCK_K, then the stages, down until it launches
  (agents/templates/triton_fit.py).
Tunables: BLOCK_K, num_warps, GROUP_M (grouped order), PROGRAMS (persistent schedule).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily
from agents.templates.triton_fit import IMPORT, LAUNCHER

TILES = {"32x32": (32, 32), "64x64": (64, 64), "128x64": (128, 64), "128x128": (128, 128)}


@register
class TritonBmmTemplates(TemplateFamily):
    family = "bmm"
    backend = "triton"
    comment = "#"
    naive_description = "naive: 32x32 tiles of C per program, batch on the second grid axis, row-major, no pipelining"
    axes = [
        Axis(name="tile", values=list(TILES), default="32x32",
             doc="BLOCK_M x BLOCK_N of C[b] per program: each A and B element loaded is reused BLOCK_N / BLOCK_M times"),
        Axis(name="order", values=["row_major", "grouped"], default="row_major",
             doc="launch order of one batch entry's tiles: grouped runs GROUP_M row-tiles per column sweep (L2 reuse)"),
        Axis(name="schedule", values=["grid", "persistent"], default="grid",
             doc="grid: one program per (tile, batch entry); persistent: PROGRAMS programs loop over all of them"),
        Axis(name="stages", values=[1, 3, 4], default=1,
             doc="num_stages: K-loop loads in flight ahead of the dot (software pipelining)"),
        Axis(name="block_k", values=[16, 32, 64], default=64, kind="tunable", doc="BLOCK_K"),
        Axis(name="num_warps", values=[2, 4, 8], default=4, kind="tunable"),
        Axis(name="group_m", values=[4, 8], default=8, kind="tunable", doc="row-tiles per group (grouped order)"),
        Axis(name="programs", values=[132, 264], default=132, kind="tunable",
             doc="persistent schedule: programs launched (1 or 2 per SM of an H100/H200's 132)"),
    ]
    moves = [
        Move(name="tile-64", description="64x64 tiles: twice the reuse of every loaded element",
             assigns={"tile": "64x64"}, requires={"tile": "32x32"}, prior_gain=1.8),
        Move(name="tile-128x64", description="128x64 tiles", assigns={"tile": "128x64"},
             requires={"tile": "64x64"}, prior_gain=1.3),
        Move(name="tile-128", description="128x128 tiles (8 warps' worth of accumulators)",
             assigns={"tile": "128x128"}, requires={"tile": "128x64"}, prior_gain=1.1),
        Move(name="grouped-order", description="grouped launch order within each batch entry "
             "(GROUP_M row-tiles share B[b]'s column tiles in L2)", assigns={"order": "grouped"}, prior_gain=1.05),
        Move(name="persistent", description="persistent grid: one or two programs per SM loop over all "
             "(batch entry, tile) pairs, batch-major (no partial last wave, no per-tile launch cost)",
             assigns={"schedule": "persistent"}, prior_gain=1.1),
        Move(name="pipeline-3", description="software-pipeline the K loop: 3 stages of loads in flight",
             assigns={"stages": 3}, prior_gain=1.3),
        Move(name="pipeline-4", description="4 pipeline stages", assigns={"stages": 4}, requires={"stages": 3},
             prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            f"{p['tile']} tiles, BLOCK_K {p['block_k']}",
            f"grouped order within a batch entry (GROUP_M {p['group_m']})" if p["order"] == "grouped"
            else "row-major order",
            f"persistent grid of {p['programs']} programs over (batch, tile)" if p["schedule"] == "persistent"
            else "one program per (tile, batch entry)",
            f"{p['stages']} pipeline stage(s)", f"{p['num_warps']} warps"])

    def _order(self, p: dict[str, Any], ind: str) -> str:
        """pid_m, pid_n of tile `t` of one batch entry's num_m x num_n tiles."""
        if p["order"] == "grouped":
            return (f"{ind}# GROUP_M row-tiles per column sweep: their B[b] tiles are reused from L2\n"
                    f"{ind}group = GROUP_M * num_n\n"
                    f"{ind}first_m = (t // group) * GROUP_M\n"
                    f"{ind}rows = tl.minimum(num_m - first_m, GROUP_M)\n"
                    f"{ind}pid_m = first_m + (t % group) % rows\n"
                    f"{ind}pid_n = (t % group) // rows\n")
        return f"{ind}pid_m = t // num_n\n{ind}pid_n = t % num_n\n"

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        bm, bn = TILES[p["tile"]]
        grouped = p["order"] == "grouped"
        persistent = p["schedule"] == "persistent"
        cexpr = ", GROUP_M: tl.constexpr" if grouped else ""
        ckw = ", GROUP_M=GROUP_M" if grouped else ""
        consts = [f"BLOCK_M, BLOCK_N, BLOCK_K = {bm}, {bn}, {p['block_k']}",
                  f"WARPS, STAGES = {p['num_warps']}, {p['stages']}"]
        if grouped:
            consts.append(f"GROUP_M = {p['group_m']}")
        if persistent:
            consts.append(f"PROGRAMS = {p['programs']}               # persistent grid: 1-2 programs per SM")

        tile_fn = f'''\
@triton.jit
def _tile(a_ptr, b_ptr, c_ptr, bid, t, M, N, K, num_m, num_n,
          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr{cexpr}):
    # one BLOCK_M x BLOCK_N tile (number t) of C[bid] = A[bid] @ B[bid]
{self._order(p, "    ")}    bid = bid.to(tl.int64)
    a_ptr += bid * M * K
    b_ptr += bid * K * N
    c_ptr += bid * M * N
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + rm[:, None].to(tl.int64) * K + rk[None, :]
    b_ptrs = b_ptr + rk[:, None].to(tl.int64) * N + rn[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_K)):
        k_left = K - k * BLOCK_K
        a = tl.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] < k_left), other=0.0).to(tl.float32)
        b = tl.load(b_ptrs, mask=(rk[:, None] < k_left) & (rn[None, :] < N), other=0.0).to(tl.float32)
        acc += tl.dot(a, b, input_precision="ieee")
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K * N
    c_ptrs = c_ptr + rm[:, None].to(tl.int64) * N + rn[None, :]
    tl.store(c_ptrs, acc.to(c_ptr.dtype.element_ty), mask=(rm[:, None] < M) & (rn[None, :] < N))
'''
        args = "a_ptr, b_ptr, c_ptr, BATCH, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr" + cexpr
        call_kw = f"BLOCK_M, BLOCK_N, BLOCK_K{', GROUP_M' if grouped else ''}"
        if persistent:
            kernel = f'''\
@triton.jit
def _bmm(a_ptr, b_ptr, c_ptr, BATCH, M, N, K, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
         BLOCK_K: tl.constexpr{cexpr}):
    # persistent: program pid takes work items pid, pid + programs, ... of BATCH * tiles, batch-major
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    tiles = num_m * num_n
    for w in range(tl.program_id(0), BATCH * tiles, tl.num_programs(0)):
        _tile(a_ptr, b_ptr, c_ptr, w // tiles, w % tiles, M, N, K, num_m, num_n, {call_kw})
'''
            grid = "    grid = (min(BATCH * triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N), PROGRAMS),)\n"
        else:
            kernel = f'''\
@triton.jit
def _bmm({args}):
    # grid (tiles, BATCH): program (t, b) computes tile t of C[b]
    num_m = tl.cdiv(M, BLOCK_M)
    num_n = tl.cdiv(N, BLOCK_N)
    _tile(a_ptr, b_ptr, c_ptr, tl.program_id(1), tl.program_id(0), M, N, K, num_m, num_n, {call_kw})
'''
            grid = "    grid = (triton.cdiv(M, BLOCK_M) * triton.cdiv(N, BLOCK_N), BATCH)\n"
        nl = "\n"
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl
{IMPORT}

{nl.join(consts)}


{tile_fn}

{kernel}

def kscout_forward(a, b, out):
    BATCH, M, K = a.shape
    N = b.shape[2]
    if BATCH == 0 or M == 0 or N == 0:
        return None
{grid}    _launch_fitting(a.device, lambda bk, stages: _bmm[grid](
        a, b, out, BATCH, M, N, K, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_K=bk{ckw},
        num_warps=WARPS, num_stages=stages))
    return None


{LAUNCHER}'''
