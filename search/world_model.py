"""Model-proposed edits of the strategy tree (K-Search's world-model update), validated by code.

When a model is configured, the planner asks it, each time a node's refinement ends and the
evidence says the node is worth building on, which strategies to try next (at most three inserts,
each one of the family's moves applied to the node's best parameters), which frontier estimates to
revise, and which frontier strategies to drop. The model proposes; this module checks every
operation against the tree and the template family and applies only what is valid, saying why
anything was refused. Without a model, or when its answer yields nothing valid, the planner's own
rules expand the node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

from search.node import NodeStatus, StrategyNode
from search.strategy import Outcome

if TYPE_CHECKING:
    from agents.templates.base import TemplateFamily
    from search.tree import StrategyTree

MAX_INSERTS = 3     # K-Search: at most three new strategies per update
MAX_GAIN = 100.0    # an expected gain beyond this is a hallucination, not an estimate


class TreeOperation(BaseModel):
    """One edit of the strategy tree proposed by the model."""

    op: Literal["insert", "update", "prune"]
    node_id: str | None = Field(None, description="the node to update or prune")
    parent_id: str | None = Field(None, description="for insert: the node the new strategy refines")
    move: str | None = Field(None, description="for insert: one of the available moves")
    description: str = Field("", description="for insert: the strategy in words")
    expected_gain: float | None = Field(None, gt=0, description="expected speedup over torch eager")
    reason: str = ""

    @model_validator(mode="after")
    def _complete(self) -> "TreeOperation":
        if self.op == "insert" and not (self.parent_id and self.move):
            raise ValueError("an insert names parent_id and move")
        if self.op in ("update", "prune") and not self.node_id:
            raise ValueError(f"an {self.op} names node_id")
        return self


class WorldModelAnswer(BaseModel):
    """What the model returned (already typed), or why there is nothing to apply."""

    operations: list[TreeOperation] = Field(default_factory=list)
    error: str = ""


def valid_operations(ops: list[TreeOperation]) -> tuple[list[TreeOperation], list[str]]:
    """Keep at most MAX_INSERTS inserts (the first ones); say what was dropped."""
    kept, dropped, inserts = [], [], 0
    for op in ops:
        if op.op == "insert":
            inserts += 1
            if inserts > MAX_INSERTS:
                dropped.append(f"insert under {op.parent_id} ({op.move}): more than {MAX_INSERTS} inserts")
                continue
        kept.append(op)
    return kept, dropped


def describe_node(n: StrategyNode) -> str:
    best = f"best {n.best_speedup:.2f}x over torch eager" if n.best_speedup else "never verified"
    return f"{n.id} {n.description!r}: {n.attempts} attempts, {best}; its best parameters are the base of new strategies"


def describe_tree(tree: "StrategyTree", limit: int = 40) -> str:
    """One line per node, best-ranked first (the frontier and what was learned), for the prompt."""
    nodes = sorted(tree.nodes(), key=lambda n: (n.status != NodeStatus.frontier, -n.priority, n.seq))[:limit]
    lines = []
    for n in nodes:
        best = f"best {n.best_speedup:.2f}x" if n.best_speedup else ("never verified" if n.attempts else "untried")
        lines.append(f"{n.id} (parent {n.parent_id or '-'}, move {n.move}) [{n.status.value}] {n.description!r}: "
                     f"{n.attempts} attempts, {best}, expected {n.expected_gain:.2f}x"
                     + (f" — {n.note}" if n.note else ""))
    return "\n".join(lines)


def describe_results(outcomes: list[Outcome]) -> str:
    return "\n".join(f"{o.node_id}: {o.verdict.value}" + (f" as {o.failure_class.value}" if o.failure_class else "")
                     + (f", {o.speedup:.2f}x over torch eager" if o.speedup else "") for o in outcomes) or "(none yet)"


def describe_moves(family: "TemplateFamily", params: dict[str, Any], isa: frozenset[str] | None = None) -> str:
    moves = [m for m in family.moves if family.applicable(m, params, isa)]
    return "\n".join(f"{m.name}: {m.description} (sets {m.assigns}; prior gain {m.prior_gain:.2f}x)" for m in moves)


def apply(ops: list[TreeOperation], *, tree: "StrategyTree", family: "TemplateFamily", node: StrategyNode,
          base: dict[str, Any], new_node, isa: frozenset[str] | None = None) -> tuple[list[StrategyNode], list[str]]:
    """Apply the valid operations; return the nodes inserted or changed, and a note per refusal.
    `new_node(parent, move, params, description, expected_gain, reason)` builds an inserted node
    (the planner's, so ids, priority and bookkeeping stay in one place)."""
    ops, notes = valid_operations(ops)
    moves = {m.name: m for m in family.moves}
    changed: list[StrategyNode] = []
    for op in ops:
        target = tree.node(op.node_id) if op.node_id and op.node_id in tree else None
        if op.op == "insert":
            if op.parent_id != node.id:
                notes.append(f"insert under {op.parent_id}: only the node just updated ({node.id}) can be refined now")
                continue
            move = moves.get(op.move or "")
            if move is None or not family.applicable(move, base, isa):
                notes.append(f"insert {op.move!r}: not an available move for {node.id}")
                continue
            params = family.validate_params(dict(base, **move.assigns))
            if tree.has_params(params):
                notes.append(f"insert {op.move!r}: that strategy is already in the tree")
                continue
            gain = min(op.expected_gain, MAX_GAIN) if op.expected_gain else None
            changed.append(new_node(node, move, params, op.description, gain, op.reason))
        elif target is None:
            notes.append(f"{op.op} {op.node_id}: no such node")
        elif target.status != NodeStatus.frontier or target.parent_id is None:
            notes.append(f"{op.op} {op.node_id}: only untried frontier nodes can be changed (not the root)")
        elif op.op == "update":
            if op.expected_gain:
                target.expected_gain = min(op.expected_gain, MAX_GAIN)
                target.note = f"world model: {op.reason}"[:500]
                changed.append(target)
        elif target.attempts == 0 or target.stagnation > 0:
            target.status = NodeStatus.pruned
            target.note = f"pruned by the world model: {op.reason}"[:500]
            changed.append(target)
        else:
            notes.append(f"prune {op.node_id}: it is improving; evidence outranks the model")
    return changed, notes
