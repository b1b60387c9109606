"""The cost of orchestration: planner + queues + database writer, with SIMULATED hardware.

For each worker count, a real SearchLoop (the world-model planner over a large synthetic
strategy space, a real SQLite experiment log, real Ray) drives simulated workers whose attempts
each sleep `--attempt-s` and return a speedup from a seeded landscape (search/simulated.py).
Reported per worker count, all in one run so the ratios compare like with like:

- attempts/s through the loop, and the ideal (workers / attempt time);
- worker utilisation: simulated busy seconds / (workers x wall seconds of the search);
- the driver's time per attempt, split into planner (select + record), dispatch notes and
  attempt records (database), and the rest (Ray submission, waiting, packet files);
- the loop thread's own CPU time per attempt and as a share of wall time (Python's
  thread_time: planning, log writes, Ray calls, packet files; 100% = the thread never waits);
- the whole machine's CPU use during the search (all cores, every process: Ray's raylet, GCS and
  worker processes too), which says whether the loop is waiting on itself or on a full machine.

    .venv/bin/python bench/orchestration.py --workers 1 8 64 256 --attempt-s 1.0 --rounds 4 \
        --plot docs/img/orchestration.png

`--plot` draws utilisation and attempts/s against the worker count with plotly and renders it to
PNG with a headless Chromium (plotly's own image export needs kaleido, which is not a dependency).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import subprocess
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
from search.driver import NodeBuffer, SearchLoop, run_loops  # noqa: E402
from search.planner import NodeLog, PlannerConfig, WorldModelPlanner  # noqa: E402
from agents.offline import OfflineProposer  # noqa: E402
from search.simulated import SIMULATED, SimulatedProposer, simulated_workers, synthetic_family  # noqa: E402

FAMILY = dict(strategy_axes=10, values=3, tunable_axes=3, tunable_values=8)


class Timed:
    """Wraps a callable, summing the seconds spent in it (the bench's own instrument)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls, self.depth = fn, 0.0, 0, 0

    def __call__(self, *a, **kw):
        self.depth += 1              # count the outermost call only, should one ever nest
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.seconds += time.perf_counter() - t0
                self.calls += 1


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot, from /proc/stat (Linux): the whole
    machine's CPU, so Ray's raylet, GCS and worker processes count along with the driver."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]   # idle + iowait
    return sum(fields) - idle, sum(fields)


def one(workers: int, attempt_s: float, rounds: int, db_dir: Path, propose_locally: bool = True,
        targets: int = 1) -> dict:
    """One measurement: `workers` simulated workers split over `targets` runs (one loop each, all
    driven by search.driver.run_loops, as a multi-target search is), logging to one database."""
    attempts = max(20, rounds * workers)
    db_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(f"sqlite:///{db_dir / f'w{workers}.db'}")
    # the bench's instruments: time spent in each kind of database write, and (below) in the planners
    store.dispatch_many, store.record_attempts = Timed(store.dispatch_many), Timed(store.record_attempts)
    store.upsert_nodes = Timed(store.upsert_nodes)
    family = synthetic_family(**FAMILY)
    proposer = SimulatedProposer.options(max_concurrency=8).remote(FAMILY)
    local = OfflineProposer(SIMULATED, family, backend=SIMULATED).propose if propose_locally else None
    loops, planners, runs = [], [], []
    for t in range(targets):
        run_id = f"sim-{workers}-{t}"
        store.create_run(run_id, "simulated", "-", {}, {})
        nodes = NodeBuffer(store, run_id)
        planner = WorldModelPlanner(family, lambda n, run_id=run_id: NodeLog(**store.node_stats(run_id, n).model_dump()),
                                    PlannerConfig(patience=3, max_refinements=6), on_update=nodes.note)
        planner.seed_root()
        planner.select, planner.record = Timed(planner.select), Timed(planner.record)
        share = workers // targets + (t < workers % targets)
        loop = SearchLoop(planner=planner, proposer=proposer, workers=simulated_workers(share, attempt_s),
                          store=store, run_id=run_id, packets_dir=db_dir / f"packets-{workers}-{t}",
                          budget=Budget(max(1, attempts * share // workers), 1e9), queue_depth=2, nodes=nodes,
                          propose_locally=local, lane=f"t{t}")
        loop.run_first(planner.select_root())
        loops.append(loop)
        planners.append(planner)
        runs.append(run_id)
    b0, t0_ticks = cpu_ticks()
    t0, c0 = time.perf_counter(), time.thread_time()
    run_loops(loops)
    wall, thread_s = time.perf_counter() - t0, time.thread_time() - c0
    b1, t1_ticks = cpu_ticks()
    done = sum(store.verdict_counts(r).attempts - 1 for r in runs)
    busy = done * attempt_s
    planner_s = sum(p.select.seconds + p.record.seconds for p in planners)
    db_s = store.dispatch_many.seconds + store.record_attempts.seconds + store.upsert_nodes.seconds
    store.close()
    return {"workers": workers, "targets": targets, "attempts": done, "wall_s": wall, "rate": done / wall,
            "ideal": workers / attempt_s, "util": busy / (workers * wall), "planner_ms": planner_s / done * 1e3,
            "db_ms": db_s / done * 1e3,
            "db_writes": store.dispatch_many.calls + store.record_attempts.calls + store.upsert_nodes.calls,
            "tree": sum(len(p.tree) for p in planners), "proposer": "driver" if propose_locally else "actor",
            "cpu": (b1 - b0) / max(t1_ticks - t0_ticks, 1), "thread_ms": thread_s / done * 1e3,
            "thread_busy": thread_s / wall}


def plot(rows: list[dict], attempt_s: float, out: Path) -> None:
    """Utilisation and attempts/s vs workers, as a PNG (or HTML when `out` ends in .html)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    xs = [str(r["workers"]) for r in rows]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("worker utilisation", "attempts per second"))
    fig.add_trace(go.Bar(x=xs, y=[r["util"] * 100 for r in rows], name="busy %", showlegend=False,
                         text=[f"{r['util']:.0%}" for r in rows], textposition="outside"), row=1, col=1)
    fig.add_hline(y=90, line_dash="dash", annotation_text="goal 90%", row=1, col=1)
    fig.add_trace(go.Bar(x=xs, y=[r["rate"] for r in rows], name="measured",
                         text=[f"{r['rate']:.0f}" for r in rows], textposition="outside"), row=1, col=2)
    fig.add_trace(go.Scatter(x=xs, y=[r["ideal"] for r in rows], name="ideal (workers / attempt time)",
                             mode="lines+markers"), row=1, col=2)
    fig.update_xaxes(title_text="simulated workers", type="category")
    fig.update_yaxes(range=[0, 110], title_text="% of worker time", row=1, col=1)
    fig.update_yaxes(type="log", title_text="attempts / s (log)", row=1, col=2)
    fig.update_layout(title=f"Orchestration with SIMULATED {attempt_s:g} s attempts on {os.cpu_count()} cores",
                      width=1100, height=450, template="plotly_white", legend=dict(x=0.55, y=1.0))
    if out.suffix == ".html":
        fig.write_html(out, include_plotlyjs=True)
        return
    chromium = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if chromium is None:
        raise SystemExit(f"--plot {out}: no Chromium on PATH to render the PNG; give a .html path instead")
    with tempfile.TemporaryDirectory() as d:
        page = Path(d) / "plot.html"
        fig.write_html(page, include_plotlyjs=True, config={"staticPlot": True})
        shot = subprocess.run([chromium, "--headless=new", "--disable-gpu", "--no-sandbox", f"--user-data-dir={d}/p",
                               "--hide-scrollbars", "--virtual-time-budget=5000", "--window-size=1100,450",
                               f"--screenshot={out.resolve()}", page.as_uri()], capture_output=True, text=True,
                              timeout=120)
    if shot.returncode != 0 or not out.is_file():
        raise SystemExit(f"--plot {out}: Chromium could not render it: {shot.stderr[-1000:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--attempt-s", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=4, help="attempts per worker (at least 20 attempts)")
    ap.add_argument("--plot", type=Path, help="write the plot here (.png via headless Chromium, or .html)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="cProfile the driver during the largest worker count; print its N costliest functions")
    ap.add_argument("--proposer", choices=["driver", "actor", "both"], default="driver",
                    help="render candidates in the driver (what kscout does for the offline proposer: one Ray "
                         "task per attempt) or in a proposer actor (two tasks); both: each worker count twice")
    ap.add_argument("--targets", type=int, nargs="+", default=[1], metavar="K",
                    help="split the workers over K hardware targets (K runs, one loop each, driven together as "
                         "a multi-target search is); several values: each worker count once per K")
    args = ap.parse_args()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        modes = {"driver": [True], "actor": [False], "both": [False, True]}[args.proposer]
        for n in args.workers:
            for local, k in [(local, k) for local in modes for k in args.targets if k <= n]:
                prof = cProfile.Profile() if args.profile and n == max(args.workers) else None
                if prof:
                    prof.enable()
                rows.append(one(n, args.attempt_s, args.rounds, Path(tmp) / f"{n}-{local}-{k}", local, k))
                if prof:
                    prof.disable()
                    pstats.Stats(prof).sort_stats("tottime").print_stats(args.profile)
                r = rows[-1]
                print(f"{r['workers']:>4} workers on {r['targets']} target(s), proposer in the {r['proposer']}: "
                      f"{r['attempts']} attempts in "
                      f"{r['wall_s']:.1f} s", flush=True)
    print(f"\nsimulated attempt {args.attempt_s:g} s; SQLite log; {os.cpu_count()} cores")
    print(f"{'workers':>8}{'targets':>8}{'proposer':>9}{'attempts':>9}{'att/s':>8}{'ideal':>8}{'util':>7}{'planner ms':>12}"
          f"{'db ms':>8}{'driver busy':>12}{'loop CPU ms':>12}{'loop CPU':>9}{'machine CPU':>12}{'tree':>7}")
    for r in rows:
        # the share of the driver's wall time spent planning and writing the log (the rest: Ray
        # submission and waiting on workers)
        driver = (r["planner_ms"] + r["db_ms"]) * r["rate"] / 1e3
        print(f"{r['workers']:>8}{r['targets']:>8}{r['proposer']:>9}{r['attempts']:>9}{r['rate']:>8.1f}{r['ideal']:>8.1f}{r['util']:>7.0%}"
              f"{r['planner_ms']:>12.2f}{r['db_ms']:>8.2f}{driver:>12.0%}{r['thread_ms']:>12.2f}"
              f"{r['thread_busy']:>9.0%}{r['cpu']:>12.0%}{r['tree']:>7}")
    if args.plot:
        plot([r for r in rows if r["proposer"] == "driver" and r["targets"] == args.targets[0]] or rows,
             args.attempt_s, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
