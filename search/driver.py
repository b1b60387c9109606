"""The planner loop: keep the hardware workers busy, record every attempt, feed the planner.

The driver is the only writer to the experiment log. Each finished attempt is written to the log
(and its packet to disk) before the planner sees it, so the planner's tree updates, which read
the log, always see it. Before an attempt goes to a worker it is noted as a dispatch; recording
the attempt clears that note in the same transaction. After any crash the notes left are the
attempts to run again (`requeue`), each exactly once; recorded attempts are never repeated.

A hardware worker that dies mid-attempt (its process, or its whole node) does not lose the
attempt: the same candidate goes to a live worker on another node, up to `max_retries` more
times, under the same dispatch note, and is recorded once, as `hardware_fault` if every try died.
The pool (search/pool.py) takes dead workers out and quarantines a node that keeps losing them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

from harness.attempt import EAGER
from harness.evidence import Candidate, EvidencePacket, FailureClass
from search.budget import Budget
from search.executor import Executor, RayExecutor
from search.node import StrategyNode
from search.pool import WorkerPool
from search.stats import LoopStats, WorkerClock, frontier_rows
from search.strategy import Outcome, Proposal, SearchStrategy


class AttemptEvent:
    """Passed to the progress callback after each recorded attempt. `stats` is the loop's
    snapshot right after it (rate, worker utilisation, the tree's frontier) for live displays.
    `lane` names the hardware target when one search covers several ("" when it covers one)."""

    def __init__(self, seq: int, packet: EvidencePacket, proposal: Proposal, improved: bool,
                 stats: LoopStats | None = None, lane: str = ""):
        self.seq, self.packet, self.proposal, self.improved = seq, packet, proposal, improved
        self.stats, self.lane = stats, lane


class NodeBuffer:
    """Tree nodes the planner changed, written to the log in batches: with the dispatch notes
    that may name them (same transaction), and after each batch of recorded attempts. One
    transaction per node update was most of the driver's time with hundreds of workers."""

    def __init__(self, store, run_id: str):
        self.store, self.run_id = store, run_id
        self._dirty: dict[str, StrategyNode] = {}

    def note(self, node: StrategyNode) -> None:
        self._dirty[node.id] = node

    def take(self) -> list[StrategyNode]:
        nodes, self._dirty = list(self._dirty.values()), {}
        return nodes

    def flush(self) -> None:
        self.store.upsert_nodes(self.run_id, self.take())


class SearchLoop:
    def __init__(self, *, planner: SearchStrategy, proposer, workers: list | WorkerPool, store, run_id: str,
                 packets_dir: Path, budget: Budget, queue_depth: int,
                 on_attempt: Callable[[AttemptEvent], None] = lambda e: None,
                 context: Callable[[Proposal], Proposal] | None = None, proposing_depth: int = 0,
                 nodes: NodeBuffer | None = None, max_retries: int = 2,
                 on_status: Callable[[str], None] = lambda s: None,
                 propose_locally: Callable[[Proposal], Candidate] | None = None, lane: str = "",
                 executor: Executor | None = None):
        self.planner, self.proposer = planner, proposer
        self.ex = executor or RayExecutor()   # where the actors run: Ray, or this process's threads
        self.lane = lane   # the hardware target, when a search runs one loop per target (run_loops)
        # A proposer cheap enough to run in the driver (the offline templates render in ~0.06 ms):
        # the candidate goes to the worker by value, one Ray task per attempt instead of two.
        self.propose_locally = propose_locally
        self.pool = workers if isinstance(workers, WorkerPool) else WorkerPool(workers)
        self.max_retries = max_retries   # further workers an attempt is sent to after its worker died
        self.on_status = on_status
        self.store, self.run_id, self.packets_dir = store, run_id, packets_dir
        # In flight = queued on the hardware + being written by models (their calls take seconds to
        # minutes, so the hardware would starve if only queue_depth attempts could wait on them).
        self.budget, self.depth = budget, queue_depth * len(self.pool) + proposing_depth
        self.context = context     # adds what a model-backed proposer reads from the log
        self.nodes = nodes         # the planner's changed nodes (on_update=nodes.note), if it buffers
        self.on_attempt = on_attempt
        self.submitted = 0
        self.best: float | None = None
        self.stop_reason = ""
        self._in_flight: dict[object, tuple[Proposal, int, object, str, int]] = {}   # ref -> what it is
        self._clock = WorkerClock(len(self.pool))   # busy time per worker, for the live view
        self._finished = 0
        self._requeued: list[tuple[str, Proposal]] = []
        self._seq: int | None = None      # the next attempt's seq (from the log at the first record)

    def replay_command(self, packet_id: str) -> str:
        return f"kscout replay {self.packets_dir / (packet_id + '.json')}"

    @property
    def workers(self) -> list:
        return self.pool.workers

    def run_first(self, proposal: Proposal, naive: bool = True, dispatch_id: str | None = None
                  ) -> tuple[EvidencePacket, int | None]:
        """Run one attempt synchronously (the naive root, which also sets the naive baseline on
        the worker that ran it); returns its packet and that worker (None: no worker survived)."""
        dispatch_id = dispatch_id or self._dispatch(proposal)
        cand = self.ex.get((self.proposer.propose_naive if naive else self.proposer.propose).remote(self._with_context(proposal)))
        self.submitted += 1
        self._clock.start()
        tries, avoid = 0, None
        while True:
            w = self.pool.pick(avoid_node=avoid)
            if w is None:
                packet = self._hardware_fault(EvidencePacket(candidate=cand), tries, "no live hardware worker left")
                break
            tries += 1
            worker = self.pool.workers[w]
            packet, lost = self._get((worker.evaluate_naive if naive else worker.evaluate).remote(cand), cand)
            if lost is None:
                packet.placement = self.pool.placements[w].model_copy(update={"tries": tries})
                self._clock.add(w, packet.cost.wall_s)
                break
            avoid = self._lose(w, lost)
            if tries > self.max_retries:
                packet, w = self._hardware_fault(packet, tries, lost), None
                break
        self._finish([(proposal, packet, dispatch_id)])
        return packet, w

    def requeue(self, pending: list[tuple[str, Proposal]]) -> None:
        """Attempts dispatched before a crash and never recorded: they go out first, under their
        original dispatch ids, so recording them clears the old notes."""
        self._requeued.extend(pending)

    def _dispatch(self, proposal: Proposal) -> str:
        return self._dispatch_all([proposal])[0]

    def _dispatch_all(self, proposals: list[Proposal]) -> list[str]:
        """Dispatch notes for several attempts (and the nodes changed since the last write), one
        transaction, before any of them is sent."""
        ids = [uuid.uuid4().hex[:16] for _ in proposals]
        self.store.dispatch_many(self.run_id, [(d, p.node_id, p.model_dump(mode="json")) for d, p in zip(ids, proposals)],
                                 nodes=self.nodes.take() if self.nodes else [])
        return ids

    def run(self) -> str:
        run_loops([self])
        return self.stop_reason

    def _collect(self, ready: list) -> None:
        """Record this loop's finished attempts (refs from its `_in_flight`), in one transaction;
        an attempt whose worker died goes to another worker instead, under the same dispatch note."""
        batch = []
        try:   # one round trip for the whole batch (one ray.get per attempt was ~2 ms each)
            fetched = {ref: (packet, None) for ref, packet in zip(ready, self.ex.get(ready))}
        except self.ex.errors:   # some attempt failed: fetch one by one to tell which, and why
            fetched = {ref: self._get(ref, self._in_flight[ref][2]) for ref in ready}
        for ref in ready:
            proposal, w, cand_ref, dispatch_id, tries = self._in_flight.pop(ref)
            self.pool.load[w] -= 1
            packet, lost = fetched[ref]
            if lost is not None:
                avoid = self._lose(w, lost)
                retry_on = self.pool.pick(avoid_node=avoid) if tries <= self.max_retries else None
                if retry_on is not None:   # same candidate, same dispatch note: counted once
                    self._send(proposal, dispatch_id, cand_ref, retry_on, tries + 1)
                    continue
                packet = self._hardware_fault(packet, tries, lost)
            else:
                packet.placement = self.pool.placements[w].model_copy(update={"tries": tries})
                self._clock.add(w, packet.cost.wall_s)
            batch.append((proposal, packet, dispatch_id))
        if batch:
            self._finish(batch)

    def _interrupt(self) -> None:
        """Ctrl-C: queued attempts are cancelled; running ones are abandoned (Ray cannot
        force-cancel an actor task; the workers go down with the driver, and a candidate's own
        process is bounded by its CPU-time limit). Their dispatch notes stay, so `kscout resume`
        runs them."""
        self.stop_reason = "interrupted (Ctrl-C)"
        for ref in self._in_flight:
            try:
                self.ex.cancel(ref)
            except Exception:   # already finished, or the actor is gone
                pass

    def _fill(self) -> None:
        if not self.pool.live():   # every worker lost: what is in flight still comes back (as faults)
            if not self.stop_reason:
                q = self.pool.summary()["quarantined_nodes"]
                self.stop_reason = (f"no hardware worker left ({len(self.pool)} lost"
                                    + ("; quarantined: " + "; ".join(f"node {n}: {why}" for n, why in q.items())
                                       if q else "") + ")")
            return
        free = self.depth - len(self._in_flight)
        sends: list[tuple[str, Proposal]] = []
        while self._requeued and len(sends) < free:   # in flight when the last session stopped: first
            sends.append(self._requeued.pop(0))
        fresh: list[Proposal] = []
        while len(sends) + len(fresh) < free:
            reason = self.budget.stop_reason(self.submitted + len(sends) + len(fresh))
            if reason:
                self.stop_reason = reason
                break
            proposal = self.planner.select()
            if proposal is None:
                break
            fresh.append(proposal)
        if fresh:   # noted in the log before any is sent: a crash after this re-runs them, once
            sends += list(zip(self._dispatch_all(fresh), fresh))
        for dispatch_id, proposal in sends:
            if self.propose_locally is not None:
                cand_ref = self._propose_here(proposal)
            else:
                cand_ref = self.proposer.propose.remote(self._with_context(proposal))
            self._send(proposal, dispatch_id, cand_ref, self.pool.pick(), 1)
            self._clock.start()
            self.submitted += 1

    def _propose_here(self, proposal: Proposal) -> Candidate:
        try:
            return self.propose_locally(proposal)
        except Exception as e:   # as a proposer actor's exception would be: our fault, recorded, never a crash
            return Candidate(source="", workload="?", strategy=proposal.strategy, params=proposal.params,
                             node_id=proposal.node_id, proposal_failure=FailureClass.harness_error,
                             proposal_error=f"the offline proposer failed: {type(e).__name__}: {e}"[:2000])

    def _send(self, proposal: Proposal, dispatch_id: str, cand_ref, w: int, tries: int) -> None:
        ref = self.pool.workers[w].evaluate.remote(cand_ref)
        self._in_flight[ref] = (proposal, w, cand_ref, dispatch_id, tries)
        self.pool.load[w] += 1

    def _with_context(self, proposal: Proposal) -> Proposal:
        return self.context(proposal) if self.context is not None else proposal

    def _get(self, ref, cand) -> tuple[EvidencePacket, str | None]:
        """(packet, None); or, when the hardware worker itself died (its process or its node),
        (a packet holding only the candidate, why): the caller retries it elsewhere. A harness
        exception, or a proposer that failed, is a harness_error packet: retrying would not help."""
        try:
            return self.ex.get(ref), None
        except self.ex.errors as e:
            try:
                candidate = cand if isinstance(cand, Candidate) else self.ex.get(cand)
            except self.ex.errors:
                candidate = None
            packet = EvidencePacket(candidate=candidate or Candidate(source="", workload="?", strategy="(proposer failed)"))
            error = f"{type(e).__name__}: {str(e)[:2000]}"
            if not self.ex.worker_lost(e) or candidate is None:
                return packet.reject(FailureClass.harness_error, f"worker failed: {error}"), None
            return packet, error

    def _lose(self, w: int, error: str) -> str:
        """Take a dead worker out (the pool may quarantine its node); returns its node."""
        node = self.pool.placements[w].node_id
        first = (error.strip().splitlines() or ["?"])[0][:200]
        self.on_status(f"hardware worker {w} on node {self.pool.describe(node)} died mid-attempt: {first}")
        quarantined = self.pool.lost(w, error)
        if quarantined:
            self.on_status(quarantined)
        self.store.note_summary(self.run_id, cluster=self.pool.summary())   # `kscout status` names it now
        return node

    @staticmethod
    def _hardware_fault(packet: EvidencePacket, tries: int, error: str) -> EvidencePacket:
        if tries == 0:
            return packet.reject(FailureClass.hardware_fault, f"never ran: {error}")
        return packet.reject(FailureClass.hardware_fault, f"the hardware worker died on each of {tries} tr"
                             f"{'y' if tries == 1 else 'ies'}; last: {error[:1500]}")

    def _finish(self, batch: list[tuple[Proposal, EvidencePacket, str]]) -> None:
        """Record finished attempts: packet files first (named by packet id, so a crash before the
        commit leaves orphan files, never a recorded attempt without its file), then all of them
        in one transaction, then the planner and the callback, in order."""
        if self._seq is None:   # the driver is the log's only writer: seq is counted here, not queried
            self._seq = self.store.next_seq(self.run_id)
        rows = []
        for proposal, packet, dispatch_id in batch:
            packet.run_id = self.run_id
            packet.replay_command = self.replay_command(packet.id)
            if packet.candidate.node_id is None:
                packet.candidate.node_id = proposal.node_id
            calls = packet.candidate.llm_calls
            if calls:   # what writing this kernel cost, on its packet (the calls themselves go to the log too)
                packet.cost.llm_tokens_in = sum(c.tokens_in for c in calls)
                packet.cost.llm_tokens_out = sum(c.tokens_out for c in calls)
                packet.cost.llm_dollars = sum(c.dollars for c in calls)
            self.packets_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.packets_dir / f".{packet.id}.json.tmp"
            tmp.write_text(packet.model_dump_json(indent=2))
            tmp.replace(self.packets_dir / f"{packet.id}.json")
            rows.append((self._seq + len(rows), packet, dispatch_id))
        self.store.record_attempts(self.run_id, rows, elapsed_s=self.budget.elapsed())
        self._seq += len(rows)
        for (proposal, packet, _), (seq, _, _) in zip(batch, rows):
            self.budget.charge(packet.cost.device_s + packet.cost.compile_s, packet.cost.llm_dollars,
                               packet.cost.llm_tokens_in + packet.cost.llm_tokens_out)
            speedup = packet.speedup(EAGER) if packet.verdict.value == "accepted" else None
            improved = speedup is not None and (self.best is None or speedup > self.best)
            if improved:
                self.best = speedup
            self.planner.record(proposal, Outcome(attempt_id=packet.id, node_id=proposal.node_id,
                                                  params=proposal.params, verdict=packet.verdict,
                                                  failure_class=packet.failure_class, speedup=speedup))
            self._finished += 1
            self.on_attempt(AttemptEvent(seq, packet, proposal, improved, stats=self.stats(), lane=self.lane))
        if self.nodes:
            self.nodes.flush()

    def stats(self) -> LoopStats:
        """A snapshot for live displays: microseconds (one sort of the frontier), no I/O."""
        elapsed, busy = self._clock.snapshot()
        tree = getattr(self.planner, "tree", None)   # strategies without a tree show no frontier
        frontier, size = frontier_rows(tree)
        return LoopStats(elapsed_s=elapsed, finished=self._finished, in_flight=len(self._in_flight),
                         worker_busy=busy, frontier=frontier, frontier_size=size,
                         tree_nodes=len(tree) if tree is not None else 0)


def run_loops(loops: list[SearchLoop]) -> None:
    """Drive one or more loops from this thread until each is done. A search over several
    hardware targets runs one loop per target (its own planner, workers, run and budget): one
    `wait` over all their attempts keeps every target's workers busy, and each loop records
    its own results. Returns when nothing is in flight anywhere and no loop can send more."""
    active = list(loops)
    ex = loops[0].ex   # one search runs on one executor
    try:
        while True:
            owner: dict[object, SearchLoop] = {}
            for loop in list(active):
                loop._fill()
                if not loop._in_flight:   # nothing running and nothing more to send: this one is done
                    loop.stop_reason = loop.stop_reason or "search space exhausted"
                    active.remove(loop)   # (an exhausted planner is not asked again each round)
                    continue
                owner.update(dict.fromkeys(loop._in_flight, loop))
            if not owner:
                return
            refs = list(owner)
            # Everything finished by now, at least one: each loop records its share together in one
            # transaction (with hundreds of workers, one commit per attempt is what limits the loop).
            ready, _ = ex.wait(refs, num_returns=len(refs), timeout=0)
            if not ready:
                ready, _ = ex.wait(refs, num_returns=1, timeout=None)
            for loop in active:
                mine = [ref for ref in ready if owner[ref] is loop]
                if mine:
                    loop._collect(mine)
    except KeyboardInterrupt:
        for loop in loops:
            loop._interrupt()
        raise
    finally:   # tree changes not yet written (an update with nothing left to dispatch, Ctrl-C)
        for loop in loops:
            if loop.nodes:
                loop.nodes.flush()
