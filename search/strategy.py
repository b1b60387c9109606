"""The search-strategy protocol and the typed records that cross it.

select -> (the driver proposes, compiles, verifies, benchmarks) -> record -> should_stop.
The world-model planner is one implementation; baselines (random, exhaustive) are others, so
comparisons between them are honest: same space, same harness, same budget.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, Field

from harness.evidence import FailureClass, Verdict


class ProposalContext(BaseModel):
    """What a model-backed proposer reads beyond the node, taken from the experiment log by the
    driver when the attempt is sent (never stored with the dispatch: it is rebuilt on resume)."""

    parent_source: str = ""            # the best kernel of the parent strategy
    parent_attempt_id: str | None = None
    parent_measured: str = ""          # what the harness measured of that kernel: time, speedup, SOL, profile
    history: list[str] = Field(default_factory=list)   # earlier attempts at this node, one line each
    failed_source: str = ""            # the latest attempt at this node, when it was rejected ...
    failed_verdict: str = ""           # ... and what the harness said (for a diagnosis first)

    def history_text(self, extra: list[str] | None = None) -> str:
        """The prompt's `history` input: the parent kernel's measurements, then the attempts at this node."""
        lines = ([self.parent_measured] if self.parent_measured else []) + self.history + (extra or [])
        return "\n".join(lines) or "(none: first attempt at this strategy)"


class Proposal(BaseModel):
    """What to try next: a node of the tree and the full parameter assignment for it."""

    node_id: str
    params: dict[str, Any]
    strategy: str                      # the node's strategy in words
    refinement: str = ""               # what local refinement changed, if anything
    knowledge: list[str] = Field(default_factory=list)   # facts from earlier runs behind this strategy
    context: ProposalContext | None = Field(None, exclude=True)


class Outcome(BaseModel):
    """What the planner learns from one attempt (the log holds the full packet)."""

    attempt_id: str
    node_id: str
    params: dict[str, Any]
    verdict: Verdict
    failure_class: FailureClass | None = None
    speedup: float | None = None       # over torch eager, accepted attempts only
    extra: dict[str, Any] = Field(default_factory=dict)


class SearchStrategy(Protocol):
    name: str

    def select(self) -> Proposal | None:
        """The next attempt to run, or None when nothing is ready (in-flight work pending) or left."""

    def record(self, proposal: Proposal, outcome: Outcome) -> None:
        """Take one finished attempt into account."""

    def exhausted(self) -> bool:
        """True when nothing is left to try and nothing is in flight."""
