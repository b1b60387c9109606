"""swiglu for the triton backend: y = silu(gate) * up = gate / (1 + e^-gate) * up; gate, up, y [M, H].

A Python module with @triton.jit kernels and `kscout_forward(gate, up, out)` (the triton ABI:
harness/backends/triton.py). Memory-bound elementwise op (14 flops against 12 bytes per element
when fused): what matters on a GPU is the bytes moved and keeping enough of them in flight. The
naive kernel mirrors eager: two launches over a flat 1-D grid (silu(gate) into out, then
out *= up), 20 bytes per element. The space covers fusing into one launch (gate and up read once,
y written once: 12 bytes per element), a persistent grid (a fixed number of programs, a few per
SM, striding over the blocks: no tail wave of half-empty programs, block scheduling amortized),
streaming cache hints (evict_first on the once-read inputs, .cs streaming stores for y, so the
96 MB stream does not evict anything worth keeping from L2), and the block size and warps
(elements per thread: 4 fp32 = one 128-bit access). Offsets are int64 (program id cast before
the multiply); all math is fp32 after the loads.

silu is g / (1 + e^-g): for g -> +inf, e^-g -> 0 and y -> g; for g -> -inf, e^-g -> inf and
y -> -0 (the "large" distribution reaches both); e^g / (1 + e^g) would give inf / inf = NaN.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

SMS = 132   # H100 / H200 SXM: the persistent grid's program counts are multiples of it


@register
class TritonSwigluTemplates(TemplateFamily):
    family = "swiglu"
    backend = "triton"
    comment = "#"
    naive_description = "naive: two launches like eager (silu into out, then out *= up), flat grid"
    axes = [
        Axis(name="fuse", values=["unfused", "fused"], default="unfused",
             doc="unfused: two launches like eager (20 bytes per element); fused: one launch, gate and up "
                 "read once, y written once (12 bytes per element)"),
        Axis(name="grid", values=["flat", "persistent"], default="flat",
             doc="flat: one program per BLOCK; persistent: PROGRAMS programs striding over the blocks"),
        Axis(name="cache", values=["default", "streaming"], default="default",
             doc="streaming: evict_first on once-read inputs, .cs (streaming) stores for the final y"),
        Axis(name="block", values=[1024, 2048, 4096, 8192], default=1024, kind="tunable",
             doc="elements per block (a power of two)"),
        Axis(name="num_warps", values=[4, 8], default=4, kind="tunable"),
        Axis(name="programs", values=[4 * SMS, 8 * SMS, 16 * SMS], default=8 * SMS, kind="tunable",
             doc=f"programs of the persistent grid (multiples of the {SMS} SMs of an H100/H200)"),
    ]
    moves = [
        Move(name="fuse-one-launch", description="fuse silu and the multiply into one launch: gate and up "
             "read once, y written once (12 instead of 20 bytes per element)", assigns={"fuse": "fused"},
             prior_gain=1.6),
        Move(name="persistent-grid", description="persistent grid: a few programs per SM stride over the "
             "blocks (no tail wave, scheduling amortized)", assigns={"grid": "persistent"}, prior_gain=1.05),
        Move(name="streaming-hints", description="cache hints for a stream: evict_first loads, .cs streaming "
             "stores", assigns={"cache": "streaming"}, prior_gain=1.03),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            "one fused launch" if p["fuse"] == "fused" else "two launches (silu, then multiply by up)",
            f"persistent grid of {p['programs']} programs" if p["grid"] == "persistent" else "flat 1-D grid",
            "streaming cache hints" if p["cache"] == "streaming" else "default caching",
            f"BLOCK {p['block']}, {p['num_warps']} warps"])

    def _kernel(self, name: str, args: str, body: str, p: dict[str, Any]) -> str:
        """One elementwise kernel; `body` (4-space indented) sees offs and mask."""
        if p["grid"] == "persistent":
            loop = ("    pid = tl.program_id(0).to(tl.int64)\n"
                    "    nblk = tl.cdiv(numel, BLOCK)\n"
                    "    for blk in range(pid, nblk, tl.num_programs(0)):    # grid-stride over the blocks\n"
                    "        offs = blk * BLOCK + tl.arange(0, BLOCK)\n"
                    "        mask = offs < numel\n")
            body = "".join(f"    {ln}\n" for ln in body.splitlines())
        else:
            loop = ("    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)\n"
                    "    mask = offs < numel\n")
        return f"@triton.jit\ndef {name}({args}, numel, BLOCK: tl.constexpr):\n{loop}{body}"

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        stream = p["cache"] == "streaming"
        once = ', eviction_policy="evict_first"' if stream else ""      # read exactly once
        last = ', cache_modifier=".cs"' if stream else ""                # the final y: a streaming store

        def ld(ptr: str, hint: str) -> str:
            return f"tl.load({ptr} + offs, mask=mask, other=0.0{hint}).to(tl.float32)"
        out = "y_ptr.dtype.element_ty"
        if p["fuse"] == "fused":
            kernels = [self._kernel("_swiglu", "g_ptr, u_ptr, y_ptr",
                                    f"    g = {ld('g_ptr', once)}\n    u = {ld('u_ptr', once)}\n"
                                    f"    tl.store(y_ptr + offs, (_silu(g) * u).to({out}), mask=mask{last})\n", p)]
            launches = ["_swiglu[grid](gate, up, out, numel, BLOCK=BLOCK, num_warps=WARPS)"]
        else:
            kernels = [
                # the temporary silu(gate) is re-read by the second launch: a plain store (it may stay in L2)
                self._kernel("_silu_into", "g_ptr, y_ptr",
                             f"    g = {ld('g_ptr', once)}\n"
                             f"    tl.store(y_ptr + offs, _silu(g).to({out}), mask=mask)\n", p),
                self._kernel("_mul_inplace", "u_ptr, y_ptr",
                             f"    s = {ld('y_ptr', once)}\n    u = {ld('u_ptr', once)}\n"
                             f"    tl.store(y_ptr + offs, (s * u).to({out}), mask=mask{last})\n", p),
            ]
            launches = ["_silu_into[grid](gate, out, numel, BLOCK=BLOCK, num_warps=WARPS)",
                        "_mul_inplace[grid](up, out, numel, BLOCK=BLOCK, num_warps=WARPS)"]
        if p["grid"] == "persistent":
            consts = f"BLOCK = {p['block']}\nPROGRAMS = {p['programs']}\nWARPS = {p['num_warps']}\n"
            grid = "(min(triton.cdiv(numel, BLOCK), PROGRAMS),)"
        else:
            consts = f"BLOCK = {p['block']}\nWARPS = {p['num_warps']}\n"
            grid = "(triton.cdiv(numel, BLOCK),)"
        body = "\n".join(f"    {ln}" for ln in launches)
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

{consts}

@triton.jit
def _silu(g):
    # g / (1 + e^-g): e^-g -> inf for very negative g gives -0, never inf / inf
    return g / (1.0 + tl.exp(-g))


{(chr(10) * 2).join(kernels)}

def kscout_forward(gate, up, out):
    numel = gate.numel()
    if numel == 0:
        return None
    grid = {grid}
{body}
    return None
'''
