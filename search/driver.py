"""The planner loop: keep the hardware workers busy, record every attempt, feed the planner.

The driver is the only writer to the experiment log. Each finished attempt is written to the log
(and its packet to disk) before the planner sees it, so the planner's tree updates, which read
the log, always see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import ray
from ray.exceptions import RayActorError, RayTaskError

from harness.attempt import EAGER
from harness.evidence import Candidate, EvidencePacket, FailureClass
from search.budget import Budget
from search.strategy import Outcome, Proposal, SearchStrategy


class AttemptEvent:
    """Passed to the progress callback after each recorded attempt."""

    def __init__(self, seq: int, packet: EvidencePacket, proposal: Proposal, improved: bool):
        self.seq, self.packet, self.proposal, self.improved = seq, packet, proposal, improved


class SearchLoop:
    def __init__(self, *, planner: SearchStrategy, proposer, workers: list, store, run_id: str,
                 packets_dir: Path, budget: Budget, queue_depth: int,
                 on_attempt: Callable[[AttemptEvent], None] = lambda e: None):
        self.planner, self.proposer, self.workers = planner, proposer, workers
        self.store, self.run_id, self.packets_dir = store, run_id, packets_dir
        self.budget, self.depth = budget, queue_depth * len(workers)
        self.on_attempt = on_attempt
        self.submitted = 0
        self.best: float | None = None
        self.stop_reason = ""
        self._in_flight: dict[ray.ObjectRef, tuple[Proposal, int, ray.ObjectRef]] = {}
        self._load = [0] * len(workers)

    def replay_command(self, packet_id: str) -> str:
        return f"kscout replay {self.packets_dir / (packet_id + '.json')}"

    def run_first(self, proposal: Proposal, naive: bool = True) -> EvidencePacket:
        """Run one attempt synchronously (the naive root, which also sets the naive baseline)."""
        cand = ray.get(self.proposer.propose.remote(proposal))
        worker = self.workers[0]
        ref = (worker.evaluate_naive if naive else worker.evaluate).remote(cand)
        self.submitted += 1
        packet = self._get(ref, cand)
        self._finish(proposal, packet)
        return packet

    def run(self) -> str:
        try:
            while True:
                self._fill()
                if not self._in_flight:
                    if not self.stop_reason:
                        self.stop_reason = "search space exhausted"
                    return self.stop_reason
                ready, _ = ray.wait(list(self._in_flight), num_returns=1)
                for ref in ready:
                    proposal, w, cand_ref = self._in_flight.pop(ref)
                    self._load[w] -= 1
                    packet = self._get(ref, cand_ref)
                    self._finish(proposal, packet)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted (Ctrl-C)"
            for ref in self._in_flight:
                ray.cancel(ref, force=True)
            raise

    def _fill(self) -> None:
        while len(self._in_flight) < self.depth:
            reason = self.budget.stop_reason(self.submitted)
            if reason:
                self.stop_reason = reason
                return
            proposal = self.planner.select()
            if proposal is None:
                return
            w = min(range(len(self.workers)), key=lambda i: self._load[i])
            cand_ref = self.proposer.propose.remote(proposal)
            ref = self.workers[w].evaluate.remote(cand_ref)
            self._in_flight[ref] = (proposal, w, cand_ref)
            self._load[w] += 1
            self.submitted += 1

    def _get(self, ref, cand) -> EvidencePacket:
        """The packet, or a harness_error packet if the worker or proposer died: never lost."""
        try:
            return ray.get(ref)
        except (RayActorError, RayTaskError) as e:
            try:
                candidate = cand if isinstance(cand, Candidate) else ray.get(cand)
            except (RayActorError, RayTaskError):
                candidate = Candidate(source="", workload="?", strategy="(proposer failed)")
            packet = EvidencePacket(candidate=candidate)
            return packet.reject(FailureClass.harness_error, f"worker failed: {type(e).__name__}: {str(e)[:2000]}")

    def _finish(self, proposal: Proposal, packet: EvidencePacket) -> None:
        packet.run_id = self.run_id
        packet.replay_command = self.replay_command(packet.id)
        seq = self.store.next_seq(self.run_id)
        self.store.record_attempt(self.run_id, seq, packet)
        self.packets_dir.mkdir(parents=True, exist_ok=True)
        (self.packets_dir / f"{packet.id}.json").write_text(packet.model_dump_json(indent=2))
        speedup = packet.speedup(EAGER) if packet.verdict.value == "accepted" else None
        improved = speedup is not None and (self.best is None or speedup > self.best)
        if improved:
            self.best = speedup
        self.planner.record(proposal, Outcome(attempt_id=packet.id, node_id=proposal.node_id,
                                              params=proposal.params, verdict=packet.verdict,
                                              failure_class=packet.failure_class, speedup=speedup))
        self.on_attempt(AttemptEvent(seq, packet, proposal, improved))
