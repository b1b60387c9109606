"""Typed records the Store returns, so callers never see ORM rows or raw SQL results.

ORM objects are bound to a session that the Store closes at the end of every call; handing
out plain pydantic values instead keeps the database an implementation detail.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from harness.evidence import FailureClass, Verdict


def _utc(value: datetime) -> datetime:
    """SQLite hands timestamps back without a zone; every timestamp we store is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class RunStatus(str, Enum):
    running = "running"
    finished = "finished"
    failed = "failed"
    interrupted = "interrupted"


class RunInfo(BaseModel):
    id: str
    workload: str
    workload_fingerprint: str
    status: RunStatus
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] | None = None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    elapsed_s: float = 0.0              # time spent searching, summed over every session of the run


class AttemptInfo(BaseModel):
    """The summary columns of one attempt; `Store.packet(id)` gives the full evidence."""

    id: str
    run_id: str
    seq: int
    node_id: str | None = None
    backend: str
    source_hash: str
    verdict: Verdict
    failure_class: FailureClass | None = None
    failure_message: str = ""
    speedup_eager: float | None = None
    speedup_naive: float | None = None
    median_s: float | None = None
    compiled: bool
    verified: bool
    wall_s: float
    created_at: UtcDatetime

    def history_line(self) -> str:
        """This attempt in a proposer's history: verdict, speedup or failure class and message."""
        if self.verdict == Verdict.accepted:
            return f"attempt {self.id}: accepted, {self.speedup_eager or 0:.2f}x over torch eager"
        cls = self.failure_class.value if self.failure_class else "rejected"
        return f"attempt {self.id}: rejected as {cls}: {self.failure_message[:600]}"


class NodeStats(BaseModel):
    """What the log says about one strategy node; the planner's world-model update reads it.

    best_speedup / best_attempt_id consider accepted attempts only: a rejected kernel's timing
    (a wrong result can be very fast) is not evidence of a good strategy.
    """

    attempts: int = 0
    accepted: int = 0
    rejected: int = 0
    best_speedup: float | None = None
    best_attempt_id: str | None = None
    failures: dict[str, int] = Field(default_factory=dict)   # failure class -> count


class VerdictCounts(BaseModel):
    """How a whole run's attempts fared, stage by stage."""

    attempts: int = 0
    compiled: int = 0
    verified: int = 0
    accepted: int = 0
    rejected: int = 0
    failures: dict[str, int] = Field(default_factory=dict)   # failure class -> count


class ModelUsage(BaseModel):
    """A run's calls to one model (all roles): how many, how many failed, tokens, dollars, latency."""

    model: str
    calls: int = 0
    failed: int = 0                    # outcome other than ok (each retry counts)
    tokens_in: int = 0
    tokens_out: int = 0
    dollars: float = 0.0
    unpriced: int = 0                  # calls to a model litellm's cost map does not price
    mean_latency_s: float = 0.0
    outcomes: dict[str, int] = Field(default_factory=dict)
