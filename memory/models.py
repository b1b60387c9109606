"""The SQL schema of the experiment log, as SQLAlchemy 2 declarative models.

These models are the single description of the schema: the Alembic migrations in
memory/migrations/versions are written to match them, and a test checks that the migrated
database and these models agree (alembic's compare_metadata finds no differences).

Portability rules, so one schema serves SQLite and PostgreSQL:
- plain String/Float/Boolean/JSON columns, no database-specific types;
- enumerations are stored as short strings with a named CHECK constraint, not as SQL ENUM
  types (those need their own migrations on PostgreSQL);
- every constraint and index has an explicit name, so later migrations can refer to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Names for constraints Alembic would otherwise leave to the database (which names them
# differently on SQLite and PostgreSQL).
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RUN_STATUSES = ("running", "finished", "failed", "interrupted")
VERDICTS = ("accepted", "rejected")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
        str: String(255),
    }


class Workload(Base):
    """A workload definition as it was when a run used it; the fingerprint tells versions apart."""

    __tablename__ = "workloads"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128), primary_key=True)
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Run(Base):
    """One search run: its configuration, the machine it ran on, and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["workload", "workload_fingerprint"],
            ["workloads.name", "workloads.fingerprint"],
            name="fk_runs_workload_workloads",
        ),
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index(None, "workload"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workload: Mapped[str] = mapped_column(String(200))
    workload_fingerprint: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]]
    environment: Mapped[dict[str, Any]]
    summary: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    elapsed_s: Mapped[float] = mapped_column(Float, server_default="0")   # searching time, all sessions


class Dispatch(Base):
    """An attempt handed to a hardware worker and not yet recorded (deleted when it is): after a
    crash, exactly these are run again."""

    __tablename__ = "dispatches"

    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    proposal: Mapped[dict[str, Any]]          # search.strategy.Proposal
    created_at: Mapped[datetime]


class Node(Base):
    """The latest state of one strategy-tree node (search.node.StrategyNode), per run."""

    __tablename__ = "nodes"

    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id"), primary_key=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(100))
    move: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    depth: Mapped[int] = mapped_column(Integer)
    priority: Mapped[float] = mapped_column(Float)
    expected_gain: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    stagnation: Mapped[int] = mapped_column(Integer)
    best_speedup: Mapped[float | None] = mapped_column(Float)
    best_attempt_id: Mapped[str | None] = mapped_column(String(64))
    best_params: Mapped[dict[str, Any] | None]
    seq: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    knowledge: Mapped[list[str]] = mapped_column(JSON, server_default="[]")   # cross-run facts that shaped it
    displaces: Mapped[list[str]] = mapped_column(JSON, server_default="[]")   # parent's moves its move replaced
    updated_at: Mapped[datetime]


class Attempt(Base):
    """One evaluated candidate: summary columns for queries, plus the whole evidence packet."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        Index(None, "run_id", "node_id"),
        Index(None, "run_id", "verdict"),
        Index(None, "run_id", "source_hash"),
        Index(None, "run_id", "verdict", "speedup_eager"),                             # best_attempt
        Index(None, "run_id", "verdict", "failure_class", "compiled", "verified"),     # verdict_counts
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str | None] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(64))
    source_hash: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(16))
    failure_class: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str] = mapped_column(Text)
    speedup_eager: Mapped[float | None] = mapped_column(Float)
    speedup_naive: Mapped[float | None] = mapped_column(Float)
    median_s: Mapped[float | None] = mapped_column(Float)
    compiled: Mapped[bool] = mapped_column(Boolean)
    verified: Mapped[bool] = mapped_column(Boolean)
    wall_s: Mapped[float] = mapped_column(Float)
    device_s: Mapped[float] = mapped_column(Float, server_default="0")      # compile + child processes
    llm_dollars: Mapped[float] = mapped_column(Float, server_default="0")
    created_at: Mapped[datetime]
    packet: Mapped[dict[str, Any]]


class LLMCallRow(Base):
    """One request to a model provider (failed ones and retries too): what a run's agents spent."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index(None, "run_id", "model"),
        Index(None, "attempt_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id"))
    attempt_id: Mapped[str | None] = mapped_column(String(64))     # None: a planner-side call (world model)
    model: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    program: Mapped[str] = mapped_column(String(64))
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    dollars: Mapped[float] = mapped_column(Float)
    priced: Mapped[bool] = mapped_column(Boolean)
    latency_s: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(32))
    finish_reason: Mapped[str] = mapped_column(String(32))
    error: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime]


class Baseline(Base):
    """A reference timing (torch eager, naive C++, ...) measured once per run and shape."""

    __tablename__ = "baselines"

    run_id: Mapped[str] = mapped_column(String(64), ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    shape: Mapped[str] = mapped_column(String(100), primary_key=True)
    timing: Mapped[dict[str, Any]]
    recorded_at: Mapped[datetime]
