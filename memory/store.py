"""The experiment log's one API: runs, strategy nodes, attempts and baselines in SQL.

Why it looks the way it does:
- Every write method is its own short transaction, committed before it returns, so a crash
  loses at most the call in flight and other processes see each attempt as soon as it lands.
- Concurrent writers (workers, the planner, a dashboard) share one SQLite file: WAL lets
  readers run beside the writer, writes take the lock up front (BEGIN IMMEDIATE) instead of
  failing half way, and a transient "database is locked" is retried with backoff.
- The schema is created and evolved only by the Alembic migrations, never by create_all, so
  an old log file is upgraded in place when a newer kscout opens it.
- The same code serves PostgreSQL (postgresql+psycopg://...) for shared, multi-host logs.
- Aggregates the planner needs (node_stats, verdict_counts, best_attempt) are SQL queries
  over the attempts table, so the world model is always recomputable from the log.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import Engine, case, create_engine, delete, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from harness.evidence import EvidencePacket, LLMCall, Timing, Verdict
from memory.models import Attempt, Baseline, Dispatch, LLMCallRow, Node, Run, Workload
from memory.records import AttemptInfo, ModelUsage, NodeStats, RunInfo, RunStatus, VerdictCounts
from search.node import StrategyNode

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
# Baselines with their own summary column; others are read from the stored packets.
SPEEDUP_COLUMNS = {"torch_eager": Attempt.speedup_eager, "naive_cpp": Attempt.speedup_naive}
MIGRATION_LOCK = 0x6B73636F7574  # "kscout": serialises concurrent migrations on PostgreSQL
SQLITE_BUSY_TIMEOUT_MS = 5000

P = ParamSpec("P")
R = TypeVar("R")


# --- helpers --------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _as_utc(value: datetime) -> datetime:
    """SQLite keeps the wall time and drops the zone, so store every timestamp in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _transient(error: DBAPIError) -> bool:
    """Lock contention worth retrying: SQLite's busy lock, PostgreSQL serialization/deadlock."""
    text_ = str(error.orig).lower()
    if "database is locked" in text_ or "database is busy" in text_:
        return True
    return getattr(error.orig, "sqlstate", None) in ("40001", "40P01")


def retry_locked(attempts: int = 6, base_delay: float = 0.05) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Re-run a whole store call when the database reports transient lock contention.

    Safe because every store method is one transaction: a failed try left nothing behind.
    Backoff doubles from `base_delay`, with jitter so contending writers spread out.
    """
    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for i in range(attempts):
                try:
                    return fn(*args, **kwargs)
                except DBAPIError as e:
                    if i == attempts - 1 or not _transient(e):
                        raise
                    time.sleep(base_delay * 2 ** i * (0.5 + random.random()))
            raise AssertionError("unreachable")
        return wrapper
    return decorate


def json_safe(value: Any) -> Any:
    """Replace NaN/Inf floats by the strings pydantic parses back ("NaN", "Infinity").

    A verification error can be Inf; PostgreSQL's JSON type rejects the non-standard tokens
    Python's json module would write, so they travel as strings instead.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def source_hash(packet: EvidencePacket) -> str:
    """The compile cache key when the packet was compiled, else sha256 of the source text."""
    if packet.compile is not None and packet.compile.source_hash:
        return packet.compile.source_hash
    return hashlib.sha256(packet.candidate.source.encode()).hexdigest()


