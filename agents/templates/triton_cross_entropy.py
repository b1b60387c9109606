"""cross_entropy for the triton backend: loss[i] = logsumexp(logits[i, :]) - logits[i, targets[i]],
logits [M, V] fp32, targets int64 [M], loss [M] (reduction="none").

A Python module with @triton.jit kernels and `kscout_forward(logits, targets, out)` (the triton
ABI: harness/backends/triton.py). Per row, a max and a sum of e^(x - max) over a large vocabulary:
memory-bound (the logits are read, the rest is 12 bytes a row). The naive kernel mirrors eager
(log_softmax, then nll_loss): one program per row takes the max, then the sum of exps, then writes
the whole row of log-probabilities to a torch.empty [M, V] scratch, and a second launch gathers
-logprob[i, target[i]]: the logits are read three times and an [M, V] matrix is written and read
back. The space covers:

- passes: two computes only the row statistics (a max sweep, then a sum-of-exp sweep that finds
  the row in L2) and writes the loss directly; online keeps a per-lane running max and a rescaled
  sum (the cross-lane reduction once, at the end): one read of the logits from DRAM;
- split: vocab gives every row S vocabulary slices, a (row, slice) grid of about PROGRAMS
  programs writing per-slice (max, sum) pairs to a scratch buffer, then a merge launch per row
  (3 rows of GPT-2's 50257 entries are 3 programs without it, for 132 SMs);
- exp: exp2 folds log2(e) into the exponent: the two-sweep forms take 2^fma(x, log2 e, -m log2 e)
  (tl.exp is a subtraction, a multiply and ex2), the online form sweeps in base-2 units
  (t = x log2 e once, then ex2 of differences). Rescales between maxima (lanes, slices) stay
  2^((a - b) log2 e): an FMA against a huge running-max start would leave its rounding residual
  (~1e30) in the exponent;
- BLOCK (capped at next_pow2(V)), warps, the program target of the split.

Targets outside [0, V) (ignore_index -100 among them) give loss 0 and are never dereferenced.
Running maxima start at -1.0e38, finite even times log2(e), so a lane that never sees data (or a
masked -inf) contributes exactly 0 and never NaN. The loss is (max - x[target]) + log(sum).
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily

NEG = "-1.0e38"          # running-max start: finite, and NEG * log2(e) stays finite in fp32
LOAD = 'tl.load(row_ptr + c, mask=c < hi, other=float("-inf")).to(tl.float32)'


@register
class TritonCrossEntropyTemplates(TemplateFamily):
    family = "cross_entropy"
    backend = "triton"
    comment = "#"
    naive_description = "naive: like eager, log-probs of every row to an [M, V] scratch (three sweeps), then a gather"
    axes = [
        Axis(name="passes", values=["logprobs", "two", "online"], default="logprobs",
             doc="logprobs: max, sum, write log_softmax to scratch, then gather (like eager); two: max sweep + "
                 "sum-of-exp sweep, loss written directly; online: one sweep, per-lane running max and rescaled sum"),
        Axis(name="split", values=["rows", "vocab"], default="rows",
             doc="rows: one program per row; vocab: a (row, vocabulary slice) grid, per-slice (max, sum) "
                 "partials in scratch, merged per row by a second launch"),
        Axis(name="exp", values=["exp", "exp2"], default="exp",
             doc="tl.exp (a multiply by log2 e, then ex2), or exp2 with the scaling folded: two/logprobs "
                 "2^fma(x, log2 e, -m log2 e), online a sweep in base-2 units (t = x log2 e once per element)"),
        Axis(name="block", values=[1024, 2048, 4096], default=2048, kind="tunable",
             doc="vocabulary entries per step of a sweep (a power of two; capped at next_pow2(V))"),
        Axis(name="num_warps", values=[4, 8, 16], default=4, kind="tunable"),
        Axis(name="programs", values=[256, 512, 1024], default=512, kind="tunable",
             doc="split=vocab: about this many (row, slice) programs (a few per SM)"),
    ]
    moves = [
        Move(name="no-logprobs", description="compute only each row's max and sum of exps and write the loss: "
             "no [M, V] log-prob scratch, one launch, two sweeps (the second from L2)",
             assigns={"passes": "two"}, prior_gain=2.0),
        Move(name="online", description="online logsumexp: per-lane running max and rescaled sum in one sweep, "
             "the logits read once", assigns={"passes": "online"}, prior_gain=1.3),
        Move(name="split-vocab", description="split every row's vocabulary into slices over a (row, slice) grid, "
             "merge the per-slice (max, sum) pairs in a second launch: the GPU stays full when M is small",
             assigns={"split": "vocab"}, prior_gain=1.4),
        Move(name="exp2-fold", description="fold log2(e) into the exponent: exp2 of one FMA (two sweeps) or an "
             "online sweep in base-2 units, one op less per element before the hardware ex2",
             assigns={"exp": "exp2"}, prior_gain=1.05),
    ]

    def strategy(self, p: dict[str, Any]) -> str:
        return "; ".join([
            {"logprobs": "log-prob matrix to scratch, then gather", "two": "max sweep + sum-of-exp sweep",
             "online": "online logsumexp, one sweep"}[p["passes"]],
            f"(row, vocabulary slice) grid over ~{p['programs']} programs + merge" if p["split"] == "vocab"
            else "one program per row",
            ("exp2 in base-2 units" if p["passes"] == "online" else "exp2 of an FMA") if p["exp"] == "exp2"
            else "tl.exp",
            f"BLOCK {p['block']}, {p['num_warps']} warps"])

    def _e(self, p: dict[str, Any], a: str, b: str) -> str:
        """e^(a - b) where a - b <= 0 (a per-lane max against the row's, a partial's max against the merged)."""
        return f"tl.exp2(({a} - {b}) * LOG2E)" if p["exp"] == "exp2" else f"tl.exp({a} - {b})"

    def _stats(self, p: dict[str, Any]) -> str:
        """m = max of row_ptr[lo:hi], s = sum of e^(x - m) over it (4-space indent)."""
        if p["passes"] == "online":
            if p["exp"] == "exp2":   # the sweep in base-2 units: t = x log2(e) once, then ex2 of differences
                return f'''\
    m_acc = tl.full([BLOCK], {NEG}, tl.float32)          # per-lane running max of t = x log2(e)
    s_acc = tl.zeros([BLOCK], tl.float32)                 # per-lane sum of 2^(t - m_acc)
    for c0 in range(lo, hi, BLOCK):                       # one sweep: max and sum together
        c = c0 + cols
        t = {LOAD} * LOG2E
        m_new = tl.maximum(m_acc, t)
        s_acc = s_acc * tl.exp2(m_acc - m_new) + tl.exp2(t - m_new)
        m_acc = m_new
    m2 = tl.max(m_acc, axis=0)                            # lanes to one value, once
    s = tl.sum(s_acc * tl.exp2(m_acc - m2), axis=0)
    m = m2 * LN2                                          # back to natural units
'''
            return f'''\
    m_acc = tl.full([BLOCK], {NEG}, tl.float32)          # per-lane running max
    s_acc = tl.zeros([BLOCK], tl.float32)                 # per-lane sum of e^(x - m_acc)
    for c0 in range(lo, hi, BLOCK):                       # one sweep: max and sum together
        c = c0 + cols
        x = {LOAD}
        m_new = tl.maximum(m_acc, x)
        s_acc = s_acc * tl.exp(m_acc - m_new) + tl.exp(x - m_new)
        m_acc = m_new
    m = tl.max(m_acc, axis=0)                             # lanes to one value, once
    s = tl.sum(s_acc * tl.exp(m_acc - m), axis=0)
'''
        fold = p["exp"] == "exp2"
        # exp2: 2^(x log2 e - m log2 e), the product and the difference one FMA (m log2 e hoisted)
        term = "tl.exp2(tl.fma(x, LOG2E, -mL))" if fold else "tl.exp(x - m)"
        return f'''\
    m_acc = tl.full([BLOCK], {NEG}, tl.float32)
    for c0 in range(lo, hi, BLOCK):                       # sweep 1: max
        c = c0 + cols
        m_acc = tl.maximum(m_acc, {LOAD})
    m = tl.max(m_acc, axis=0)
{"    mL = m * LOG2E" + chr(10) if fold else ""}    s_acc = tl.zeros([BLOCK], tl.float32)
    for c0 in range(lo, hi, BLOCK):                       # sweep 2: sum of exps (the row again, from L2)
        c = c0 + cols
        x = {LOAD}
        s_acc += {term}
    s = tl.sum(s_acc, axis=0)
'''

    def _merge(self, p: dict[str, Any]) -> str:
        """m, s of the row from its S per-slice partials."""
        return f'''\
    k = tl.arange(0, BLOCK_S)
    pm = tl.load(pm_ptr + row * S + k, mask=k < S, other={NEG})
    ps = tl.load(ps_ptr + row * S + k, mask=k < S, other=0.0)
    m = tl.max(pm, axis=0)
    s = tl.sum(ps * {self._e(p, "pm", "m")}, axis=0)
'''

    LOSS = '''\
    t = tl.load(t_ptr + row)
    valid = (t >= 0) & (t < V)                            # ignore_index (-100) and strays: loss 0
    x_t = tl.load(x_ptr + row * V + t, mask=valid, other=0.0).to(tl.float32)
    tl.store(out_ptr + row, tl.where(valid, (m - x_t) + tl.log(s), 0.0))
'''

    WRITE_LP = '''\
    lse = tl.log(s)
    for c0 in range(lo, hi, BLOCK):                       # sweep 3: log-probabilities to the scratch
        c = c0 + cols
        x = tl.load(row_ptr + c, mask=c < hi, other=0.0).to(tl.float32)
        tl.store(lp_ptr + row * V + c, (x - m) - lse, mask=c < hi)
'''

    GATHER = '''\
@triton.jit
def _ce_gather(lp_ptr, t_ptr, out_ptr, M, V, BLOCK_R: tl.constexpr):
    # loss[i] = -logprob[i, target[i]] (nll_loss)
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    t = tl.load(t_ptr + rows, mask=rows < M, other=0)
    valid = (rows < M) & (t >= 0) & (t < V)
    v = tl.load(lp_ptr + rows.to(tl.int64) * V + t, mask=valid, other=0.0)
    tl.store(out_ptr + rows, tl.where(valid, -v, 0.0), mask=rows < M)
'''

    def _kernels(self, p: dict[str, Any]) -> tuple[list[str], str]:
        stats, lp = self._stats(p), p["passes"] == "logprobs"
        row = "    row = tl.program_id(0).to(tl.int64)\n"
        cols = "    cols = tl.arange(0, BLOCK)\n"
        if p["split"] == "rows":
            args = "x_ptr, lp_ptr, V" if lp else "x_ptr, t_ptr, out_ptr, V"
            name = "_ce_logprobs" if lp else "_ce_loss"
            k = (f"@triton.jit\ndef {name}({args}, BLOCK: tl.constexpr):\n{row}"
                 f"    row_ptr = x_ptr + row * V\n    lo = 0\n    hi = V\n{cols}{stats}"
                 + (self.WRITE_LP if lp else self.LOSS))
            if lp:
                launch = ('    lp = torch.empty((M, V), dtype=torch.float32, device=logits.device)\n'
                          '    _ce_logprobs[(M,)](logits, lp, V, BLOCK=BV, num_warps=WARPS)\n'
                          '    _ce_gather[(triton.cdiv(M, 256),)](lp, targets, out, M, V, BLOCK_R=256)\n')
                return [k, self.GATHER], launch
            return [k], "    _ce_loss[(M,)](logits, targets, out, V, BLOCK=BV, num_warps=WARPS)\n"
        partial = (f"@triton.jit\ndef _ce_partial(x_ptr, pm_ptr, ps_ptr, V, S, SLICE, BLOCK: tl.constexpr):\n"
                   f"    # (max, sum of e^(x - max)) of one vocabulary slice of one row\n{row}"
                   "    sl = tl.program_id(1)\n    row_ptr = x_ptr + row * V\n"
                   f"    lo = sl * SLICE\n    hi = tl.minimum(V, lo + SLICE)\n{cols}{stats}"
                   "    tl.store(pm_ptr + row * S + sl, m)\n    tl.store(ps_ptr + row * S + sl, s)\n")
        launch = '''\
    # vocabulary slices: whole blocks, about PROGRAMS (row, slice) programs in all
    nblk = triton.cdiv(V, BV)
    SLICE = triton.cdiv(nblk, max(1, min(nblk, triton.cdiv(PROGRAMS, M)))) * BV
    S = triton.cdiv(V, SLICE)
    part = torch.empty((2, M, S), dtype=torch.float32, device=logits.device)
    _ce_partial[(M, S)](logits, part[0], part[1], V, S, SLICE, BLOCK=BV, num_warps=WARPS)
'''
        if lp:
            merge = (f"@triton.jit\ndef _ce_logprobs(x_ptr, pm_ptr, ps_ptr, lp_ptr, V, S, SLICE, BLOCK: tl.constexpr, "
                     f"BLOCK_S: tl.constexpr):\n    # merge the row's partials, write this slice's log-probabilities\n"
                     f"{row}    sl = tl.program_id(1)\n    row_ptr = x_ptr + row * V\n"
                     f"    lo = sl * SLICE\n    hi = tl.minimum(V, lo + SLICE)\n{cols}{self._merge(p)}{self.WRITE_LP}")
            launch += ('    lp = torch.empty((M, V), dtype=torch.float32, device=logits.device)\n'
                       '    _ce_logprobs[(M, S)](logits, part[0], part[1], lp, V, S, SLICE, BLOCK=BV, '
                       'BLOCK_S=triton.next_power_of_2(S), num_warps=WARPS)\n'
                       '    _ce_gather[(triton.cdiv(M, 256),)](lp, targets, out, M, V, BLOCK_R=256)\n')
            return [partial, merge, self.GATHER], launch
        merge = (f"@triton.jit\ndef _ce_merge(x_ptr, pm_ptr, ps_ptr, t_ptr, out_ptr, V, S, BLOCK_S: tl.constexpr):\n"
                 f"    # the row's (max, sum) from its slices, then the loss\n{row}{self._merge(p)}{self.LOSS}")
        launch += ('    _ce_merge[(M,)](logits, part[0], part[1], targets, out, V, S, '
                   'BLOCK_S=triton.next_power_of_2(S))\n')
        return [partial, merge], launch

    def render(self, params: dict[str, Any]) -> str:
        p = self.validate_params(params)
        kernels, launch = self._kernels(p)
        consts = f"BLOCK = {p['block']}\nWARPS = {p['num_warps']}\n"
        if p["split"] == "vocab":
            consts += f"PROGRAMS = {p['programs']}\n"
        if p["exp"] == "exp2":
            consts += "LOG2E = tl.constexpr(1.4426950408889634)\nLN2 = tl.constexpr(0.6931471805599453)\n"
        return f'''{self.header(p, self.strategy(p))}
import torch
import triton
import triton.language as tl

{consts}

{(chr(10) * 2).join(kernels)}

def kscout_forward(logits, targets, out):
    M, V = logits.shape
    if M == 0:
        return None
    BV = min(BLOCK, triton.next_power_of_2(V))            # no lanes wasted on a short row
{launch}    return None
'''
