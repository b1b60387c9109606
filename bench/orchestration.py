"""The cost of orchestration: planner + queues + database writer, with SIMULATED hardware.

For each worker count, a real SearchLoop (the world-model planner over a large synthetic
strategy space, a real SQLite experiment log, real Ray) drives simulated workers whose attempts
each sleep `--attempt-s` and return a speedup from a seeded landscape (search/simulated.py).
Reported per worker count, all in one run so the ratios compare like with like:

- attempts/s through the loop, and the ideal (workers / attempt time);
- worker utilisation: simulated busy seconds / (workers x wall seconds of the search);
- the driver's time per attempt, split into planner (select + record), dispatch notes and
  attempt records (database), and the rest (Ray submission, waiting, packet files).

    .venv/bin/python bench/orchestration.py --workers 1 8 64 256 --attempt-s 1.0 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from memory.store import Store  # noqa: E402
from search.budget import Budget  # noqa: E402
from search.driver import NodeBuffer, SearchLoop  # noqa: E402
from search.planner import NodeLog, PlannerConfig, WorldModelPlanner  # noqa: E402
from search.simulated import SimulatedProposer, simulated_workers, synthetic_family  # noqa: E402

FAMILY = dict(strategy_axes=10, values=3, tunable_axes=3, tunable_values=8)


class Timed:
    """Wraps a callable, summing the seconds spent in it (the bench's own instrument)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls, self.depth = fn, 0.0, 0, 0

    def __call__(self, *a, **kw):
        self.depth += 1              # select() calls itself after a tree update: count the outer call
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - t0
                self.calls += 1


def one(workers: int, attempt_s: float, rounds: int, db_dir: Path) -> dict:
    attempts = max(20, rounds * workers)
    store = Store.open(f"sqlite:///{db_dir / f'w{workers}.db'}")
    run_id = f"sim-{workers}"
    store.create_run(run_id, "simulated", "-", {}, {})
    family = synthetic_family(**FAMILY)
    nodes = NodeBuffer(store, run_id)
    planner = WorldModelPlanner(family, lambda n: NodeLog(**store.node_stats(run_id, n).model_dump()),
                                PlannerConfig(patience=3, max_refinements=6), on_update=nodes.note)
    planner.seed_root()
    # the bench's instruments: time spent in the planner and in each kind of database write
    planner.select, planner.record = Timed(planner.select), Timed(planner.record)
    store.dispatch_many, store.record_attempts = Timed(store.dispatch_many), Timed(store.record_attempts)
    store.upsert_nodes = Timed(store.upsert_nodes)
    handles = simulated_workers(workers, attempt_s)
    proposer = SimulatedProposer.options(max_concurrency=8).remote(FAMILY)
    loop = SearchLoop(planner=planner, proposer=proposer, workers=handles, store=store, run_id=run_id,
                      packets_dir=db_dir / f"packets-{workers}", budget=Budget(attempts, 1e9), queue_depth=2,
                      nodes=nodes)
    loop.run_first(planner.select_root())
    t0 = time.perf_counter()
    loop.run()
    wall = time.perf_counter() - t0
    done = store.verdict_counts(run_id).attempts - 1
    busy = done * attempt_s
    planner_s = planner.select.seconds + planner.record.seconds
    db_s = store.dispatch_many.seconds + store.record_attempts.seconds + store.upsert_nodes.seconds
    store.close()
    return {"workers": workers, "attempts": done, "wall_s": wall, "rate": done / wall, "ideal": workers / attempt_s,
            "util": busy / (workers * wall), "planner_ms": planner_s / done * 1e3, "db_ms": db_s / done * 1e3,
            "db_writes": store.dispatch_many.calls + store.record_attempts.calls + store.upsert_nodes.calls,
            "tree": len(planner.tree)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--attempt-s", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=4, help="attempts per worker (at least 20 attempts)")
    args = ap.parse_args()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.workers:
            rows.append(one(n, args.attempt_s, args.rounds, Path(tmp)))
            r = rows[-1]
            print(f"{r['workers']:>4} workers: {r['attempts']} attempts in {r['wall_s']:.1f} s", flush=True)
    print(f"\nsimulated attempt {args.attempt_s:g} s; SQLite log; {os.cpu_count()} cores")
    print(f"{'workers':>8}{'attempts':>9}{'att/s':>8}{'ideal':>8}{'util':>7}{'planner ms':>12}{'db ms':>8}"
          f"{'driver busy':>12}{'tree':>7}")
    for r in rows:
        # the share of the driver's wall time spent planning and writing the log (the rest: Ray
        # submission and waiting on workers)
        driver = (r["planner_ms"] + r["db_ms"]) * r["rate"] / 1e3
        print(f"{r['workers']:>8}{r['attempts']:>9}{r['rate']:>8.1f}{r['ideal']:>8.1f}{r['util']:>7.0%}"
              f"{r['planner_ms']:>12.2f}{r['db_ms']:>8.2f}{driver:>12.0%}{r['tree']:>7}")


if __name__ == "__main__":
    main()
