"""rotary for the triton backend: y = x * cos + rotate_half(x) * sin, x [B, S, H, D], cos/sin [S, D].

A Python module with @triton.jit kernels and `kscout_forward(x, cos, sin, out)` (the triton ABI:
harness/backends/triton.py). With HALF = D / 2, per head and j < HALF:

    y[j]        = x[j] * cos[j]               - x[j + HALF] * sin[j]
    y[j + HALF] = x[j + HALF] * cos[j + HALF] + x[j] * sin[j + HALF]

Memory-bound (3 flops against 8 bytes per element). The naive kernel mirrors eager: rotate_half(x)
into a scratch tensor as big as x, then a second launch for x * cos + rot * sin, both over a flat
1-D grid that recovers (position, column) from each element's offset with a divide and two modulos
and gathers the table entries per element (twice the compulsory traffic of x, plus the
temporary). The space covers fusing into one launch (both halves of a head loaded once, both
outputs written from registers), a 2-D tile grid (a program takes one (batch, position) row and
BLOCK_H heads as a [BLOCK_H, HALF] tile: the position's cos/sin row is loaded once and broadcast
over the heads, no per-element divide or modulo), a batch loop (the tile program walks the B
batches of its position, so each table row is read once from memory and reused from registers),
cache hints (evict_first for x, .cs streaming stores for y, evict_last for the small tables so
they stay in L2 while x streams past), block sizes and warps. Head dims that are not a power of
two (18, 96) pad the tile to the next power of two and mask the rest. Offsets are int64; all math
is fp32 after the loads.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily


@register
class TritonRotaryTemplates(TemplateFamily):
    family = "rotary"
    backend = "triton"
    comment = "#"
    naive_description = "naive: rotate_half into a temporary, then a second launch, flat grid with div/mod"
    axes = [
        Axis(name="fuse", values=["two_sweeps", "fused"], default="two_sweeps",
             doc="two_sweeps: rotate_half(x) into a scratch tensor, then y (like eager); fused: one launch, "
                 "both halves of a head loaded once and both outputs written from registers"),
        Axis(name="grid", values=["flat", "tiles"], default="flat",
             doc="flat: 1-D grid over elements, position and column by div/mod per element; tiles: 2-D "
                 "grid of (row, head block) with [BLOCK_H, HALF] tiles, the table row broadcast over heads"),
        Axis(name="batch_loop", values=["off", "on"], default="off",
             doc="tiles only: one program per (position, head block) loops over the B batches, the "
                 "cos/sin row kept in registers"),
        Axis(name="cache", values=["default", "hints"], default="default",
             doc="evict_first on x, .cs streaming stores for y, evict_last on the tables"),
        Axis(name="block", values=[1024, 2048, 4096], default=1024, kind="tunable",
             doc="elements per program of the flat grid (a power of two)"),
        Axis(name="block_h", values=[4, 8, 16, 32], default=16, kind="tunable",
             doc="heads per tile of the tile grid"),
        Axis(name="num_warps", values=[2, 4, 8], default=4, kind="tunable"),
    ]
    moves = [
        Move(name="fuse-one-launch", description="fuse rotate_half into the multiply-add: one launch, no "
             "temporary (x read once, y written once)", assigns={"fuse": "fused"}, prior_gain=1.8),
        Move(name="tile-grid", description="2-D (row, head block) grid of [BLOCK_H, HALF] tiles: the cos/sin "
             "row loaded once per tile, no per-element div/mod", assigns={"grid": "tiles"}, prior_gain=1.3),
        Move(name="batch-loop", description="one program per (position, head block) walks the batches: each "
             "table row read once, kept in registers", assigns={"batch_loop": "on"}, requires={"grid": "tiles"},
             prior_gain=1.05),
        Move(name="cache-hints", description="evict_first x, streaming stores for y, evict_last tables",
             assigns={"cache": "hints"}, prior_gain=1.03),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        tiles = p["grid"] == "tiles"
        return "; ".join([
            "one fused launch" if p["fuse"] == "fused" else "rotate_half into a temporary, then a second launch",
            f"[{p['block_h']} heads, HALF] tiles on a (row, head block) grid" if tiles
            else f"flat 1-D grid, BLOCK {p['block']}",
            "loop over batches per position" if tiles and p["batch_loop"] == "on" else "one program per row",
            "cache hints" if p["cache"] == "hints" else "default caching",
            f"{p['num_warps']} warps"])

    # --- hints ------------------------------------------------------------------------------------

    def _hints(self, p: dict[str, Any]) -> dict[str, str]:
        on = p["cache"] == "hints"
        return {"x": ', eviction_policy="evict_first"' if on else "",      # x: read once
                "tab": ', eviction_policy="evict_last"' if on else "",     # tables: re-read by every head/batch
                "y": ', cache_modifier=".cs"' if on else ""}               # y: a streaming store

    # --- flat grid: one program per BLOCK elements ------------------------------------------------

    def _flat_kernels(self, p: dict[str, Any]) -> list[str]:
        h = self._hints(p)
        head = "@triton.jit\ndef {0}({1}, BLOCK: tl.constexpr):\n    o = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)\n"
        if p["fuse"] == "fused":
            # o indexes the first-half elements: numel // 2 of them, HALF per head
            return [head.format("_rope_flat", "x_ptr, c_ptr, s_ptr, y_ptr, n_half, S, H, D, HALF") + f'''\
    mask = o < n_half
    hid = o // HALF                                   # head index over B*S*H
    j = o - hid * HALF                                # column in the first half
    xo = hid * D + j
    t = ((hid // H) % S) * D + j                      # this position's table entry
    x1 = tl.load(x_ptr + xo, mask=mask, other=0.0{h["x"]}).to(tl.float32)
    x2 = tl.load(x_ptr + xo + HALF, mask=mask, other=0.0{h["x"]}).to(tl.float32)
    c1 = tl.load(c_ptr + t, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    c2 = tl.load(c_ptr + t + HALF, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    s1 = tl.load(s_ptr + t, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    s2 = tl.load(s_ptr + t + HALF, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    tl.store(y_ptr + xo, (x1 * c1 - x2 * s1).to(y_ptr.dtype.element_ty), mask=mask{h["y"]})
    tl.store(y_ptr + xo + HALF, (x2 * c2 + x1 * s2).to(y_ptr.dtype.element_ty), mask=mask{h["y"]})
''']
        return [
            head.format("_rotate_half_flat", "x_ptr, r_ptr, numel, D, HALF") + f'''\
    mask = o < numel
    j = o % D
    first = j < HALF
    src = tl.where(first, o + HALF, o - HALF)         # the partner in the other half
    v = tl.load(x_ptr + src, mask=mask, other=0.0{h["x"]}).to(tl.float32)
    tl.store(r_ptr + o, tl.where(first, -v, v).to(r_ptr.dtype.element_ty), mask=mask)
''',
            head.format("_rope_mad_flat", "x_ptr, r_ptr, c_ptr, s_ptr, y_ptr, numel, S, HD, D") + f'''\
    mask = o < numel
    j = o % D
    t = ((o // HD) % S) * D + j                       # position (o // HD) % S, column j
    x = tl.load(x_ptr + o, mask=mask, other=0.0{h["x"]}).to(tl.float32)
    r = tl.load(r_ptr + o, mask=mask, other=0.0{h["x"]}).to(tl.float32)
    c = tl.load(c_ptr + t, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    s = tl.load(s_ptr + t, mask=mask, other=0.0{h["tab"]}).to(tl.float32)
    tl.store(y_ptr + o, (x * c + r * s).to(y_ptr.dtype.element_ty), mask=mask{h["y"]})
''']

    # --- tile grid: one program per (row, head block) or (position, head block) -------------------

    def _tile_kernels(self, p: dict[str, Any]) -> list[str]:
        h = self._hints(p)
        loop = p["batch_loop"] == "on"
        tl_ld = "tl.load({0}, mask={1}, other=0.0{2}).to(tl.float32)"
        # where the program is: its table row, and (per batch) the row of x/y it works on
        if loop:
            where = ("    pos = tl.program_id(0)                            # one position, every batch\n"
                     "    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)\n")
        else:
            where = ("    row = tl.program_id(0)                            # b * S + pos\n"
                     "    pos = row % S\n"
                     "    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)\n")

        def per_row(body: str) -> str:
            """body (4-space indented) sees base, the first element of this (batch, position) row."""
            if not loop:
                return "    base = row.to(tl.int64) * H * D\n" + body
            ind = "".join(f"    {ln}\n" for ln in body.splitlines())
            return ("    for b in range(0, B):\n"
                    "        base = (b * S + pos).to(tl.int64) * H * D\n" + ind)

        if p["fuse"] == "fused":
            tab = "    t = pos.to(tl.int64) * D + j\n" + "".join(
                f"    {n} = {tl_ld.format(f'{ptr} + t{off}', 'jm', h['tab'])}\n"
                for n, ptr, off in [("c1", "c_ptr", ""), ("c2", "c_ptr", " + HALF"),
                                    ("s1", "s_ptr", ""), ("s2", "s_ptr", " + HALF")])
            body = (f"    xo = base + heads[:, None] * D + j[None, :]\n"
                    f"    x1 = {tl_ld.format('x_ptr + xo', 'm', h['x'])}\n"
                    f"    x2 = {tl_ld.format('x_ptr + xo + HALF', 'm', h['x'])}\n"
                    f"    y1 = x1 * c1[None, :] - x2 * s1[None, :]\n"
                    f"    y2 = x2 * c2[None, :] + x1 * s2[None, :]\n"
                    f"    tl.store(y_ptr + xo, y1.to(y_ptr.dtype.element_ty), mask=m{h['y']})\n"
                    f"    tl.store(y_ptr + xo + HALF, y2.to(y_ptr.dtype.element_ty), mask=m{h['y']})\n")
            return [f'''\
@triton.jit
def _rope_tile(x_ptr, c_ptr, s_ptr, y_ptr, B, S, H, D, HALF, BLOCK_H: tl.constexpr, HALF_PAD: tl.constexpr):
{where}    j = tl.arange(0, HALF_PAD)                        # columns of the first half, padded
    jm = j < HALF
    m = (heads[:, None] < H) & jm[None, :]
    # this position's cos/sin row, both halves: loaded once, broadcast over the BLOCK_H heads
{tab}{per_row(body)}''']
        rot_body = (f"    xo = base + heads[:, None] * D + j[None, :]\n"
                    f"    x1 = {tl_ld.format('x_ptr + xo', 'm', h['x'])}\n"
                    f"    x2 = {tl_ld.format('x_ptr + xo + HALF', 'm', h['x'])}\n"
                    f"    tl.store(r_ptr + xo, (-x2).to(r_ptr.dtype.element_ty), mask=m)\n"
                    f"    tl.store(r_ptr + xo + HALF, x1.to(r_ptr.dtype.element_ty), mask=m)\n")
        mad_body = (f"    o = base + heads[:, None] * D + j[None, :]\n"
                    f"    x = {tl_ld.format('x_ptr + o', 'm', h['x'])}\n"
                    f"    r = {tl_ld.format('r_ptr + o', 'm', h['x'])}\n"
                    f"    tl.store(y_ptr + o, (x * c[None, :] + r * s[None, :]).to(y_ptr.dtype.element_ty), "
                    f"mask=m{h['y']})\n")
        # the rotation reads no table: its program always covers one row (batch_loop is for the tables)
        rot_where = ("    row = tl.program_id(0)                            # b * S + pos\n"
                     "    heads = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)\n")
        return [f'''\
@triton.jit
def _rotate_half_tile(x_ptr, r_ptr, H, D, HALF, BLOCK_H: tl.constexpr, HALF_PAD: tl.constexpr):
{rot_where}    j = tl.arange(0, HALF_PAD)
    m = (heads[:, None] < H) & (j[None, :] < HALF)
    base = row.to(tl.int64) * H * D
{rot_body}''', f'''\
@triton.jit
def _rope_mad_tile(x_ptr, r_ptr, c_ptr, s_ptr, y_ptr, B, S, H, D, BLOCK_H: tl.constexpr, D_PAD: tl.constexpr):
{where}    j = tl.arange(0, D_PAD)                           # the whole head, padded
    jm = j < D
    m = (heads[:, None] < H) & jm[None, :]
    t = pos.to(tl.int64) * D + j                      # this position's table row: loaded once per tile
    c = {tl_ld.format('c_ptr + t', 'jm', h['tab'])}
    s = {tl_ld.format('s_ptr + t', 'jm', h['tab'])}
{per_row(mad_body)}''']

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        tiles = p["grid"] == "tiles"
        fused = p["fuse"] == "fused"
        loop = tiles and p["batch_loop"] == "on"
        note = ("# note: batch_loop applies to the tile grid only; the flat grid ignores it\n"
                if p["batch_loop"] == "on" and not tiles else "")
        launch = "num_warps=WARPS"
        if tiles:
            consts = f"BLOCK_H = {p['block_h']}\nWARPS = {p['num_warps']}\n"
            kernels = self._tile_kernels(p)
            grid = f"({'S' if loop else 'B * S'}, triton.cdiv(H, BLOCK_H))"   # batch loop: one program per position
            row_grid = "(B * S, triton.cdiv(H, BLOCK_H))"
            if fused:
                calls = [f"_rope_tile[{grid}](x, cos, sin, out, B, S, H, D, HALF, BLOCK_H=BLOCK_H, "
                         f"HALF_PAD=triton.next_power_of_2(HALF), {launch})"]
            else:
                calls = [f"_rotate_half_tile[{row_grid}](x, rot, H, D, HALF, BLOCK_H=BLOCK_H, "
                         f"HALF_PAD=triton.next_power_of_2(HALF), {launch})",
                         f"_rope_mad_tile[{grid}](x, rot, cos, sin, out, B, S, H, D, BLOCK_H=BLOCK_H, "
                         f"D_PAD=triton.next_power_of_2(D), {launch})"]
        else:
            consts = f"BLOCK = {p['block']}\nWARPS = {p['num_warps']}\n"
            kernels = self._flat_kernels(p)
            if fused:
                calls = ["_rope_flat[(triton.cdiv(numel // 2, BLOCK),)](x, cos, sin, out, numel // 2, S, H, D, "
                         f"HALF, BLOCK=BLOCK, {launch})"]
            else:
                calls = [f"_rotate_half_flat[(triton.cdiv(numel, BLOCK),)](x, rot, numel, D, HALF, BLOCK=BLOCK, {launch})",
                         "_rope_mad_flat[(triton.cdiv(numel, BLOCK),)](x, rot, cos, sin, out, numel, S, H * D, D, "
                         f"BLOCK=BLOCK, {launch})"]
        scratch = ("    rot = torch.empty(x.shape, dtype=x.dtype, device=x.device)   # rotate_half(x), as big as x\n"
                   if not fused else "")
        body = "".join(f"    {c}\n" for c in calls)
        return f'''{self.header(p, self.strategy(p))}{note}
import torch
import triton
import triton.language as tl

{consts}

{(chr(10) * 2).join(kernels)}

def kscout_forward(x, cos, sin, out):
    B, S, H, D = x.shape
    numel = x.numel()
    if numel == 0:
        return None
    assert D % 2 == 0, "rotate_half splits the head dim in two equal halves"
    HALF = D // 2
{scratch}{body}    return None
'''
