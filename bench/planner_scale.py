"""The planner's tree operations at 10k and 100k nodes (pure Python, no Ray, no database).

A tree of N frontier nodes over the synthetic family (search/simulated.py) is built directly;
then timed: adding a node, one full `frontier()` sort (reports and exports use it), one
`select()` (the best-first walk of the frontier heap + a refinement step), one `record()`, and
the live view's frontier snapshot (top 5 from the heap + the frontier's size).

    .venv/bin/python bench/planner_scale.py --nodes 10000 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evidence import Verdict  # noqa: E402
from search.node import StrategyNode  # noqa: E402
from search.planner import NodeLog, WorldModelPlanner  # noqa: E402
from search.simulated import synthetic_family  # noqa: E402
from search.stats import frontier_rows  # noqa: E402
from search.strategy import Outcome  # noqa: E402


def ms(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def build(n: int) -> WorldModelPlanner:
    family = synthetic_family(strategy_axes=12, values=4, tunable_axes=3, tunable_values=8)
    planner = WorldModelPlanner(family, lambda node_id: NodeLog())
    planner.seed_root()
    rng = random.Random(0)
    names = [a.name for a in family.axes]
    t0 = time.perf_counter()
    for i in range(1, n):
        params = {k: rng.choice(family.axis(k).values) for k in names}
        node = StrategyNode(id=f"n{i}", parent_id="n0", family=family.family, move="synthetic", params=params,
                            depth=1, seq=i, priority=rng.random() * 3, expected_gain=rng.random() * 3)
        planner.tree.add(node)
    planner._add_ms = (time.perf_counter() - t0) / max(n - 1, 1) * 1e3
    return planner


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="+", default=[10_000, 100_000])
    args = ap.parse_args()
    print(f"{'nodes':>8}{'add ms':>9}{'frontier ms':>13}{'select ms':>11}{'record ms':>11}{'snapshot ms':>13}")
    for n in args.nodes:
        planner = build(n)
        proposals = []

        def select():
            proposals.append(planner.select())

        frontier = ms(planner.tree.frontier)
        sel = ms(select)

        def record():
            p = proposals.pop()
            planner.record(p, Outcome(attempt_id="a", node_id=p.node_id, params=p.params, verdict=Verdict.accepted,
                                      speedup=1.0))

        rec = ms(record)
        snap = ms(lambda: frontier_rows(planner.tree))
        print(f"{n:>8}{planner._add_ms:>9.4f}{frontier:>13.1f}{sel:>11.1f}{rec:>11.3f}{snap:>13.1f}")


if __name__ == "__main__":
    main()
