"""What a model-backed proposer reads about a strategy node, taken from the experiment log.

Used by the driver when an attempt is sent (kscout/run.py) and by skill optimization when it
rebuilds the inputs a proposer saw for a logged attempt (agents/optimize.py), so both prompts
carry the same digest.
"""

from __future__ import annotations

from harness.evidence import EvidencePacket
from search.node import StrategyNode
from search.strategy import ProposalContext

HISTORY = 8   # the latest attempts at a node: a prompt, not an archive


def proposal_context(store, run_id: str, node: StrategyNode, parent: StrategyNode | None,
                     before_seq: int | None = None) -> ProposalContext:
    """The parent strategy's best kernel, one line per recent attempt at `node` (those before
    `before_seq`, if given), and, when the latest of them was a rejected kernel, its source and
    what the harness said about it (for a diagnosis first)."""
    ctx = ProposalContext()
    if parent is not None and parent.best_attempt_id:
        ctx.parent_attempt_id = parent.best_attempt_id
        best = store.packet(parent.best_attempt_id)
        ctx.parent_source = best.candidate.source
        ctx.parent_measured = measured_text(best)
    attempts = [a for a in store.attempts(run_id, node.id) if before_seq is None or a.seq < before_seq][-HISTORY:]
    ctx.history = [a.history_line() for a in attempts]
    if attempts and attempts[-1].verdict != "accepted":
        failed = store.packet(attempts[-1].id)
        if failed.candidate.source:   # a kernel the harness rejected (not an answer without code)
            ctx.failed_source = failed.candidate.source
            ctx.failed_verdict = verdict_text(failed)
    return ctx


def measured_text(packet: EvidencePacket) -> str:
    """What the harness measured of an accepted kernel, in one line: where it stands against the
    baselines and the roofline, and its Nsight Compute digest when it was profiled."""
    b = packet.bench
    if b is None:
        return ""
    parts = [f"the parent kernel (attempt {packet.id}) on the bench shape {b.shape}: {b.candidate.median_s * 1e3:.4g} ms"]
    parts += [f"{v:.2f}x over {k}" for k, v in sorted(b.speedup.items())]
    r = b.roofline
    if r is not None:
        parts.append(f"{r.achieved_gbps:.4g} GB/s and {r.achieved_gflops:.4g} GFLOP/s achieved"
                     + (f", {r.sol:.2f} of the roofline bound" if r.sol is not None else ""))
    line = "; ".join(parts)
    if packet.profile is not None:
        line += ". " + packet.profile.digest()
    return line


def verdict_text(packet: EvidencePacket) -> str:
    """What the harness said about a rejected kernel, for a diagnosis."""
    lines = [f"rejected as {packet.failure_class.value if packet.failure_class else 'rejected'}: "
             f"{packet.failure_message[:1500]}"]
    if packet.compile is not None and not packet.compile.ok:
        lines.append("compiler output (tail):\n" + packet.compile.log[-2000:])
    if packet.verify is not None:
        bad = [c for c in packet.verify.cases if not c.passed][:4]
        lines += [f"failing case {c.shape} {c.dims} seed {c.seed} {c.distribution}: {c.message[:300]}" for c in bad]
    return "\n".join(lines)
