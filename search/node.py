"""A strategy-tree node: one optimization strategy, as typed fields the planner can rank.

Nodes are the K-Search world model's states: the root is the naive kernel; each child applies
one more named move (fuse, vectorize, tile, thread) to its parent's parameters (or, for the
composite moves below, several at once). The planner
selects by a deterministic rule over these fields; evidence from the SQL log updates them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


# Moves of nodes that apply several template moves at once: the best kernel of earlier runs
# (warm start) and the stacked child of the naive kernel. Their gains are evidence about no one
# move, so neither the planner's learned gains nor cross-run knowledge count them.
MEMORY, STACK = "memory", "stack"
COMPOSITE_MOVES = frozenset({MEMORY, STACK})


class NodeStatus(str, Enum):
    frontier = "frontier"      # not yet tried, or still being refined
    expanded = "expanded"      # refined to stagnation; children inserted
    pruned = "pruned"          # dead end: never verified, or slower than its parent


class StrategyNode(BaseModel):
    id: str
    parent_id: str | None = None
    family: str
    move: str = "naive"                          # the move that created it from its parent
    description: str = ""                        # strategy in words, whole ancestry
    params: dict[str, Any] = Field(default_factory=dict)
    depth: int = 0
    priority: float = 0.0                        # what selection ranks by
    expected_gain: float = 1.0                   # expected speedup over torch eager
    confidence: float = 0.5                      # 0..1, grows with evidence
    status: NodeStatus = NodeStatus.frontier
    attempts: int = 0
    accepted: int = 0
    stagnation: int = 0                          # attempts since this node's best last improved
    best_speedup: float | None = None            # best measured speedup over eager at this node
    best_attempt_id: str | None = None
    best_params: dict[str, Any] | None = None    # params of that best attempt (children start here)
    seq: int = 0                                 # insertion order, the tie-break
    note: str = ""                               # why it was pruned / what the update said
    knowledge: list[str] = Field(default_factory=list)   # facts from earlier runs that shaped this node
    # Moves of the parent's kernel that this node's move replaced (omp-tiles applied to an omp-rows
    # kernel replaces omp-rows): its gain is relative to theirs, so it is evidence about neither alone.
    displaces: list[str] = Field(default_factory=list)
