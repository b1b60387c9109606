"""The SIMULATED hardware (a benchmark aid) and the driver's batched writes at many workers."""

from __future__ import annotations

import json
import sqlite3

import pytest
import ray

from agents.offline import OfflineProposer
from memory.store import Store
from search.budget import Budget
from search.driver import NodeBuffer, SearchLoop
from search.planner import NodeLog, PlannerConfig, WorldModelPlanner
from search.simulated import SIMULATED, Landscape, SimulatedProposer, simulated_workers, synthetic_family

pytestmark = [pytest.mark.slow, pytest.mark.integration]
FAMILY = dict(strategy_axes=10, values=3, tunable_axes=3, tunable_values=8)


def test_the_landscape_is_deterministic_and_seeded():
    family = synthetic_family(**FAMILY)
    points = [dict(family.defaults(), s0=a, s1=b, t0=c) for a in range(3) for b in range(3) for c in range(8)]
    first, again, other = Landscape(7), Landscape(7), Landscape(8)
    assert [first(p) for p in points] == [again(p) for p in points]
    assert [first(p) for p in points] != [other(p) for p in points]
    results = [first(p) for p in points]
    assert any(s is None for s, _ in results) and any(s is not None for s, _ in results)   # some fail, named
    assert all((s is None) == (f is not None) for s, f in results)


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield


@pytest.mark.parametrize("render_in_driver", [False, True], ids=["proposer-actor", "proposer-in-driver"])
def test_many_workers_every_attempt_recorded_once(ray_local, tmp_path, render_in_driver):
    store = Store.open(f"sqlite:///{tmp_path / 'log.db'}")
    run = "sim"
    store.create_run(run, SIMULATED, "-", {}, {})
    nodes = NodeBuffer(store, run)
    planner = WorldModelPlanner(synthetic_family(**FAMILY), lambda n: NodeLog(**store.node_stats(run, n).model_dump()),
                                PlannerConfig(patience=3, max_refinements=6), on_update=nodes.note)
    planner.seed_root()
    workers = simulated_workers(24, attempt_s=0.05, slots_per_process=8)
    assert len(workers) == 24 and len({id(w) for w in workers}) == 3          # 3 processes, 8 slots each
    loop = SearchLoop(planner=planner, proposer=SimulatedProposer.options(max_concurrency=4).remote(FAMILY),
                      workers=workers, store=store, run_id=run, packets_dir=tmp_path / "packets",
                      budget=Budget(120, 1e9), queue_depth=2, nodes=nodes,
                      propose_locally=OfflineProposer(SIMULATED, planner.family, backend=SIMULATED).propose
                      if render_in_driver else None)
    loop.run_first(planner.select_root())
    assert loop.run() == "attempt budget reached (120)"
    attempts = store.attempts(run)
    assert loop.submitted == 120
    assert [a.seq for a in attempts] == list(range(1, 121))                 # once each, in order, none lost
    assert store.pending(run) == []                                         # every dispatch note cleared
    assert {n.id for n in store.nodes(run)} == {n.id for n in planner.tree.nodes()}   # the tree is in the log
    assert len(list((tmp_path / "packets").glob("*.json"))) == 120
    packet = json.loads((tmp_path / "packets" / f"{attempts[-1].id}.json").read_text())
    assert packet["candidate"]["backend"] == SIMULATED and "SIMULATED" in packet["artifacts"]
    db = sqlite3.connect(tmp_path / "log.db")
    assert db.execute("SELECT COUNT(DISTINCT id) FROM attempts").fetchone()[0] == 120
    store.close()


def test_one_loop_over_two_runs_finishes_each_and_stops_asking_an_exhausted_planner(ray_local, tmp_path):
    """run_loops with two runs (as a search over two hardware targets): a tiny space that runs dry
    ends its run ("search space exhausted") and its planner is not asked again while the other run
    goes on to its budget, every attempt of each recorded once in its own run."""
    from search.driver import run_loops
    store = Store.open(f"sqlite:///{tmp_path / 'log.db'}")
    loops, selects = {}, {}
    for run, family in {"tiny": dict(strategy_axes=1, values=2, tunable_axes=1, tunable_values=2),
                        "large": FAMILY}.items():
        store.create_run(run, SIMULATED, "-", {}, {})
        nodes = NodeBuffer(store, run)
        planner = WorldModelPlanner(synthetic_family(**family),
                                    lambda n, run=run: NodeLog(**store.node_stats(run, n).model_dump()),
                                    PlannerConfig(patience=2, max_refinements=3), on_update=nodes.note)
        planner.seed_root()
        selects[run] = []
        select = planner.select
        planner.select = lambda select=select, run=run: selects[run].append(1) or select()
        loops[run] = SearchLoop(planner=planner, proposer=SimulatedProposer.remote(family),
                                workers=simulated_workers(4, attempt_s=0.05, slots_per_process=4), store=store,
                                run_id=run, packets_dir=tmp_path / run, budget=Budget(60, 1e9), queue_depth=2,
                                nodes=nodes, lane=run,
                                propose_locally=OfflineProposer(SIMULATED, planner.family, backend=SIMULATED).propose)
        loops[run].run_first(planner.select_root())
    asked_when_dry: list[int] = []
    record = loops["large"]._finish

    def finish(batch):   # each time the large run records, how often the tiny one's planner was asked so far
        asked_when_dry.append(len(selects["tiny"]))
        record(batch)
    loops["large"]._finish = finish
    run_loops(list(loops.values()))
    assert loops["tiny"].stop_reason == "search space exhausted"
    assert loops["large"].stop_reason == "attempt budget reached (60)"
    tiny = store.attempts("tiny")
    assert 1 < len(tiny) < 10 and [a.seq for a in tiny] == list(range(1, len(tiny) + 1))
    assert [a.seq for a in store.attempts("large")] == list(range(1, 61))
    assert store.pending("tiny") == store.pending("large") == []
    # once dry, the tiny run's planner was left alone for the rest of the large run's batches
    assert asked_when_dry[-1] == asked_when_dry[len(asked_when_dry) // 2]
    store.close()
