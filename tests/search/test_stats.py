"""The driver's live accounting: worker busy time and the frontier snapshot."""

from __future__ import annotations

import pytest

from search.node import NodeStatus, StrategyNode
from search.stats import LoopStats, WorkerClock, frontier_rows
from search.tree import StrategyTree


def test_worker_clock_counts_evaluation_time_since_the_first_dispatch():
    now = [100.0]
    c = WorkerClock(2, clock=lambda: now[0])
    assert c.snapshot() == (0.0, [0.0, 0.0])         # nothing dispatched yet
    c.start()                                        # t=0
    now[0] += 4
    c.start()                                        # later dispatches do not restart it
    c.add(0, 5.0)
    c.add(1, 3.0)
    now[0] += 6                                      # t=10
    elapsed, busy = c.snapshot()
    assert elapsed == pytest.approx(10.0)
    assert busy == pytest.approx([0.5, 0.3])
    c.add(0, 20.0)                                   # clock skew between processes: capped at 1
    assert c.snapshot()[1][0] == 1.0


def test_frontier_rows_are_the_best_k_with_the_size():
    t = StrategyTree()
    t.add(StrategyNode(id="n0", family="f", status=NodeStatus.expanded))
    for i in range(1, 8):
        t.add(StrategyNode(id=f"n{i}", parent_id="n0", family="f", params={"a": i}, depth=1, priority=float(i),
                           expected_gain=1.0 + i, seq=t.next_seq()))
    rows, size = frontier_rows(t, k=3)
    assert size == 7 and [r.id for r in rows] == ["n7", "n6", "n5"]
    assert rows[0].expected_gain == 8.0
    assert frontier_rows(None) == ([], 0)


def test_rate_needs_elapsed_time():
    assert LoopStats().attempts_per_min is None
    assert LoopStats(elapsed_s=30, finished=5).attempts_per_min == pytest.approx(10.0)