def _configure_sqlite(engine: Engine) -> None:
    """WAL + busy timeout + foreign keys on every connection; real transactions on BEGIN.

    pysqlite's own transaction handling starts transactions late (not before DDL or reads),
    so we switch it off and issue BEGIN ourselves: write transactions (those on the engine
    with the `kscout_write` option) take the write lock up front with BEGIN IMMEDIATE.
    """
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("kscout_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _attempt_info(row: Attempt) -> AttemptInfo:
    return AttemptInfo.model_validate(
        {f: getattr(row, f) for f in AttemptInfo.model_fields})


def _run_info(row: Run) -> RunInfo:
    return RunInfo.model_validate({f: getattr(row, f) for f in RunInfo.model_fields})


def _failures(session: Session, *where: Any) -> dict[str, int]:
    rows = session.execute(
        select(Attempt.failure_class, func.count())
        .where(*where, Attempt.failure_class.is_not(None))
        .group_by(Attempt.failure_class)
        .order_by(Attempt.failure_class)
    )
    return {name: count for name, count in rows}


def _count_if(condition: Any) -> Any:
    """COUNT of rows matching `condition`, portable (PostgreSQL cannot SUM booleans)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# --- the store ------------------------------------------------------------------------------

def _call_rows(run_id: str, attempt_id: str | None, program: str, calls: list[LLMCall]) -> list[LLMCallRow]:
    return [LLMCallRow(run_id=run_id, attempt_id=attempt_id, model=c.model, role=c.role, program=program,
                       tokens_in=c.tokens_in, tokens_out=c.tokens_out, dollars=c.dollars, priced=c.priced,
                       latency_s=c.latency_s, outcome=c.outcome, finish_reason=c.finish_reason[:32],
                       error=c.error[:4000], started_at=_as_utc(c.started_at)) for c in calls]


class StoreOpenError(ValueError):
    """The database cannot be used as an experiment log; the message names it and the fix."""


class Store:
    """The SQL experiment log. Open with `Store.open(url)`; every method is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._writer = engine.execution_options(kscout_write=True)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to `url` (sqlite:///path.db or postgresql+psycopg://...) and migrate to head."""
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        if backend not in SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported database {backend!r} in {parsed!r}; use sqlite or postgresql")
        if backend == "sqlite" and parsed.database and parsed.database != ":memory:" \
                and not parsed.database.startswith("file:"):
            path = Path(parsed.database).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        if parsed.drivername == "postgresql":       # the driver kscout installs, not psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed)
        if backend == "sqlite":
            _configure_sqlite(engine)
        store = cls(engine)
        try:
            store.migrate()
        except CommandError as e:   # alembic: the database has a revision this kscout does not know
            engine.dispose()
            raise StoreOpenError(f"{parsed.render_as_string(hide_password=True)}: the experiment log was written by a "
                                 f"newer kscout ({e}); upgrade kscout to use it. Nothing was changed.") from e
        except DBAPIError as e:
            engine.dispose()
            first = str(e.orig or e).strip().splitlines()[0]
            fix = ("is it a kscout database? a corrupt SQLite file must be restored from a copy"
                   if backend == "sqlite" else "check that the server is running, reachable and lets this user connect")
            raise StoreOpenError(f"{parsed.render_as_string(hide_password=True)}: cannot open the experiment log "
                                 f"({first}); {fix}. Nothing was changed.") from e
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @retry_locked()
    def migrate(self) -> None:
        """Bring the schema to the newest migration; a no-op when it is already there."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))  # configparser
        with self._writer.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    def _insert(self, model: type) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(model)

    # --- runs -----------------------------------------------------------------------------

    @retry_locked()
    def create_run(self, run_id: str, workload: str, fingerprint: str, config: dict[str, Any],
                   environment: dict[str, Any], workload_spec: dict[str, Any] | None = None) -> None:
        """Start a run (status running). The workload version is recorded once per fingerprint."""
        with self._write() as s:
            if s.get(Run, run_id) is not None:
                raise ValueError(f"run {run_id!r} already exists")
            stmt = self._insert(Workload).values(name=workload, fingerprint=fingerprint,
                                                 spec=json_safe(workload_spec or {}), created_at=_now())
            if workload_spec is None:
                stmt = stmt.on_conflict_do_nothing(index_elements=["name", "fingerprint"])
            else:
                stmt = stmt.on_conflict_do_update(index_elements=["name", "fingerprint"],
                                                  set_={"spec": stmt.excluded.spec})
            s.execute(stmt)
            s.add(Run(id=run_id, workload=workload, workload_fingerprint=fingerprint,
                      status=RunStatus.running.value, config=json_safe(config),
                      environment=json_safe(environment), summary=None, started_at=_now(),
                      finished_at=None))

    @retry_locked()
    def finish_run(self, run_id: str, status: RunStatus | str, summary: dict[str, Any]) -> None:
        """Close a run with its final status and summary; raises KeyError for an unknown run."""
        status = RunStatus(status)
        with self._write() as s:
            result = s.execute(update(Run).where(Run.id == run_id).values(
                status=status.value, summary=json_safe(summary), finished_at=_now()))
            if result.rowcount == 0:
                raise KeyError(f"no run {run_id!r}")

    @retry_locked()
    def get_run(self, run_id: str) -> RunInfo | None:
        with self._read() as s:
            row = s.get(Run, run_id)
            return _run_info(row) if row is not None else None

    @retry_locked()
    def runs(self) -> list[RunInfo]:
        """All runs, oldest first."""
        with self._read() as s:
            return [_run_info(r) for r in s.scalars(select(Run).order_by(Run.started_at, Run.id))]

    # --- strategy nodes -------------------------------------------------------------------

    def upsert_node(self, run_id: str, node: StrategyNode) -> None:
        """Insert the node or overwrite its stored state (the tree's latest view wins)."""
        self.upsert_nodes(run_id, [node])

    @retry_locked()
    def upsert_nodes(self, run_id: str, nodes: list[StrategyNode]) -> None:
        """Several nodes in one statement and one transaction."""
        if nodes:
            with self._write() as s:
                self._upsert_nodes(s, run_id, nodes)

    def _upsert_nodes(self, s: Session, run_id: str, nodes: list[StrategyNode]) -> None:
        now = _now()
        rows = [dict(json_safe(n.model_dump(mode="json")), run_id=run_id, updated_at=now) for n in nodes]
        stmt = self._insert(Node).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "id"],
            set_={k: stmt.excluded[k] for k in rows[0] if k not in ("run_id", "id")})
        s.execute(stmt)

    @retry_locked()
    def nodes(self, run_id: str) -> list[StrategyNode]:
        """The run's strategy tree, in insertion order (seq)."""
        fields = list(StrategyNode.model_fields)
        with self._read() as s:
            rows = s.scalars(select(Node).where(Node.run_id == run_id).order_by(Node.seq, Node.id))
            return [StrategyNode.model_validate({f: getattr(r, f) for f in fields}) for r in rows]

    # --- attempts -------------------------------------------------------------------------

    def record_attempt(self, run_id: str, seq: int, packet: EvidencePacket, dispatch_id: str | None = None,
                       elapsed_s: float | None = None) -> str:
        """One attempt; see record_attempts."""
        return self.record_attempts(run_id, [(seq, packet, dispatch_id)], elapsed_s)[0]

    @retry_locked()
    def record_attempts(self, run_id: str, items: list[tuple[int, EvidencePacket, str | None]],
                        elapsed_s: float | None = None) -> list[str]:
        """Store evidence packets (seq, packet, dispatch id) with their summary columns and model
        calls; returns the packet ids. In the same single transaction, clear their dispatch rows
        and advance the run's searching time: after a crash the log has all of them or none.

        Each `seq` must be unique within the run (see next_seq): a duplicate seq or packet id, or an
        unknown run, raises sqlalchemy's IntegrityError. A packet without a run_id is stored
        with this one; a packet from another run is refused (ValueError).
        """
        attempts, calls, dispatches = [], [], []
        for seq, packet, dispatch_id in items:
            if packet.run_id is None:
                packet = packet.model_copy(update={"run_id": run_id})
            elif packet.run_id != run_id:
                raise ValueError(f"packet {packet.id} belongs to run {packet.run_id!r}, not {run_id!r}")
            attempts.append(Attempt(
                id=packet.id,
                run_id=run_id,
                seq=seq,
                node_id=packet.candidate.node_id,
                backend=packet.candidate.backend,
                source_hash=source_hash(packet),
                verdict=packet.verdict.value,
                failure_class=packet.failure_class.value if packet.failure_class else None,
                failure_message=packet.failure_message,
                speedup_eager=packet.speedup("torch_eager"),
                speedup_naive=packet.speedup("naive_cpp"),
                median_s=packet.bench.candidate.median_s if packet.bench else None,
                compiled=bool(packet.compile and packet.compile.ok),
                verified=bool(packet.verify and packet.verify.ok),
                wall_s=packet.cost.wall_s,
                device_s=packet.cost.device_s + packet.cost.compile_s,
                llm_dollars=packet.cost.llm_dollars,
                created_at=_as_utc(packet.created_at),
                packet=json_safe(packet.model_dump(mode="json")),
            ))
            calls += _call_rows(run_id, packet.id, packet.candidate.program, packet.candidate.llm_calls)
            if dispatch_id is not None:
                dispatches.append(dispatch_id)
        with self._write() as s:
            s.add_all(attempts)
            s.add_all(calls)
            if dispatches:   # same transaction: a crash leaves the dispatches or the attempts
                s.execute(delete(Dispatch).where(Dispatch.run_id == run_id, Dispatch.id.in_(dispatches)))
            if elapsed_s is not None:
                s.execute(update(Run).where(Run.id == run_id).values(elapsed_s=elapsed_s))
        return [a.id for a in attempts]

    # --- dispatches (attempts in flight) -------------------------------------------------

    @retry_locked()
    def dispatch(self, run_id: str, dispatch_id: str, node_id: str, proposal: dict[str, Any]) -> None:
        """Note an attempt handed to a worker; `record_attempt(..., dispatch_id=...)` clears it."""
        with self._write() as s:
            s.add(Dispatch(run_id=run_id, id=dispatch_id, node_id=node_id, proposal=json_safe(proposal),
                           created_at=_now()))

    @retry_locked()
    def dispatch_many(self, run_id: str, rows: list[tuple[str, str, dict[str, Any]]],
                      nodes: list[StrategyNode] = ()) -> None:
        """Several dispatch notes (dispatch id, node id, proposal) in one transaction, with the
        tree nodes changed since the last write (so a note never names a node the log lacks)."""
        now = _now()
        with self._write() as s:
            if nodes:
                self._upsert_nodes(s, run_id, list(nodes))
            s.add_all([Dispatch(run_id=run_id, id=d, node_id=n, proposal=json_safe(p), created_at=now)
                       for d, n, p in rows])

    @retry_locked()
    def pending(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(dispatch id, proposal) of every attempt dispatched and never recorded, oldest first."""
        with self._read() as s:
            rows = s.scalars(select(Dispatch).where(Dispatch.run_id == run_id)
                             .order_by(Dispatch.created_at, Dispatch.id))
            return [(r.id, dict(r.proposal)) for r in rows]

    @retry_locked()
    def reopen_run(self, run_id: str) -> RunInfo:
        """Mark a stopped run as running again (resume); raises KeyError for an unknown run."""
        with self._write() as s:
            row = s.get(Run, run_id)
            if row is None:
                raise KeyError(f"no run {run_id!r}")
            row.status, row.finished_at = RunStatus.running.value, None
            return _run_info(row)

    @retry_locked()
    def note_summary(self, run_id: str, **fields: Any) -> None:
        """Merge fields into a running run's summary (e.g. lost workers), so `kscout status` shows
        them before the run ends; finish_run writes the whole summary over it."""
        with self._write() as s:
            row = s.get(Run, run_id)
            if row is None:
                raise KeyError(f"no run {run_id!r}")
            row.summary = json_safe({**(row.summary or {}), **fields})

    @retry_locked()
    def set_elapsed(self, run_id: str, elapsed_s: float) -> None:
        with self._write() as s:
            s.execute(update(Run).where(Run.id == run_id).values(elapsed_s=elapsed_s))

    @retry_locked()
    def attempts(self, run_id: str, node_id: str | None = None) -> list[AttemptInfo]:
        """Summary rows (no packet) of the run's attempts, or one node's, in seq order."""
        query = select(Attempt).where(Attempt.run_id == run_id)
        if node_id is not None:
            query = query.where(Attempt.node_id == node_id)
        with self._read() as s:
            return [_attempt_info(r) for r in s.scalars(query.order_by(Attempt.seq))]

    @retry_locked()
    def packet(self, attempt_id: str) -> EvidencePacket:
        """The full evidence packet of one attempt; raises KeyError for an unknown id."""
        with self._read() as s:
            data = s.scalar(select(Attempt.packet).where(Attempt.id == attempt_id))
        if data is None:
            raise KeyError(f"no attempt {attempt_id!r}")
        return EvidencePacket.model_validate(data)

    @retry_locked()
    def spend(self, run_id: str) -> dict[str, float]:
        """Hardware seconds (compile + child processes) over the run's attempts; model dollars and
        tokens over all its model calls (planner-side calls included)."""
        with self._read() as s:
            device_s = s.scalar(select(func.coalesce(func.sum(Attempt.device_s), 0.0))
                                .where(Attempt.run_id == run_id))
            dollars, tokens = s.execute(select(func.coalesce(func.sum(LLMCallRow.dollars), 0.0),
                                               func.coalesce(func.sum(LLMCallRow.tokens_in + LLMCallRow.tokens_out), 0))
                                        .where(LLMCallRow.run_id == run_id)).one()
        return {"device_s": float(device_s), "llm_dollars": float(dollars), "llm_tokens": float(tokens)}

    @retry_locked()
    def record_llm_calls(self, run_id: str, calls: list[LLMCall], program: str = "",
                         attempt_id: str | None = None) -> None:
        """Model calls made outside an attempt (the planner's world-model updates)."""
        with self._write() as s:
            s.add_all(_call_rows(run_id, attempt_id, program, calls))

    @retry_locked()
    def llm_usage(self, run_id: str) -> list[ModelUsage]:
        """Per model: calls, failures, tokens, dollars, mean latency, outcomes."""
        with self._read() as s:
            rows = s.execute(select(LLMCallRow.model, LLMCallRow.outcome, func.count(),
                                    func.sum(LLMCallRow.tokens_in), func.sum(LLMCallRow.tokens_out),
                                    func.sum(LLMCallRow.dollars), _count_if(LLMCallRow.priced.is_(False)),
                                    func.sum(LLMCallRow.latency_s))
                             .where(LLMCallRow.run_id == run_id)
                             .group_by(LLMCallRow.model, LLMCallRow.outcome)).all()
        usage: dict[str, ModelUsage] = {}
        latency: dict[str, float] = {}
        for model, outcome, n, t_in, t_out, dollars, unpriced, lat in rows:
            u = usage.setdefault(model, ModelUsage(model=model))
            u.calls += n
            u.failed += 0 if outcome == "ok" else n
            u.tokens_in += int(t_in or 0)
            u.tokens_out += int(t_out or 0)
            u.dollars += float(dollars or 0)
            u.unpriced += int(unpriced or 0)
            u.outcomes[outcome] = n
            latency[model] = latency.get(model, 0.0) + float(lat or 0)
        for model, u in usage.items():
            u.mean_latency_s = latency[model] / u.calls if u.calls else 0.0
        return sorted(usage.values(), key=lambda u: u.model)

    @retry_locked()
    def next_seq(self, run_id: str) -> int:
        """1 + the highest seq recorded for the run (1 for a run with no attempts)."""
        with self._read() as s:
            return (s.scalar(select(func.max(Attempt.seq)).where(Attempt.run_id == run_id)) or 0) + 1

    @retry_locked()
    def has_source(self, run_id: str, source_hash: str) -> bool:
        """Whether the run already tried this source (see `source_hash` for what is hashed)."""
        with self._read() as s:
            return s.scalar(select(Attempt.id).where(
                Attempt.run_id == run_id, Attempt.source_hash == source_hash).limit(1)) is not None

    # --- aggregates -----------------------------------------------------------------------

    @retry_locked()
    def node_stats(self, run_id: str, node_id: str) -> NodeStats:
        """Attempt counts, failure classes and the best accepted speedup (eager) of one node."""
        where = (Attempt.run_id == run_id, Attempt.node_id == node_id)
        accepted = Attempt.verdict == Verdict.accepted.value
        with self._read() as s:
            total, n_accepted, n_rejected = s.execute(select(
                func.count(), _count_if(accepted), _count_if(Attempt.verdict == Verdict.rejected.value),
            ).where(*where)).one()
            best = s.execute(
                select(Attempt.id, Attempt.speedup_eager)
                .where(*where, accepted, Attempt.speedup_eager.is_not(None))
                .order_by(Attempt.speedup_eager.desc(), Attempt.seq).limit(1)).first()
            return NodeStats(attempts=total, accepted=n_accepted, rejected=n_rejected,
                             best_speedup=best.speedup_eager if best else None,
                             best_attempt_id=best.id if best else None,
                             failures=_failures(s, *where))

    @retry_locked()
    def top_attempts(self, run_id: str, k: int) -> list[AttemptInfo]:
        """The k accepted attempts with the highest speedup over eager, one per distinct source."""
        with self._read() as s:
            rows = s.scalars(select(Attempt).where(Attempt.run_id == run_id, Attempt.verdict == Verdict.accepted.value,
                                                   Attempt.speedup_eager.is_not(None))
                             .order_by(Attempt.speedup_eager.desc(), Attempt.seq).limit(8 * k))
            out, seen = [], set()
            for r in rows:
                if r.source_hash not in seen:
                    seen.add(r.source_hash)
                    out.append(_attempt_info(r))
                if len(out) == k:
                    break
            return out

    @retry_locked()
    def best_attempt(self, run_id: str, baseline: str = "torch_eager") -> AttemptInfo | None:
        """The accepted attempt with the highest speedup over `baseline` (earliest on ties)."""
        accepted = (Attempt.run_id == run_id, Attempt.verdict == Verdict.accepted.value)
        with self._read() as s:
            column = SPEEDUP_COLUMNS.get(baseline)
            if column is not None:
                row = s.scalars(select(Attempt).where(*accepted, column.is_not(None))
                                .order_by(column.desc(), Attempt.seq).limit(1)).first()
                return _attempt_info(row) if row is not None else None
            # Any other baseline lives only in the packets: rank them here.
            best: tuple[float, Attempt] | None = None
            for row in s.scalars(select(Attempt).where(*accepted).order_by(Attempt.seq)):
                value = EvidencePacket.model_validate(row.packet).speedup(baseline)
                if value is not None and (best is None or value > best[0]):
                    best = (value, row)
            return _attempt_info(best[1]) if best else None

    @retry_locked()
    def verdict_counts(self, run_id: str) -> VerdictCounts:
        """How many attempts compiled, verified, were accepted or rejected, and why."""
        where = Attempt.run_id == run_id
        with self._read() as s:
            total, compiled, verified, accepted, rejected = s.execute(select(
                func.count(),
                _count_if(Attempt.compiled.is_(True)),
                _count_if(Attempt.verified.is_(True)),
                _count_if(Attempt.verdict == Verdict.accepted.value),
                _count_if(Attempt.verdict == Verdict.rejected.value),
            ).where(where)).one()
            return VerdictCounts(attempts=total, compiled=compiled, verified=verified,
                                 accepted=accepted, rejected=rejected, failures=_failures(s, where))

    # --- baselines ------------------------------------------------------------------------

    @retry_locked()
    def record_baseline(self, run_id: str, name: str, shape: str, timing: Timing) -> None:
        """Store (or re-measure: overwrite) the timing of one baseline on one shape."""
        values = {"run_id": run_id, "name": name, "shape": shape,
                  "timing": json_safe(timing.model_dump(mode="json")), "recorded_at": _now()}
        stmt = self._insert(Baseline).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "name", "shape"],
            set_={"timing": stmt.excluded.timing, "recorded_at": stmt.excluded.recorded_at})
        with self._write() as s:
            s.execute(stmt)

    @retry_locked()
    def baselines(self, run_id: str, shape: str | None = None) -> dict[str, Timing]:
        """Baseline name -> timing. Pass `shape` when a run timed several shapes; otherwise
        the most recently recorded shape wins for each name."""
        query = select(Baseline).where(Baseline.run_id == run_id)
        if shape is not None:
            query = query.where(Baseline.shape == shape)
        with self._read() as s:
            rows = s.scalars(query.order_by(Baseline.recorded_at, Baseline.shape))
            return {r.name: Timing.model_validate(r.timing) for r in rows}
