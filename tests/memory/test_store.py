"""The SQL experiment log against real databases: SQLite files always, PostgreSQL when
KSCOUT_TEST_PG_URL names a server (start one with tests/memory/pg_server.sh)."""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from harness.evidence import (
    BenchResult,
    Candidate,
    CaseResult,
    CompileResult,
    Cost,
    Environment,
    EvidencePacket,
    FailureClass,
    Roofline,
    Timing,
    Verdict,
    VerifyResult,
)
from memory import RunStatus, Store
from memory.models import Base
from memory.store import MIGRATIONS, StoreOpenError, retry_locked
from search.node import NodeStatus, StrategyNode

PG_ENV = "KSCOUT_TEST_PG_URL"
RUN = "run-1"
SOURCE = 'extern "C" void kscout_forward(const float* x, float* y, long n) { for (long i = 0; i < n; ++i) y[i] = x[i]; }\n'


# --- databases ------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def url(request, tmp_path) -> str:
    """A fresh, empty database per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'log' / 'kscout.db'}"
        return
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (start a server: export {PG_ENV}=$(tests/memory/pg_server.sh))")
    name = f"kscout_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - report why, then skip
        admin.dispose()
        pytest.skip(f"cannot create a test database on {PG_ENV}: {e}")
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def store(url):
    s = Store.open(url)
    s.create_run(RUN, "softmax", "fp-1", {"budget": 10}, {"host": "test"}, workload_spec={"op": "softmax"})
    yield s
    s.close()


# --- evidence -------------------------------------------------------------------------------

def timing(median: float) -> Timing:
    return Timing(warmup=3, repeats=20, median_s=median, q1_s=median * 0.98, q3_s=median * 1.03,
                  min_s=median * 0.95, mean_s=median * 1.01)


def packet(node_id: str | None = "n1", *, eager: float | None = 2.0, naive: float | None = 6.0,
           failure: FailureClass | None = None, source: str = SOURCE, extra: dict[str, float] | None = None,
           run_id: str | None = RUN) -> EvidencePacket:
    """A packet shaped like the harness makes them: stages present up to the failing one."""
    cand = Candidate(source=source, workload="softmax", strategy="vectorize rows", node_id=node_id,
                     params={"vec": 8})
    key = hashlib.sha256(("flags\0" + source).encode()).hexdigest()
    p = EvidencePacket(candidate=cand, run_id=run_id, workload_path="workloads/softmax",
                       cost=Cost(wall_s=1.5, compile_s=0.7, verify_s=0.3, bench_s=0.5))
    if failure in (FailureClass.bad_candidate,):
        return p.reject(failure, "empty source")
    p.compile = CompileResult(ok=failure != FailureClass.compile_error, command=["c++", "-O3"],
                              log="", seconds=0.7, source_hash=key)
    if failure == FailureClass.compile_error:
        p.compile.failure = failure
        return p.reject(failure, "error: expected ';'")
    ok = failure is None
    p.verify = VerifyResult(ok=ok, failure=failure, message="" if ok else "mismatch", varies_with_input=True,
                            cases=[CaseResult(shape="small", dims={"n": 64}, seed=0, distribution="normal",
                                              max_abs_err=1e-7 if ok else math.inf, max_rel_err=1e-6,
                                              passed=ok)])
    speedup = {k: v for k, v in {"torch_eager": eager, "naive_cpp": naive, **(extra or {})}.items() if v is not None}
    p.bench = BenchResult(shape="bench", dims={"n": 4096}, candidate=timing(1e-4),
                          baselines={"torch_eager": timing(2e-4)}, speedup=speedup,
                          roofline=Roofline(flops=1e4, bytes=3e4, achieved_gflops=0.1, achieved_gbps=0.3,
                                            arithmetic_intensity=0.33))
    if ok:
        p.verdict = Verdict.accepted
    else:
        p.reject(failure, "case small/seed 0: max_abs_err inf")
    return p


def record(store: Store, p: EvidencePacket) -> str:
    return store.record_attempt(RUN, store.next_seq(RUN), p)


# --- schema ---------------------------------------------------------------------------------

def test_migrated_schema_matches_models(url):
    with Store.open(url) as s, s.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diffs == []


def test_migrate_twice_is_a_noop(url):
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with Store.open(url) as s:
        s.create_run("r", "w", "f", {}, {})
        tables = sorted(inspect(s.engine).get_table_names())
        s.migrate()
    with Store.open(url) as s, s.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert sorted(inspect(s.engine).get_table_names()) == tables
        assert [r.id for r in s.runs()] == ["r"]
    assert {"alembic_version", "workloads", "runs", "nodes", "attempts", "baselines"} <= set(tables)


def test_downgrade_to_base_and_back(url):
    with Store.open(url) as s:
        with s.engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(s.engine).get_table_names()) <= {"alembic_version"}
        s.migrate()
        s.create_run("r", "w", "f", {}, {})
        assert s.get_run("r") is not None


def test_timestamps_come_back_in_utc(store):
    p = packet()
    p.created_at = datetime(2026, 5, 20, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    store.record_attempt(RUN, 1, p)
    assert store.attempts(RUN)[0].created_at == datetime(2026, 5, 20, 12, 30, tzinfo=timezone.utc)
    assert store.attempts(RUN)[0].created_at.utcoffset() == timedelta(0)


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def test_sqlite_file_settings(tmp_path):
    path = tmp_path / "deep" / "er" / "log.db"
    with Store.open(f"sqlite:///{path}") as s, s.engine.connect() as conn:
        assert path.exists()
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0


def test_unsupported_database_is_refused():
    with pytest.raises(ValueError, match="unsupported database"):
        Store.open("mysql://u@localhost/db")


# --- runs -----------------------------------------------------------------------------------

def test_run_lifecycle(store):
    run = store.get_run(RUN)
    assert run.status == RunStatus.running and run.workload == "softmax" and run.workload_fingerprint == "fp-1"
    assert run.config == {"budget": 10} and run.environment == {"host": "test"}
    assert run.started_at.tzinfo is not None and run.finished_at is None
    store.finish_run(RUN, "finished", {"best": 2.5, "attempts": 3})
    run = store.get_run(RUN)
    assert run.status == RunStatus.finished and run.summary == {"best": 2.5, "attempts": 3}
    assert run.finished_at >= run.started_at
    store.create_run("run-2", "softmax", "fp-1", {}, {})   # same workload version: no conflict
    assert [r.id for r in store.runs()] == [RUN, "run-2"]
    assert store.get_run("nope") is None
    with pytest.raises(ValueError, match="already exists"):
        store.create_run(RUN, "softmax", "fp-1", {}, {})
    with pytest.raises(KeyError):
        store.finish_run("nope", RunStatus.failed, {})
    with pytest.raises(ValueError):
        store.finish_run(RUN, "exploded", {})


# --- attempts -------------------------------------------------------------------------------

def test_packet_round_trip(store):
    p = packet(failure=FailureClass.wrong_result)
    p.environment = Environment(hostname="h", platform="linux", cpu="x86", cores=8, threads=16,
                                python="3.11", harness="0.1", tolerances={"float32": {"atol": 1e-5}})
    p.artifacts = {"stderr": "line 1\nline 2 ✓"}
    assert store.record_attempt(RUN, 1, p) == p.id
    back = store.packet(p.id)
    assert back == p                                    # every field, including the Inf error
    assert back.verify.cases[0].max_abs_err == math.inf
    with pytest.raises(KeyError):
        store.packet("missing")


def test_packet_without_run_id_is_stamped_and_foreign_packet_refused(store):
    p = packet(run_id=None)
    store.record_attempt(RUN, 1, p)
    assert store.packet(p.id).run_id == RUN
    with pytest.raises(ValueError, match="belongs to run"):
        store.record_attempt(RUN, 2, packet(run_id="other"))


def test_attempt_summary_columns(store):
    ok = packet(eager=2.5, naive=7.0)
    wrong = packet(failure=FailureClass.wrong_result, eager=9.0)
    bad = packet(failure=FailureClass.bad_candidate, source="")
    for p in (ok, wrong, bad):
        record(store, p)
    a_ok, a_wrong, a_bad = store.attempts(RUN)
    assert [a.seq for a in (a_ok, a_wrong, a_bad)] == [1, 2, 3]
    assert a_ok.verdict == Verdict.accepted and a_ok.failure_class is None
    assert (a_ok.compiled, a_ok.verified, a_ok.speedup_eager, a_ok.speedup_naive) == (True, True, 2.5, 7.0)
    assert a_ok.median_s == 1e-4 and a_ok.wall_s == 1.5 and a_ok.backend == "cpu_cpp" and a_ok.node_id == "n1"
    assert a_ok.source_hash == ok.compile.source_hash
    assert a_wrong.verdict == Verdict.rejected and a_wrong.failure_class == FailureClass.wrong_result
    assert (a_wrong.compiled, a_wrong.verified) == (True, False)
    assert a_bad.failure_class == FailureClass.bad_candidate and a_bad.failure_message == "empty source"
    assert (a_bad.compiled, a_bad.verified, a_bad.speedup_eager, a_bad.median_s) == (False, False, None, None)
    assert a_bad.source_hash == hashlib.sha256(b"").hexdigest()   # no compile key: hash of the source
    assert a_ok.created_at == ok.created_at


def test_seq_source_and_node_filter(store):
    assert store.next_seq(RUN) == 1
    p1, p2 = packet("n1"), packet("n2", source=SOURCE + "// v2\n")
    record(store, p1)
    record(store, p2)
    assert store.next_seq(RUN) == 3
    assert store.has_source(RUN, p1.compile.source_hash)
    assert not store.has_source(RUN, "0" * 64)
    assert not store.has_source("other-run", p1.compile.source_hash)
    assert [a.id for a in store.attempts(RUN, node_id="n2")] == [p2.id]
    assert store.attempts("other-run") == []
    with pytest.raises(IntegrityError):
        store.record_attempt(RUN, 2, packet())           # seq 2 is taken
    with pytest.raises(IntegrityError):
        store.record_attempt("no-such-run", 1, packet(run_id="no-such-run"))   # foreign key


def test_node_stats_aggregates(store):
    for p in (packet("n1", eager=1.5), packet("n1", eager=3.0), packet("n1", eager=3.0),
              packet("n1", failure=FailureClass.wrong_result, eager=50.0),   # fast but wrong
              packet("n1", failure=FailureClass.compile_error),
              packet("n1", failure=FailureClass.compile_error),
              packet("n2", eager=10.0)):
        record(store, p)
    first_best = store.attempts(RUN, "n1")[1].id                              # earliest of the tie
    stats = store.node_stats(RUN, "n1")
    assert (stats.attempts, stats.accepted, stats.rejected) == (6, 3, 3)
    assert stats.best_speedup == 3.0 and stats.best_attempt_id == first_best
    assert stats.failures == {"compile_error": 2, "wrong_result": 1}
    empty = store.node_stats(RUN, "never-tried")
    assert (empty.attempts, empty.best_speedup, empty.best_attempt_id, empty.failures) == (0, None, None, {})


def test_verdict_counts_and_best_attempt(store):
    assert store.best_attempt(RUN) is None
    assert store.verdict_counts(RUN).attempts == 0
    fast_eager = packet(eager=4.0, naive=5.0, extra={"torch_compile": 1.1})
    fast_naive = packet(eager=3.0, naive=9.0, extra={"torch_compile": 1.7})
    for p in (fast_eager, fast_naive, packet(failure=FailureClass.wrong_result, eager=99.0),
              packet(failure=FailureClass.compile_error), packet(failure=FailureClass.bad_candidate, source="")):
        record(store, p)
    counts = store.verdict_counts(RUN)
    assert (counts.attempts, counts.compiled, counts.verified, counts.accepted, counts.rejected) == (5, 3, 2, 2, 3)
    assert counts.failures == {"bad_candidate": 1, "compile_error": 1, "wrong_result": 1}
    assert store.best_attempt(RUN).id == fast_eager.id
    assert store.best_attempt(RUN, "naive_cpp").id == fast_naive.id
    assert store.best_attempt(RUN, "torch_compile").id == fast_naive.id   # from the packets
    assert store.best_attempt(RUN, "unknown_baseline") is None


# --- nodes and baselines --------------------------------------------------------------------

def test_node_upsert_and_update(store):
    root = StrategyNode(id="n0", family="rowwise", description="naive", params={"vec": 1}, seq=0)
    child = StrategyNode(id="n1", parent_id="n0", family="rowwise", move="vectorize", depth=1,
                         description="naive; vectorize x8", params={"vec": 8}, priority=1.2, seq=1)
    store.upsert_node(RUN, child)
    store.upsert_node(RUN, root)
    assert store.nodes(RUN) == [root, child]                 # ordered by seq, not by insertion
    updated = child.model_copy(update={"status": NodeStatus.expanded, "attempts": 4, "accepted": 2,
                                       "best_speedup": 2.5, "best_attempt_id": "abc",
                                       "best_params": {"vec": 8, "unroll": 2}, "note": "stagnated"})
    store.upsert_node(RUN, updated)
    assert store.nodes(RUN) == [root, updated]
    assert store.nodes("other-run") == []


def test_baselines(store):
    store.record_baseline(RUN, "torch_eager", "bench", timing(2e-4))
    store.record_baseline(RUN, "naive_cpp", "bench", timing(6e-4))
    store.record_baseline(RUN, "torch_eager", "bench", timing(2.2e-4))   # re-measured: replaces
    store.record_baseline(RUN, "torch_eager", "small", timing(1e-6))
    assert store.baselines(RUN, shape="bench") == {"torch_eager": timing(2.2e-4), "naive_cpp": timing(6e-4)}
    assert store.baselines(RUN, shape="small") == {"torch_eager": timing(1e-6)}
    assert store.baselines(RUN)["torch_eager"] == timing(1e-6)          # latest shape wins
    assert store.baselines("other-run") == {}


# --- persistence ----------------------------------------------------------------------------

def test_everything_survives_reopening(url):
    node = StrategyNode(id="n1", family="rowwise", params={"vec": 4}, seq=3, best_speedup=2.0)
    p = packet("n1", eager=2.0)
    with Store.open(url) as s:
        s.create_run(RUN, "softmax", "fp-1", {"budget": 10}, {"host": "test"})
        s.upsert_node(RUN, node)
        s.record_attempt(RUN, 1, p)
        s.record_baseline(RUN, "torch_eager", "bench", timing(2e-4))
        s.finish_run(RUN, RunStatus.interrupted, {"reason": "ctrl-c"})
    with Store.open(url) as s:
        assert s.get_run(RUN).status == RunStatus.interrupted
        assert s.get_run(RUN).summary == {"reason": "ctrl-c"}
        assert s.nodes(RUN) == [node]
        assert s.packet(p.id) == p
        assert s.node_stats(RUN, "n1").best_attempt_id == p.id
        assert s.baselines(RUN) == {"torch_eager": timing(2e-4)}
        assert s.next_seq(RUN) == 2


def _mp():
    """fork where there is one: spawn re-imports the test module in every child (seconds)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _worker(url: str, worker: int, n: int) -> None:
    with Store.open(url) as s:           # every worker also races to migrate the fresh file
        for i in range(n):
            p = packet(f"n{worker}", run_id="shared", source=f"{SOURCE}// {worker}.{i}\n")
            s.record_attempt("shared", worker * 1000 + i, p)


