"""The driver's live accounting: worker busy time and the frontier snapshot."""

from __future__ import annotations

import pytest

from search.node import NodeStatus, StrategyNode
from search.stats import LoopStats, WorkerClock, frontier_rows
from search.tree import StrategyTree


def test_worker_clock_counts_time_with_work_outstanding():
    now = [100.0]
    c = WorkerClock(2, clock=lambda: now[0])
    assert c.snapshot() == (0.0, [0.0, 0.0])       # nothing dispatched yet
    c.set_load(0, 1)                                 # t=0: w0 gets an attempt
    now[0] += 2
    c.set_load(0, 2)                                 # queued behind it: still one busy span
    c.set_load(1, 1)                                 # t=2: w1 starts
    now[0] += 3
    c.set_load(0, 1)
    now[0] += 1
    c.set_load(0, 0)                                 # t=6: w0 idle
    now[0] += 4                                      # t=10, w1 still busy since t=2
    elapsed, busy = c.snapshot()
    assert elapsed == pytest.approx(10.0)
    assert busy == pytest.approx([0.6, 0.8])
    c.set_load(0, 1)                                 # a second span adds up
    now[0] += 10
    assert c.snapshot()[1] == pytest.approx([16 / 20, 18 / 20])


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
