"""The experiment log at scale: write throughput and query latency at 1M attempts.

    python bench/db_scale.py [--rows 1000000] [--timed-writes 3000] URL [URL ...]

For each database URL (sqlite:///path.db, postgresql+psycopg://...):

1. timed writes: `Store.record_attempt` one transaction per attempt, exactly as the driver writes,
   with a realistic packet (a verified attempt: 18 verification cases, timings, roofline), each
   clearing its dispatch note (the resume protocol) -- attempts per second;
2. fill: the attempts table is bulk-loaded to --rows rows over 1,000 nodes (compact packets);
3. query latency at that size, median of 15 calls: the queries the planner and the CLI make
   (next_seq, node_stats, best_attempt, verdict_counts, one node's attempts, pending, spend).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.evidence import (BenchResult, Candidate, CaseResult, CompileResult, EvidencePacket,  # noqa: E402
                              Roofline, Timing, Verdict, VerifyResult)
from memory.models import Attempt  # noqa: E402
from memory.store import Store, json_safe  # noqa: E402

RUN = "scale-run"


def realistic_packet(i: int) -> EvidencePacket:
    t = Timing(warmup=3, repeats=20, median_s=1e-3, q1_s=0.98e-3, q3_s=1.03e-3, min_s=0.95e-3, mean_s=1.01e-3)
    p = EvidencePacket(candidate=Candidate(source="// kernel\n" + "x = y + z;\n" * 150, workload="bias_gelu",
                                           strategy="fused; AVX2 x4; OpenMP over rows", node_id=f"n{i % 1000}",
                                           params={"fuse": "fused", "vector": "avx2", "unroll": 4}),
                       run_id=RUN)
    p.compile = CompileResult(ok=True, command=["g++", "-O3", "-march=native"], log="", seconds=0.4)
    p.verify = VerifyResult(ok=True, varies_with_input=True, cases=[
        CaseResult(shape=f"s{k}", dims={"M": 64, "N": 1000}, seed=k % 2, distribution="normal", max_abs_err=1e-7,
                   max_rel_err=1e-6, passed=True, err_vs_fp64=3.0, ref_err_vs_fp64=1.0, rel_l2=1e-7)
        for k in range(18)])
    p.bench = BenchResult(shape="bench", dims={"M": 2048, "N": 4096}, candidate=t, baselines={"torch_eager": t},
                          speedup={"torch_eager": 1.0 + (i % 97) / 10}, interleaved={"torch_eager": t},
                          roofline=Roofline(flops=1e8, bytes=1e8, achieved_gflops=50, achieved_gbps=30,
                                            arithmetic_intensity=1.0, sol=0.7))
    p.verdict = Verdict.accepted
    return p


def compact_row(i: int, seq: int) -> dict:
    accepted = i % 3 != 0
    return dict(id=uuid.uuid4().hex[:12], run_id=RUN, seq=seq, node_id=f"n{i % 1000}", backend="cpu_cpp",
                source_hash=uuid.uuid4().hex, verdict="accepted" if accepted else "rejected",
                failure_class=None if accepted else "wrong_result", failure_message="",
                speedup_eager=1.0 + (i % 97) / 10 if accepted else None, speedup_naive=None,
                median_s=1e-3 if accepted else None, compiled=True, verified=accepted, wall_s=5.0, device_s=2.4,
                created_at=datetime.now(timezone.utc),
                packet={"id": "x", "cost": {"device_s": 2.0, "compile_s": 0.4, "llm_dollars": 0.0},
                        "verdict": "accepted" if accepted else "rejected"})


def median_ms(fn, n: int = 15) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def one(url: str, rows: int, timed: int) -> dict:
    store = Store.open(url)
    store.create_run(RUN, "bias_gelu", "fp", {}, {})
    size = len(realistic_packet(0).model_dump_json())
    t0 = time.perf_counter()
    for i in range(timed):
        d = f"d{i}"
        store.dispatch(RUN, d, f"n{i % 1000}", {"node_id": f"n{i % 1000}", "params": {}, "strategy": "s"})
        store.record_attempt(RUN, i + 1, realistic_packet(i), dispatch_id=d, elapsed_s=float(i))
    write_s = time.perf_counter() - t0
    seq = timed
    t0 = time.perf_counter()
    with store.engine.begin() as con:
        chunk = 20_000
        for start in range(timed, rows, chunk):
            batch = [compact_row(i, (seq := seq + 1)) for i in range(start, min(rows, start + chunk))]
            con.execute(Attempt.__table__.insert(), batch)
            print(f"  {url.split(':')[0]}: {min(rows, start + chunk):,} rows", end="\r", flush=True)
    fill_s = time.perf_counter() - t0
    q = {
        "next_seq": median_ms(lambda: store.next_seq(RUN)),
        "node_stats": median_ms(lambda: store.node_stats(RUN, "n7")),
        "best_attempt": median_ms(lambda: store.best_attempt(RUN)),
        "verdict_counts": median_ms(lambda: store.verdict_counts(RUN), 5),
        "attempts(node)": median_ms(lambda: store.attempts(RUN, "n7"), 5),
        "pending": median_ms(lambda: store.pending(RUN)),
        "spend": median_ms(lambda: store.spend(RUN), 3),
    }
    store.close()
    return {"url": url.split("://")[0], "packet_bytes": size, "writes_per_s": timed / write_s,
            "write_ms": write_s / timed * 1e3, "fill_rows_per_s": (rows - timed) / fill_s, "queries_ms": q}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--timed-writes", type=int, default=3000)
    args = ap.parse_args()
    res = [one(u, args.rows, args.timed_writes) for u in args.urls]
    names = list(res[0]["queries_ms"])
    print(f"\n{args.rows:,} attempts; timed writes: {args.timed_writes} (one transaction each, dispatch cleared)\n")
    print("| database | packet (bytes) | writes/s | ms/write | " + " | ".join(f"{n} (ms)" for n in names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for r in res:
        print(f"| {r['url']} | {r['packet_bytes']:,} | {r['writes_per_s']:.0f} | {r['write_ms']:.2f} | "
              + " | ".join(f"{r['queries_ms'][n]:.1f}" for n in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
