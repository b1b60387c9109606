"""SIMULATED hardware, for measuring the orchestration: not a backend, never a real result.

A `SimulatedWorker` has the interface of `search.workers.HardwareWorker` (baselines, evaluate,
evaluate_naive, ...). Each attempt sleeps for a fixed time and returns a packet whose verdict and
speedup come from a seeded, deterministic landscape over the candidate's parameters, so the
planner, the queues and the database writer can be driven at scale without hardware. Nothing in
the CLI or the config can select it: benchmarks and tests build it in Python. Its packets say
`simulated` as their backend, in their artifacts and in every failure message, so one
can never pass for a measurement.

One simulated worker is one slot of a threaded actor (`slots` per process): 256 single-slot
actor processes would need ~40 GB on a small machine, while the driver cannot tell the
difference — it sees one handle per slot and balances load over them as over real workers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from typing import Any

import ray

from agents.templates.base import Axis, Move, TemplateFamily
from harness.evidence import BenchResult, Candidate, EvidencePacket, FailureClass, Timing, Verdict

SIMULATED = "simulated"
FAILURES = (FailureClass.compile_error, FailureClass.wrong_result, FailureClass.timeout)


def synthetic_family(strategy_axes: int = 8, values: int = 3, tunable_axes: int = 3, tunable_values: int = 8
                     ) -> TemplateFamily:
    """A strategy space much larger than any shipped family's: `strategy_axes` axes set by moves
    (each value above the default is a move), plus tunable axes that refinement walks."""
    axes = [Axis(name=f"s{i}", values=list(range(values)), default=0) for i in range(strategy_axes)]
    axes += [Axis(name=f"t{i}", values=list(range(tunable_values)), default=tunable_values // 2, kind="tunable")
             for i in range(tunable_axes)]
    moves = [Move(name=f"s{i}={v}", description=f"set s{i} to {v}", assigns={f"s{i}": v}, prior_gain=1.1 + 0.05 * v)
             for i in range(strategy_axes) for v in range(1, values)]

    class Synthetic(TemplateFamily):
        family = "synthetic"

        def render(self, params: dict[str, Any]) -> str:
            return "// simulated kernel\n// " + json.dumps(params, sort_keys=True) + "\n"

        def code_key(self, params: dict[str, Any]) -> str:
            return json.dumps(params, sort_keys=True)   # every point is its own 'kernel'

    Synthetic.axes, Synthetic.moves = axes, moves
    return Synthetic()


class Landscape:
    """speedup(params): deterministic in (seed, params). Each strategy value has a hidden effect,
    tunables have a hidden optimum; a small hashed fraction of points fails (a named class)."""

    def __init__(self, seed: int = 0, failure_rate: float = 0.1):
        self.seed, self.failure_rate = seed, failure_rate

    def _u(self, *key: Any) -> float:
        h = hashlib.sha256(json.dumps([self.seed, *key], sort_keys=True, default=str).encode()).digest()
        return int.from_bytes(h[:8], "big") / 2.0 ** 64

    def __call__(self, params: dict[str, Any]) -> tuple[float | None, FailureClass | None]:
        if self._u("fail", params) < self.failure_rate:
            return None, FAILURES[int(self._u("class", params) * len(FAILURES))]
        log_gain = 0.0
        for k, v in sorted(params.items()):
            if k.startswith("s"):
                log_gain += (self._u("effect", k, v) - 0.35) * (0.6 if v else 0.0)
            else:
                best = int(self._u("optimum", k) * 8)
                log_gain -= 0.04 * abs(int(v) - best)
        return 0.5 * math.exp(log_gain), None


def simulated_packet(candidate: Candidate, landscape: Landscape, attempt_s: float) -> EvidencePacket:
    packet = EvidencePacket(candidate=candidate.model_copy(update={"backend": SIMULATED}),
                            artifacts={"SIMULATED": "no kernel was built, run or timed: the verdict and speedup "
                                                    "come from a synthetic landscape"})
    speedup, failure = landscape(candidate.params)
    packet.cost.wall_s = packet.cost.device_s = attempt_s
    if failure is not None:
        return packet.reject(failure, f"simulated {failure.value} (landscape), not a real verdict")
    eager = 1e-3
    t = eager / speedup
    timing = Timing(warmup=0, repeats=1, median_s=t, q1_s=t, q3_s=t, min_s=t, mean_s=t)
    base = Timing(warmup=0, repeats=1, median_s=eager, q1_s=eager, q3_s=eager, min_s=eager, mean_s=eager)
    packet.bench = BenchResult(shape="simulated", dims={}, candidate=timing, baselines={"torch_eager": base},
                               speedup={"torch_eager": speedup})
    packet.verdict = Verdict.accepted
    return packet


@ray.remote(num_cpus=0)
class SimulatedWorker:
    """`slots` simulated hardware workers in one process (threads; max_concurrency = slots)."""

    def __init__(self, attempt_s: float, seed: int = 0, failure_rate: float = 0.1):
        self.attempt_s, self.landscape = attempt_s, Landscape(seed, failure_rate)
        self.busy_s, self.count = 0.0, itertools.count()

    def baselines(self):
        return {}, {"torch_eager": "simulated: no baseline was timed"}, None

    def placement(self, target: str = ""):
        from search.workers import placement
        return placement(target)

    def add_baseline(self, name: str, timing) -> None:
        pass

    def workload_notes(self) -> list[str]:
        return ["SIMULATED hardware: every verdict and speedup is drawn from a synthetic landscape"]

    def evaluate(self, candidate, replay_command: str = ""):
        time.sleep(self.attempt_s)
        next(self.count)
        return simulated_packet(candidate, self.landscape, self.attempt_s)

    evaluate_naive = evaluate


def simulated_workers(n: int, attempt_s: float, slots_per_process: int = 32, seed: int = 0,
                      failure_rate: float = 0.1, resources: dict[str, float] | None = None) -> list:
    """n worker handles (one per slot) over ceil(n / slots_per_process) threaded actor processes,
    each process placed by `resources` (e.g. a custom resource each node of a test cluster offers)."""
    procs = math.ceil(n / slots_per_process)
    per = math.ceil(n / procs)
    actors = [SimulatedWorker.options(max_concurrency=per, resources=resources).remote(attempt_s, seed, failure_rate)
              for _ in range(procs)]
    return [actors[i % procs] for i in range(n)]


@ray.remote(num_cpus=0)
class SimulatedProposer:
    """Renders the synthetic family's 'kernels' (a comment holding the params) for the planner."""

    def __init__(self, family_args: dict[str, int]):
        from agents.offline import OfflineProposer
        self.offline = OfflineProposer(SIMULATED, synthetic_family(**family_args), backend=SIMULATED)

    def propose(self, proposal):
        return self.offline.propose(proposal)

    propose_naive = propose
