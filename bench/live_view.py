"""Does the live view slow the search? Its cost per attempt against the time an attempt takes.

    python bench/live_view.py --runs-dir runs [RUN] [--scale 250]

The attempts of a recorded run (its log: packets, the final strategy tree) are fed as
AttemptEvents to a SearchDisplay on a recording terminal Console (120 columns, interactive), the
way `kscout search` feeds it, with rich's refresh thread running at its capped rate. `--scale`
replays the run's attempts that many times over (sequence numbers continue), so the state is
that of a long run: a long best-so-far curve, many rejections. Measured, in the driver's thread:
- update: `SearchDisplay.attempt(e)` (fold the event, print its line above the live view, which
  redraws the live region once);
- redraw after an event: one full refresh with the body laid out again (rich's refresh thread
  does this once per event at most);
- idle redraw: a refresh with nothing new (the body's laid-out lines reused, the header line
  rebuilt), what that thread does REFRESH_HZ times a second in between;
and the same update on a non-terminal console (plain log lines), and the driver's side: the
snapshot it attaches to each event (search/stats.py: worker clock, frontier of the run's tree,
and of a 5,000-node tree for a long run). Printed: medians and 99th
percentiles, the run's seconds per attempt (searching time / attempts), and the ratios.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from kscout.display import REFRESH_HZ, SearchDisplay  # noqa: E402
from kscout.live import events_from_log  # noqa: E402
from kscout.run import locate_run  # noqa: E402
from memory.store import Store  # noqa: E402
from search.driver import AttemptEvent  # noqa: E402
from search.node import StrategyNode  # noqa: E402
from search.stats import LoopStats, WorkerClock, frontier_rows  # noqa: E402
from search.tree import StrategyTree  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def feed(display: SearchDisplay, events: list[AttemptEvent], scale: int, redraw: bool) -> tuple[list[float], list[float]]:
    updates, redraws = [], []
    n = len(events)
    for k in range(scale):
        for e in events:
            e = AttemptEvent(e.seq + k * n, e.packet, e.proposal, e.improved, stats=e.stats)
            t0 = time.perf_counter()
            display.attempt(e)
            updates.append(time.perf_counter() - t0)
            if redraw:
                t0 = time.perf_counter()
                display._live.refresh()   # what rich's refresh thread does at most REFRESH_HZ times a second
                redraws.append(time.perf_counter() - t0)
    return updates, redraws


def snapshot_s(tree: StrategyTree, repeats: int = 200) -> float:
    """Median seconds of what SearchLoop.stats() does after each attempt."""
    clock = WorkerClock(1)
    clock.start()
    clock.add(0, 1.0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        elapsed, busy = clock.snapshot()
        rows, size = frontier_rows(tree)
        LoopStats(elapsed_s=elapsed, finished=1, in_flight=2, worker_busy=busy, frontier=rows, frontier_size=size,
                  tree_nodes=len(tree))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def big_tree(n: int) -> StrategyTree:
    t = StrategyTree()
    t.add(StrategyNode(id="n0", family="f"))
    for i in range(1, n):
        t.add(StrategyNode(id=f"n{i}", parent_id=f"n{(i - 1) // 4}", family="f", params={"i": i}, priority=(i * 7919) % 997,
                           seq=t.next_seq()))
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="run id (default: the newest run under --runs-dir)")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    ap.add_argument("--scale", type=int, default=250, help="replay the run's attempts this many times")
    args = ap.parse_args()
    run = args.run or max(args.runs_dir.glob("*/kscout.db"), key=lambda p: p.stat().st_mtime).parent.name
    _, url = locate_run(run, args.runs_dir, None)
    with Store.open(url) as store:
        events = events_from_log(store, run)
        info = store.get_run(run)
        tree = StrategyTree()
        for n in store.nodes(run):
            tree.add(n)
    per_attempt_s = info.elapsed_s / len(events)

    term = Console(file=io.StringIO(), force_terminal=True, force_interactive=True, width=120, height=60)
    live = SearchDisplay(term, len(events) * args.scale, info.workload)
    with live:
        updates, redraws = feed(live, events, args.scale, redraw=True)
        idle = []
        for _ in range(500):
            t0 = time.perf_counter()
            live._live.refresh()
            idle.append(time.perf_counter() - t0)
    plain = SearchDisplay(Console(file=io.StringIO(), force_terminal=False, width=120), len(events) * args.scale,
                          info.workload)
    with plain:
        plain_updates, _ = feed(plain, events, args.scale, redraw=False)

    up, rd, pl = (statistics.median(updates), statistics.median(redraws), statistics.median(plain_updates))
    id_ = statistics.median(idle)
    print(f"run {run}: {len(events)} attempts x {args.scale} = {len(updates)} events; "
          f"{per_attempt_s:.2f} s per attempt in the search")
    print(f"terminal  update                 median {up * 1e3:.3f} ms  p99 {pct(updates, 0.99) * 1e3:.3f} ms")
    print(f"terminal  redraw after an event  median {rd * 1e3:.3f} ms  p99 {pct(redraws, 0.99) * 1e3:.3f} ms")
    print(f"terminal  idle redraw            median {id_ * 1e3:.3f} ms  p99 {pct(idle, 0.99) * 1e3:.3f} ms")
    print(f"plain     update                 median {pl * 1e3:.3f} ms  p99 {pct(plain_updates, 0.99) * 1e3:.3f} ms")
    print(f"driver snapshot per event: {snapshot_s(tree) * 1e3:.3f} ms ({len(tree)} nodes), "
          f"{snapshot_s(big_tree(5000), 20) * 1e3:.3f} ms (5,000 nodes)")
    print(f"per attempt (update + redraw) / attempt time: {(up + rd) / per_attempt_s:.2e}")
    print(f"refresh thread between events ({REFRESH_HZ} idle redraws a second): {REFRESH_HZ * id_:.2%} of one core")
    print(f"plain log line / attempt time: {pl / per_attempt_s:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
