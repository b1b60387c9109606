"""What a search's actors do, without Ray: the proposer and the hardware worker.

search/workers.py makes them Ray actors; search/executor.py's local executor runs them on threads
of the driver's process. A hardware worker owns one bench slot, so two benchmarks never share
cores (or a GPU). It runs each candidate in a killable child process (the harness's sandbox), so a
crashing kernel takes down neither the worker nor the next candidate.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# The Ray resource a hardware worker asks for: each machine offers one per bench slot.
BENCH_SLOT = "kscout_bench_slot"


def placement(target: str = ""):
    """Where the calling actor runs: its Ray node (or "local" off Ray) and host, for the pool and
    the packets."""
    import socket

    from harness.evidence import Placement
    ray = sys.modules.get("ray")   # never imported here: the local executor runs without Ray
    node = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else "local"
    return Placement(node_id=node, host=socket.gethostname(), target=target)


class Proposer:
    """Proposals from the offline templates, or from models (`agents`: an AgentsConfig with
    proposer = "llm"). A model-backed actor is started with max_concurrency = the agents'
    concurrency, so that many model calls are in flight at once on its threads. The naive root is
    the offline template when the family has templates: it is the naive C++ baseline, not a
    model's kernel. A family without templates (generic) gets its root from the model too."""

    def __init__(self, workload: str, family: str, backend: str, dtype: str, workload_path: str = "",
                 agents=None):
        from agents import templates
        from agents.offline import OfflineProposer
        # A family without templates (generic) has no offline naive kernel: the model writes the root too.
        self.offline = OfflineProposer(workload, family, backend, dtype) if templates.get(family, backend).renders else None
        self.proposer = self.offline
        if agents is not None and agents.proposer == "llm":
            from agents.llm import LLMProposer
            self.proposer = LLMProposer(workload_path, backend, dtype, agents.models, agents.call,
                                        agents.skills_budget_tokens, agents.max_answer_chars,
                                        programs_dir=agents.programs_dir, diagnose_failures=agents.diagnose)

    def propose(self, proposal):
        return self.proposer.propose(proposal)

    def propose_naive(self, proposal):
        return (self.offline or self.proposer).propose(proposal)

    def update_world_model(self, node: str, tree: str, results: str, moves: str):
        return self.proposer.update_world_model(node, tree, results, moves)


def _driver_priority(niceness: int | None) -> None:
    """Run at the search's own nice value where allowed. Ray starts workers at nice 15, and a worker
    that times kernels at nice 15 loses its cores to every ordinary process on the machine (its
    candidates inherit it); `nice -n 19 kscout search` still means a low-priority search. kscout's
    local Ray starts workers without Ray's offset (RAY_worker_niceness=0); lowering the value needs
    root (or CAP_SYS_NICE) otherwise. The packets' environment records the value timed at."""
    if niceness is None or os.getpriority(os.PRIO_PROCESS, 0) == niceness:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except PermissionError:
        log.warning("hardware worker runs at nice %d, the search at %d (start Ray with RAY_worker_niceness=0): "
                    "other processes on this machine take its cores first", os.getpriority(os.PRIO_PROCESS, 0),
                    niceness)


class Hardware:
    def __init__(self, workload_path: str, dtype: str, harness_cfg, run_id: str, device: str = "cpu",
                 niceness: int | None = None):
        import torch

        from harness import workload
        from harness.attempt import Evaluator
        torch.set_num_threads(harness_cfg.threads)
        _driver_priority(niceness)
        # device "cuda": baselines and roofline on the GPU Ray gave this actor (num_gpus=1, cuda:0)
        self.evaluator = Evaluator(workload.load(Path(workload_path)), dtype, harness_cfg, run_id, device=device)
        self.evaluator.measure_roofline()
        self.evaluator.measure_eager()
        if harness_cfg.compiled_baseline:
            self.evaluator.measure_compiled()

    def baselines(self):
        return dict(self.evaluator.baselines), dict(self.evaluator.baseline_errors), self.evaluator.peaks

    def placement(self, target: str = ""):
        return placement(target)

    def cpu_flags(self) -> frozenset[str]:
        """This machine's CPU features (empty: unknown), so the planner proposes only moves its
        kernels can run here."""
        from harness.envinfo import cpu_flags
        return cpu_flags()

    def add_baseline(self, name: str, timing) -> None:
        """A baseline measured earlier in this run (resume: the naive kernel's timing)."""
        self.evaluator.add_baseline(name, timing)

    def workload_notes(self) -> list[str]:
        """Warnings about the workload itself (e.g. near-zero references), for the run summary."""
        return self.evaluator.workload_notes()

    def evaluate_naive(self, candidate, replay_command: str = ""):
        """Evaluate the naive kernel and, if it verifies, make it the naive_cpp baseline."""
        from harness.attempt import NAIVE
        from harness.benchmark import faster_baselines, speedups
        packet = self.evaluator.evaluate(candidate, replay_command)
        if packet.bench is not None:
            self.evaluator.add_baseline(NAIVE, packet.bench.candidate)
            packet.bench.baselines = dict(self.evaluator.baselines)
            # as for every other attempt: against the faster of the run-start and the interleaved
            # timing (a merge that let the re-timing win made a naive kernel timed beside a load
            # spike in eager "18.5x over eager" and the run's best, in CI)
            packet.bench.speedup = speedups(packet.bench.candidate,
                                            faster_baselines(packet.bench.baselines, packet.bench.interleaved))
        return packet

    def evaluate(self, candidate, replay_command: str = ""):
        if candidate.proposal_failure is not None:   # the model gave no usable kernel: nothing to run
            from harness.evidence import EvidencePacket
            return EvidencePacket(candidate=candidate).reject(candidate.proposal_failure, candidate.proposal_error)
        return self.evaluator.evaluate(candidate, replay_command)
