"""Live numbers about a running search loop, cheap enough to take after every attempt.

The driver owns the clock (it alone knows when an attempt goes to a hardware worker and when it
comes back), so it keeps the accounting and hands a snapshot to whoever watches, on each
AttemptEvent, instead of displays reaching into the loop or the planner's tree.
"""

from __future__ import annotations

import time
from typing import Callable

from pydantic import BaseModel, Field

from search.node import NodeStatus
from search.tree import StrategyTree

FRONTIER_ROWS = 5


class FrontierRow(BaseModel):
    """One frontier node as a display shows it."""

    id: str
    move: str
    description: str = ""
    priority: float
    expected_gain: float
    attempts: int = 0
    best_speedup: float | None = None


class LoopStats(BaseModel):
    """The loop at one moment (this session: a resumed run starts a new clock)."""

    elapsed_s: float = 0.0                 # since this session's first dispatch
    finished: int = 0                      # attempts recorded this session
    in_flight: int = 0
    worker_busy: list[float] = Field(default_factory=list)   # per hardware worker, 0..1 of elapsed_s
    frontier: list[FrontierRow] = Field(default_factory=list)  # best first, at most FRONTIER_ROWS
    frontier_size: int = 0
    tree_nodes: int = 0

    @property
    def attempts_per_min(self) -> float | None:
        return self.finished * 60.0 / self.elapsed_s if self.elapsed_s > 0 else None


class WorkerClock:
    """Busy time per hardware worker: the seconds it spent evaluating attempts (each packet's
    wall time, measured by the harness around compile, verify and benchmark) over the time since
    the first dispatch. Counting from dispatch to return instead would also count the wait for a
    model to write the candidate, hiding exactly the starvation this number is for."""

    def __init__(self, workers: int, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.t0: float | None = None
        self._busy = [0.0] * workers

    def start(self) -> None:
        """Call at each dispatch; the first one starts the clock."""
        if self.t0 is None:
            self.t0 = self.clock()

    def add(self, worker: int, seconds: float) -> None:
        """A finished attempt: `seconds` of evaluation on `worker`."""
        self._busy[worker] += max(0.0, seconds)

    def snapshot(self) -> tuple[float, list[float]]:
        """(elapsed seconds, busy fraction per worker); an attempt still running is not counted yet."""
        if self.t0 is None:
            return 0.0, [0.0] * len(self._busy)
        elapsed = self.clock() - self.t0
        return elapsed, [min(1.0, b / elapsed) if elapsed > 0 else 0.0 for b in self._busy]


def frontier_rows(tree: StrategyTree | None, k: int = FRONTIER_ROWS) -> tuple[list[FrontierRow], int]:
    """The tree's best k frontier nodes and the frontier's size (([], 0) without a tree)."""
    if tree is None:
        return [], 0
    best = tree.top_frontier(k)   # tree.frontier()'s order, without ranking the whole frontier
    rows = [FrontierRow(id=n.id, move=n.move, description=n.description, priority=n.priority,
                        expected_gain=n.expected_gain, attempts=n.attempts, best_speedup=n.best_speedup)
            for n in best]
    return rows, tree.frontier_size()
