"""Strategy tree bookkeeping and budgets."""

from __future__ import annotations

from search.budget import Budget
from search.node import NodeStatus, StrategyNode
from search.tree import StrategyTree


def test_tree_keeps_lineage_frontier_order_and_param_identity():
    t = StrategyTree()
    t.add(StrategyNode(id="n0", family="f", params={"a": 1}, priority=1.0))
    t.add(StrategyNode(id="n1", parent_id="n0", family="f", params={"a": 2}, depth=1, priority=2.0, seq=t.next_seq()))
    t.add(StrategyNode(id="n2", parent_id="n0", family="f", params={"a": 3}, depth=1, priority=2.0, seq=t.next_seq()))
    t.add(StrategyNode(id="n3", parent_id="n1", family="f", params={"a": 4}, depth=2, priority=0.5, seq=t.next_seq()))
    t.node("n0").status = NodeStatus.expanded
    assert [n.id for n in t.ancestry("n3")] == ["n0", "n1", "n3"]
    assert [n.id for n in t.frontier()] == ["n1", "n2", "n3"]   # priority, then insertion order
    assert t.has_params({"a": 3}) and not t.has_params({"a": 9})
    assert {c.id for c in t.children("n0")} == {"n1", "n2"}
    assert t.root().id == "n0" and len(t) == 4


def test_budget_stops_on_attempts_and_time():
    now = [0.0]
    b = Budget(max_attempts=3, max_seconds=10, clock=lambda: now[0])
    assert b.stop_reason(2) is None
    assert "attempt budget" in b.stop_reason(3)
    now[0] = 11
    assert "time budget" in b.stop_reason(0)


def test_budget_stops_on_model_spend_and_tokens():
    b = Budget(max_attempts=100, max_seconds=1e9, max_dollars=0.01, max_tokens=10_000)
    b.charge(1.0, 0.004, 4_000)
    assert b.stop_reason(1) is None
    b.charge(1.0, 0.004, 7_000)
    assert b.stop_reason(2) == "token budget reached (10,000 tokens)"
    b.max_tokens = None
    assert b.stop_reason(2) is None
    b.charge(0.0, 0.003)
    assert b.stop_reason(3) == "spend budget reached ($0.01)"