def test_concurrent_processes_share_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Store.open(url) as s:
        s.create_run("shared", "softmax", "fp-1", {}, {})
    ctx = _mp()
    procs = [ctx.Process(target=_worker, args=(url, w, 25)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    with Store.open(url) as s:
        assert s.verdict_counts("shared").attempts == 100
        assert s.node_stats("shared", "n3").accepted == 25


def test_concurrent_first_open_migrates_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    ctx = _mp()
    procs = [ctx.Process(target=Store.open, args=(url,)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    with Store.open(url) as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def test_retry_on_transient_lock_only():
    calls = []

    @retry_locked(attempts=4, base_delay=0)
    def flaky(error: str) -> str:
        calls.append(error)
        if len(calls) < 3:
            raise OperationalError("INSERT INTO attempts ...", {}, sqlite3.OperationalError(error))
        return "done"

    assert flaky("database is locked") == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(OperationalError, match="no such table"):
        flaky("no such table: attempts")       # not transient: raised at once
    assert len(calls) == 1


# --- resume: dispatches, elapsed time, spend ------------------------------------------------

def test_recording_an_attempt_clears_its_dispatch_in_the_same_transaction(store):
    store.dispatch(RUN, "d1", "n1", {"node_id": "n1", "params": {"vec": 8}, "strategy": "s"})
    store.dispatch(RUN, "d2", "n1", {"node_id": "n1", "params": {"vec": 16}, "strategy": "s"})
    assert [d for d, _ in store.pending(RUN)] == ["d1", "d2"]
    store.record_attempt(RUN, 1, packet(), dispatch_id="d1", elapsed_s=12.5)
    assert [(d, p["params"]) for d, p in store.pending(RUN)] == [("d2", {"vec": 16})]
    assert store.get_run(RUN).elapsed_s == 12.5
    # a failed insert (duplicate seq) must leave the dispatch in place
    with pytest.raises(IntegrityError):
        store.record_attempt(RUN, 1, packet(), dispatch_id="d2", elapsed_s=99.0)
    assert [d for d, _ in store.pending(RUN)] == ["d2"] and store.get_run(RUN).elapsed_s == 12.5


def test_reopen_and_spend(store):
    store.finish_run(RUN, "interrupted", {"stop_reason": "interrupted (Ctrl-C)"})
    assert store.reopen_run(RUN).status.value == "running" and store.get_run(RUN).finished_at is None
    record(store, packet())
    record(store, packet(failure=FailureClass.compile_error))
    spend = store.spend(RUN)
    assert spend["device_s"] == pytest.approx(2 * 0.7) and spend["llm_dollars"] == 0.0
    with pytest.raises(KeyError):
        store.reopen_run("no-such-run")


def test_unusable_databases_are_named_with_a_fix_and_left_untouched(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreOpenError, match="cannot open the experiment log.*Nothing was changed"):
        Store.open(f"sqlite:///{corrupt}")
    assert corrupt.read_bytes() == b"not a database" * 100
    newer = tmp_path / "newer.db"
    Store.open(f"sqlite:///{newer}").close()
    con = sqlite3.connect(newer)
    con.execute("update alembic_version set version_num = '9999'")
    con.commit()
    con.close()
    before = newer.read_bytes()
    with pytest.raises(StoreOpenError, match="newer kscout"):
        Store.open(f"sqlite:///{newer}")
    assert newer.read_bytes() == before
    with pytest.raises(StoreOpenError, match="server is running"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/kscout")
