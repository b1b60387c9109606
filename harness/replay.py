"""Replay: re-verify and re-time a recorded attempt from its evidence packet alone.

Agreement rule (written down so it can be argued with): the replayed median must fall inside
the recorded interquartile range widened by max(10% of the recorded median, the replay's own
IQR) on each side. This machine is shared and noisy; a tighter band would flag noise.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from harness import workload as workloads
from harness.attempt import COMPILED, Evaluator
from harness.config import HarnessConfig
from harness.evidence import EvidencePacket, Verdict


class ReplayResult(BaseModel):
    original: EvidencePacket
    replayed: EvidencePacket
    fingerprint_matches: bool
    verified: bool
    timing_within_spread: bool | None
    band_s: tuple[float, float] | None = None

    @property
    def reproduced(self) -> bool:
        return self.verified and self.fingerprint_matches and self.timing_within_spread is not False


def load_packet(path: Path) -> EvidencePacket:
    try:
        return EvidencePacket.model_validate_json(Path(path).read_text())
    except FileNotFoundError as e:
        raise ValueError(f"{path}: no such packet file") from e
    except ValueError as e:
        raise ValueError(f"{path}: not an evidence packet ({str(e).splitlines()[0]})") from e


def replay(packet: EvidencePacket, cfg: HarnessConfig | None = None, workload_path: str | None = None) -> ReplayResult:
    cfg = cfg or HarnessConfig()
    wl = workloads.load(workload_path or packet.workload_path or packet.candidate.workload)
    from harness import backends
    device = backends.get(packet.candidate.backend).device(cfg) if packet.candidate.backend in backends.names() else "cpu"
    ev = Evaluator(wl, packet.candidate.dtype, cfg, device=device)
    ev.measure_roofline()
    ev.measure_eager()
    recorded = packet.bench.baselines if packet.bench else {}
    if COMPILED in recorded:
        ev.measure_compiled()
    for name, t in recorded.items():
        if name not in ev.baselines and name not in ev.baseline_errors:
            ev.add_baseline(name, t)   # baselines we cannot re-measure without their source (naive C++)
    try:
        new = ev.evaluate(packet.candidate, packet.replay_command)
    finally:
        ev.close()
    within = band = None
    if packet.bench and new.bench:
        old, cur = packet.bench.candidate, new.bench.candidate
        slack = max(0.10 * old.median_s, cur.q3_s - cur.q1_s)
        band = (old.q1_s - slack, old.q3_s + slack)
        within = band[0] <= cur.median_s <= band[1]
    return ReplayResult(original=packet, replayed=new, fingerprint_matches=(
        not packet.workload_fingerprint or packet.workload_fingerprint == wl.fingerprint()),
        verified=new.verdict == Verdict.accepted or packet.verdict == Verdict.rejected and
        new.failure_class == packet.failure_class, timing_within_spread=within, band_s=band)
