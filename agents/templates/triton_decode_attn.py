"""decode_attn for the triton backend: out[b, h] = softmax(q[b, h] . K[b, h]^T / sqrt(D)) . V[b, h].

A Python module with @triton.jit kernels and `kscout_forward(q, k_cache, v_cache, out)` (the triton
ABI: harness/backends/triton.py); q [B, H, D], K and V [B, H, S, D], fp32. A decode step is
memory-bound: every K and V element is used once per step, so the kernel's job is to stream the
cache at full bandwidth from enough SMs. The naive kernel is one program per (batch, head) that
sweeps the cache in BLOCK_N-key tiles twice, as eager's scores-then-softmax does: sweep 1 the
maximum score (reads K), sweep 2 the exps, their sum and the weighted sum of V (reads K again and
V): 1.5x the compulsory traffic, and only B*H programs (32 on the bench shape, on a 132-SM GPU).

The space: an online softmax (running max, rescaled sum and accumulator: K and V read once);
split-KV (flash-decoding: (head, key chunk) programs write a partial max, sum and accumulator into
torch.empty scratch, a second kernel merges a head's chunks; the split count aims at SPLIT_TARGET
programs so a few heads still fill the GPU); software pipelining of the key loop (tl.range with
num_stages: cp.async keeps the next tiles' K/V loads in flight while this one is reduced; the
launch's num_stages alone pipelines only loads that feed a tl.dot, so the loop says it itself, and
the stage count is capped so the K/V buffers fit SMEM_BUDGET of shared memory); the softmax
scale and log2(e) folded into q once with exp2 for the exponentials (FlashAttention's form: no
multiply per score); BLOCK_N and warps. The head dim is one BLOCK_D = next_power_of_2(D) tile,
masked, so any D is legal (D = 20 in the hidden shapes). The workload is plain multi-head (K and
V have H heads), so there is no grouped-query axis. All math is fp32 after the loads; masked
scores are -inf, and every tile holds at least one real key, so a running max is always finite
and exp(-inf - m) = 0.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

LOG2E = "1.4426950408889634"


@register
class TritonDecodeAttnTemplates(TemplateFamily):
    family = "decode_attn"
    backend = "triton"
    comment = "#"
    naive_description = "naive: one program per (batch, head), two sweeps over the cache (max; exp, sum, P.V)"
    axes = [
        Axis(name="passes", values=["two", "online"], default="two",
             doc="two sweeps per head (max score; exp+sum+P.V: K read twice) or an online softmax (K, V once)"),
        Axis(name="split", values=["none", "kv"], default="none",
             doc="one program per (batch, head), or split-KV: (head, key chunk) programs + a merge kernel"),
        Axis(name="stages", values=[1, 2, 3], default=1,
             doc="num_stages: key-loop tiles whose loads are in flight ahead of the reduction"),
        Axis(name="exp", values=["exp", "exp2"], default="exp",
             doc="scale every score and use exp, or fold scale*log2(e) into q once and use exp2"),
        Axis(name="block_n", values=[32, 64, 128], default=64, kind="tunable",
             doc="keys per tile of the key loop (a power of two)"),
        Axis(name="split_target", values=[128, 256, 512], default=256, kind="tunable",
             doc="programs the split-KV launch aims for (about 2 per SM at 256 on a 132-SM H100/H200)"),
        Axis(name="num_warps", values=[2, 4, 8], default=4, kind="tunable"),
    ]
    moves = [
        Move(name="online-softmax", description="online softmax: running max, rescaled sum and accumulator in "
             "one sweep, K and V each read once (2/3 of the naive traffic)", assigns={"passes": "online"},
             prior_gain=1.4),
        Move(name="split-kv", description="flash-decoding: split each head's keys over programs (partial max, "
             "sum, accumulator to scratch) and merge them in a second kernel, so B*H heads fill every SM",
             assigns={"split": "kv"}, prior_gain=2.5),
        Move(name="pipeline-2", description="software-pipeline the key loop: the next K/V tile's loads in flight "
             "while this one is reduced (num_stages=2)", assigns={"stages": 2}, prior_gain=1.15),
        Move(name="pipeline-3", description="3 pipeline stages: two tiles of loads in flight",
             assigns={"stages": 3}, requires={"stages": 2}, prior_gain=1.05),
        Move(name="exp2-folded-scale", description="fold 1/sqrt(D)*log2(e) into q once and take exp2 of the "
             "scores (FlashAttention's form): no multiply per score", assigns={"exp": "exp2"}, prior_gain=1.03),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            "online softmax (K, V read once)" if p["passes"] == "online" else "two sweeps (max; exp, sum, P.V)",
            f"split-KV to ~{p['split_target']} programs + merge kernel" if p["split"] == "kv"
            else "one program per (batch, head)",
            f"{p['stages']} pipeline stage(s)",
            "scale*log2(e) folded into q, exp2" if p["exp"] == "exp2" else "scaled scores, exp",
            f"BLOCK_N {p['block_n']}, {p['num_warps']} warps"])

    # --- the key loop of one (head, key range): leaves m (max score), l (sum of exps), acc [BLOCK_D]

    def _sweeps(self, p: dict[str, Any]) -> str:
        ex = "tl.exp2" if p["exp"] == "exp2" else "tl.exp"
        scale = "" if p["exp"] == "exp2" else " * scale"
        tile = '''\
        offs_n = s0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < end
        kv_off = kv_base + offs_n[:, None] * D + offs_d[None, :]
        mask_kv = mask_n[:, None] & mask_d[None, :]
        k = tl.load(k_ptr + kv_off, mask=mask_kv, other=0.0).to(tl.float32)
'''
        score = f"        s = tl.where(mask_n, tl.sum(k * q[None, :], axis=1){scale}, float(\"-inf\"))\n"
        loop = ("tl.range(start, end, BLOCK_N, num_stages=NUM_STAGES)" if p["stages"] > 1
                else "range(start, end, BLOCK_N)")
        load_v = "        v = tl.load(v_ptr + kv_off, mask=mask_kv, other=0.0).to(tl.float32)\n"
        if p["passes"] == "two":
            return f'''\
    m_vec = tl.full([BLOCK_N], float("-inf"), tl.float32)
    # sweep 1: max score (reads K)
    for s0 in {loop}:
{tile}{score}        m_vec = tl.maximum(m_vec, s)
    m = tl.max(m_vec, axis=0)
    l_vec = tl.zeros([BLOCK_N], tl.float32)
    acc = tl.zeros([BLOCK_D], tl.float32)
    # sweep 2: exps, their sum, P.V (reads K, V)
    for s0 in {loop}:
{tile}{score}        e = {ex}(s - m)                                # masked keys: exp(-inf) = 0
        l_vec += e
{load_v}        acc += tl.sum(e[:, None] * v, axis=0)
    l = tl.sum(l_vec, axis=0)
'''
        return f'''\
    m = float("-inf")                                  # running max score
    l = 0.0                                            # running sum of e^(s - m)
    acc = tl.zeros([BLOCK_D], tl.float32)              # running sum of e^(s - m) v
    # one sweep: K and V read once
    for s0 in {loop}:
{tile}{score}        m_new = tl.maximum(m, tl.max(s, axis=0))       # finite: every tile has a real key
        alpha = {ex}(m - m_new)                        # rescales what was summed so far
        e = {ex}(s - m_new)
        l = l * alpha + tl.sum(e, axis=0)
{load_v}        acc = acc * alpha + tl.sum(e[:, None] * v, axis=0)
        m = m_new
'''

    def _attn_kernel(self, p: dict[str, Any]) -> str:
        split = p["split"] == "kv"
        qscale = f"scale * {LOG2E}" if p["exp"] == "exp2" else ""
        q_load = "tl.load(q_ptr + bh * D + offs_d, mask=mask_d, other=0.0).to(tl.float32)"
        q_line = (f"    q = {q_load} * ({qscale})   # scores come out in log2 units\n" if qscale
                  else f"    q = {q_load}\n")
        if split:
            args = "q_ptr, k_ptr, v_ptr, out_ptr, po_ptr, pm_ptr, pl_ptr, S, D, CHUNK, NSPLIT, scale"
            rng = ("    split = tl.program_id(1)\n"
                   "    start = split * CHUNK                              # this program's keys: [start, end)\n"
                   "    end = tl.minimum(start + CHUNK, S)\n")
            store = '''\
    if PARTIAL:                                        # keep the partial triple for the merge
        w = bh * NSPLIT + split
        tl.store(pm_ptr + w, m)
        tl.store(pl_ptr + w, l)
        tl.store(po_ptr + w * D + offs_d, acc, mask=mask_d)
    else:
        tl.store(out_ptr + bh * D + offs_d, acc / l, mask=mask_d)
'''
            partial = ", PARTIAL: tl.constexpr"
        else:
            args = "q_ptr, k_ptr, v_ptr, out_ptr, S, D, scale"
            rng = "    start = 0\n    end = S\n"
            store = "    tl.store(out_ptr + bh * D + offs_d, acc / l, mask=mask_d)\n"
            partial = ""
        stages = ", NUM_STAGES: tl.constexpr" if p["stages"] > 1 else ""
        return f'''\
@triton.jit
def _decode_attn(
    {args},
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr{stages}{partial},
):
    bh = tl.program_id(0).to(tl.int64)                 # one (batch, head)
{rng}    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
{q_line}    kv_base = bh * S * D                               # int64: B*H*S*D may pass 2^31
{self._sweeps(p)}{store}'''

    def _merge_kernel(self, p: dict[str, Any]) -> str:
        ex = "tl.exp2" if p["exp"] == "exp2" else "tl.exp"
        return f'''\
@triton.jit
def _decode_attn_merge(po_ptr, pm_ptr, pl_ptr, out_ptr, D, NSPLIT, BLOCK_D: tl.constexpr, BLOCK_C: tl.constexpr):
    # one (batch, head): rescale each chunk to the common max M,
    # out = sum_c acc_c e^(m_c - M) / sum_c l_c e^(m_c - M)
    bh = tl.program_id(0).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    offs_c = tl.arange(0, BLOCK_C)
    base = bh * NSPLIT
    m_vec = tl.full([BLOCK_C], float("-inf"), tl.float32)
    for c0 in range(0, NSPLIT, BLOCK_C):
        m_vec = tl.maximum(m_vec, tl.load(pm_ptr + base + c0 + offs_c, mask=c0 + offs_c < NSPLIT,
                                          other=float("-inf")))
    mx = tl.max(m_vec, axis=0)
    l_vec = tl.zeros([BLOCK_C], tl.float32)
    acc = tl.zeros([BLOCK_D], tl.float32)
    for c0 in range(0, NSPLIT, BLOCK_C):
        mask_c = c0 + offs_c < NSPLIT
        r = {ex}(tl.load(pm_ptr + base + c0 + offs_c, mask=mask_c, other=float("-inf")) - mx)
        l_vec += r * tl.load(pl_ptr + base + c0 + offs_c, mask=mask_c, other=0.0)
        o = tl.load(po_ptr + (base + c0 + offs_c)[:, None] * D + offs_d[None, :],
                    mask=mask_c[:, None] & mask_d[None, :], other=0.0)
        acc += tl.sum(r[:, None] * o, axis=0)
    tl.store(out_ptr + bh * D + offs_d, acc / tl.sum(l_vec, axis=0), mask=mask_d)
'''

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        split = p["split"] == "kv"
        kernels = [self._attn_kernel(p)] + ([self._merge_kernel(p)] if split else [])
        pipelined = p["stages"] > 1
        launch_kw = ("BLOCK_N=BLOCK_N, BLOCK_D=BLOCK_D, " + ("NUM_STAGES=stages, " if pipelined else "")
                     + "num_warps=WARPS")
        if split:
            launch = f'''\
    # flash-decoding: about SPLIT_TARGET programs in all, chunks of whole BLOCK_N tiles, none empty
    nsplit = max(1, min(triton.cdiv(SPLIT_TARGET, BH), triton.cdiv(S, BLOCK_N)))
    chunk = triton.cdiv(triton.cdiv(S, nsplit), BLOCK_N) * BLOCK_N
    nsplit = triton.cdiv(S, chunk)
    if nsplit == 1:
        _decode_attn[(BH, 1)](q, k_cache, v_cache, out, out, out, out, S, D, S, 1, scale,
                              {launch_kw}, PARTIAL=False)
        return None
    po = torch.empty((BH, nsplit, D), dtype=torch.float32, device=q.device)   # partial accumulators
    pm = torch.empty((BH, nsplit), dtype=torch.float32, device=q.device)      # partial max scores
    pl = torch.empty((BH, nsplit), dtype=torch.float32, device=q.device)      # partial sums of exps
    _decode_attn[(BH, nsplit)](q, k_cache, v_cache, out, po, pm, pl, S, D, chunk, nsplit, scale,
                               {launch_kw}, PARTIAL=True)
    _decode_attn_merge[(BH,)](po, pm, pl, out, D, nsplit, BLOCK_D=BLOCK_D,
                              BLOCK_C=min(triton.next_power_of_2(nsplit), 16), num_warps=WARPS)
'''
        else:
            launch = f"    _decode_attn[(BH,)](q, k_cache, v_cache, out, S, D, scale, {launch_kw})\n"
        consts = f"BLOCK_N = {p['block_n']}\nWARPS = {p['num_warps']}\n"
        stage_setup = ""
        if pipelined:
            consts += (f"STAGES = {p['stages']}\n"
                       "SMEM_BUDGET = 160 * 1024   # shared memory for pipeline buffers (H100/H200: 227 KiB)\n")
            stage_setup = ("    # each stage past the first buffers one K and one V tile in shared memory (cp.async)\n"
                           "    stages = max(1, min(STAGES, 1 + SMEM_BUDGET // (2 * BLOCK_N * BLOCK_D * 4)))\n")
        if split:
            consts += f"SPLIT_TARGET = {p['split_target']}\n"
        return f'''{self.header(p, self.strategy(p))}
import math

import torch
import triton
import triton.language as tl

{consts}

{(chr(10) * 2).join(kernels)}

def kscout_forward(q, k_cache, v_cache, out):
    B, H, S, D = k_cache.shape
    BH = B * H
    if BH == 0 or D == 0:
        return None
    BLOCK_D = triton.next_power_of_2(D)
    scale = 1.0 / math.sqrt(D)
{stage_setup}{launch}    return None
'''
