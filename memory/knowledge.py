"""Knowledge that outlives a run: proven facts, dead ends and best-known kernels, from the log.

Everything here is derived, never stored separately: the experiment logs (every run's SQLite
file under the runs folder, and any shared database) are the only source, so knowledge cannot
drift from the evidence. Knowledge is keyed by op family (`rmsnorm`, `softmax`, ...) and hardware
(CPU model and thread count): a fact learned on one machine is not applied to another.

- A **fact**: a move (fuse, vectorize, pack B, ...) that helped, with its geometric-mean gain
  over the parent node's best and the attempt ids that show it.
- A **dead end**: a move that never verified, or never beat its parent, and why.
- A **best-known kernel**: each run's best accepted attempt, with its parameters, so a new search
  on the same family can start from it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from memory.store import Store
from search.node import COMPOSITE_MOVES, NodeStatus, StrategyNode

HELPS = 1.0          # a move "helped" when its geometric-mean gain is at least this
DEAD_BELOW = 0.97    # ... and is a dead end when every observation is below this (or never verified)


class Observation(BaseModel):
    run_id: str
    workload: str
    gain: float | None                 # child best / parent best; None when the child never verified
    attempt_id: str | None             # the child's best attempt (the evidence)
    why: str = ""


class Fact(BaseModel):
    family: str
    hardware: str
    move: str
    gain: float                        # geometric mean over observations that verified
    observations: int
    evidence: list[str]                # attempt ids
    runs: list[str]

    def says(self) -> str:
        return (f"{self.move} gained {self.gain:.2f}x over its parent ({self.observations} observation(s); "
                f"evidence {', '.join(self.evidence[:3])})")


class DeadEnd(BaseModel):
    family: str
    hardware: str
    move: str
    reason: str
    observations: int
    evidence: list[str]
    runs: list[str]


class BestKnown(BaseModel):
    family: str
    hardware: str
    workload: str
    run_id: str
    attempt_id: str
    strategy: str
    params: dict
    speedup_eager: float


class Knowledge(BaseModel):
    facts: list[Fact] = Field(default_factory=list)
    dead_ends: list[DeadEnd] = Field(default_factory=list)
    best: list[BestKnown] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)   # databases read

    def for_target(self, family: str, hardware: str, workload: str | None = None,
                   exclude_run: str | None = None) -> "Knowledge":
        """What applies to this family on this hardware (optionally one workload), minus one run."""
        keep = lambda x: x.family == family and x.hardware == hardware  # noqa: E731
        best = [b for b in self.best if keep(b) and b.run_id != exclude_run and (workload is None or b.workload == workload)]
        return Knowledge(facts=[f for f in self.facts if keep(f)], dead_ends=[d for d in self.dead_ends if keep(d)],
                         best=sorted(best, key=lambda b: -b.speedup_eager), sources=self.sources)

    def empty(self) -> bool:
        return not (self.facts or self.dead_ends or self.best)


def hardware_key(environment: dict, config: dict | None = None) -> str:
    """What the kernels were judged on, from a run's environment and its config (as stored).

    A run placed on a hardware target (a cluster's Ray resource, e.g. 'H100') was timed there, not
    on the driver whose environment the run recorded. A Triton run's verdicts also depend on the
    GPUs its kernels were compile-checked for (harness.triton_targets): a tile that overflows an
    MI300X's 64 KiB of LDS is rejected there and fits an H100, so a dead end found for one set of
    targets must not prune the move for another."""
    config = config or {}
    target = (config.get("cluster") or {}).get("target")
    key = f"target {target}" if target else f"{environment.get('cpu', '?')} x{environment.get('threads', '?')} threads"
    if config.get("backend") == "triton":
        targets = (config.get("harness") or {}).get("triton_targets") or []
        key += f", triton_targets {'+'.join(targets) if targets else 'none'}"
    return key


def _observations(store: Store, run_id: str, workload: str) -> dict[str, list[Observation]]:
    nodes = {n.id: n for n in store.nodes(run_id)}
    out: dict[str, list[Observation]] = defaultdict(list)
    for n in nodes.values():
        parent = nodes.get(n.parent_id) if n.parent_id else None
        if parent is None or n.status == NodeStatus.frontier or n.attempts == 0 or n.move in COMPOSITE_MOVES:
            continue   # the root, a node this run never finished judging, or several moves at once
        if n.accepted == 0:
            out[n.move].append(Observation(run_id=run_id, workload=workload, gain=None, attempt_id=None,
                                           why=n.note or "never verified"))
        # A move that replaced another (tiles over rows) gained relative to it: not its own gain.
        elif parent.best_speedup and n.best_speedup and not n.displaces:
            out[n.move].append(Observation(run_id=run_id, workload=workload, gain=n.best_speedup / parent.best_speedup,
                                           attempt_id=n.best_attempt_id))
    return out


def _family(nodes: list[StrategyNode]) -> str | None:
    return nodes[0].family if nodes else None


def derive(stores: list[tuple[str, Store]]) -> Knowledge:
    """Read every run in the given logs and fold them into knowledge."""
    obs: dict[tuple[str, str, str], list[Observation]] = defaultdict(list)
    k = Knowledge(sources=[name for name, _ in stores])
    for _, store in stores:
        for run in store.runs():
            nodes = store.nodes(run.id)
            family = _family(nodes)
            if family is None:
                continue
            hw = hardware_key(run.environment, run.config)
            for move, items in _observations(store, run.id, run.workload).items():
                obs[(family, hw, move)].extend(items)
            best = store.best_attempt(run.id)
            if best is not None and best.speedup_eager:
                p = store.packet(best.id)
                k.best.append(BestKnown(family=family, hardware=hw, workload=run.workload, run_id=run.id,
                                        attempt_id=best.id, strategy=p.candidate.strategy,
                                        params=p.candidate.params, speedup_eager=best.speedup_eager))
    for (family, hw, move), items in sorted(obs.items()):
        gains = [o.gain for o in items if o.gain is not None]
        runs = sorted({o.run_id for o in items})
        evidence = [o.attempt_id for o in items if o.attempt_id]
        if not gains:
            whys = sorted({o.why for o in items})
            k.dead_ends.append(DeadEnd(family=family, hardware=hw, move=move, observations=len(items), runs=runs,
                                       evidence=evidence, reason="never verified: " + "; ".join(whys)[:300]))
            continue
        g = math.exp(sum(math.log(max(x, 1e-6)) for x in gains) / len(gains))
        if max(gains) < DEAD_BELOW:
            k.dead_ends.append(DeadEnd(family=family, hardware=hw, move=move, observations=len(items), runs=runs,
                                       evidence=evidence, reason=f"never beat its parent (best {max(gains):.2f}x)"))
        elif g >= HELPS:
            k.facts.append(Fact(family=family, hardware=hw, move=move, gain=g, observations=len(gains),
                                evidence=evidence, runs=runs))
    return k


def gather(runs_dir: Path, extra_urls: list[str] | None = None) -> Knowledge:
    """Knowledge from every run database under `runs_dir` plus any shared databases."""
    stores: list[tuple[str, Store]] = []
    try:
        for db in sorted(runs_dir.glob("*/kscout.db")) if runs_dir.is_dir() else []:
            try:
                stores.append((str(db), Store.open(f"sqlite:///{db.resolve()}")))
            except Exception:   # an unreadable old run must not stop a new search; it is simply not used
                continue
        for url in extra_urls or []:
            stores.append((url, Store.open(url)))
        return derive(stores)
    finally:
        for _, s in stores:
            s.close()
