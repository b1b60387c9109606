"""A real multi-node Ray cluster on this machine (Ray's own test cluster: a head and two worker
raylets), simulated hardware workers placed on the worker nodes by a custom resource, and one
node killed mid-run. Every attempt must be accounted for: none lost, none counted twice, the ones
in flight on the dead node retried on the live one, and the dead node quarantined and named."""

from __future__ import annotations

import json
import os
import signal

import pytest
import ray
from ray.cluster_utils import Cluster

from memory.store import Store
from search.budget import Budget
from search.driver import NodeBuffer, SearchLoop
from search.planner import NodeLog, PlannerConfig, WorldModelPlanner
from search.pool import WorkerPool
from search.simulated import SimulatedProposer, simulated_workers, synthetic_family
from search.workers import on_this_node

pytestmark = [pytest.mark.slow, pytest.mark.integration]
FAMILY = dict(strategy_axes=6, values=3, tunable_axes=2, tunable_values=8)
TARGET = "sim_h100"          # stands in for a GPU type: the worker nodes offer it, the head does not
# Node death is noticed by GCS health checks; the defaults take ~15 s, these well under 2 s.
FAST_FAILURE = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                "health_check_timeout_ms": 300, "health_check_failure_threshold": 3}


@pytest.fixture
def cluster():
    if ray.is_initialized():   # other modules' local Ray
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_FAILURE})
    nodes = [c.add_node(num_cpus=1, resources={TARGET: 1}) for _ in range(2)]
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def worker_pids(workers: list, placements: list, node) -> set[int]:
    """The processes of the workers placed on `node` (asked before the run: a busy actor answers late)."""
    return {ray.get(w.__ray_call__.remote(lambda self: os.getpid()))
            for w, p in zip(workers, placements) if p.node_id == node.node_id}


def power_off(c: Cluster, node, pids: set[int]) -> None:
    """The node goes dark at once: its actor processes are SIGKILLed with its raylet. (Removing the
    raylet alone leaves the actors serving direct calls until they notice their raylet is gone:
    on a loaded machine, seconds, and a whole test run's worth of attempts.)"""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    c.remove_node(node, allow_graceful=False)


def search_on(tmp_path, run: str):
    """A fresh log, and a planner over the synthetic family whose tree updates go to it."""
    store = Store.open(f"sqlite:///{tmp_path / 'log.db'}")
    store.create_run(run, "simulated", "-", {}, {})
    nodes = NodeBuffer(store, run)
    planner = WorldModelPlanner(synthetic_family(**FAMILY), lambda n: NodeLog(**store.node_stats(run, n).model_dump()),
                                PlannerConfig(patience=3, max_refinements=6), on_update=nodes.note)
    planner.seed_root()
    return store, planner, nodes


def test_a_node_killed_mid_run_loses_no_attempt_and_is_quarantined(cluster, tmp_path):
    c, (node_a, node_b) = cluster
    run = "cluster"
    store, planner, nodes = search_on(tmp_path, run)
    # two worker processes of 3 slots each, one per worker node (each node offers one TARGET)
    workers = simulated_workers(6, attempt_s=0.3, slots_per_process=3, failure_rate=0.0, resources={TARGET: 1})
    placements = ray.get([w.placement.remote(TARGET) for w in workers])
    by_node = {p.node_id for p in placements}
    assert by_node == {node_a.node_id, node_b.node_id}          # placed by the custom resource, not on the head
    pool = WorkerPool(workers, placements, quarantine_after=2)
    pids_b = worker_pids(workers, placements, node_b)
    status: list[str] = []
    killed: list[str] = []

    def on_attempt(e):
        on_b = [w for _, w, *_ in loop._in_flight.values() if pool.placements[w].node_id == node_b.node_id]
        # mid-run, with an attempt in flight on node B: its failure takes out B's process, all three
        # of its slots (3 lost workers >= quarantine_after), whatever else was in flight there
        if e.seq >= 8 and on_b and not killed:
            killed.append(node_b.node_id)
            power_off(c, node_b, pids_b)

    loop = SearchLoop(planner=planner, proposer=SimulatedProposer.remote(FAMILY), workers=pool, store=store,
                      run_id=run, packets_dir=tmp_path / "packets", budget=Budget(40, 600), queue_depth=1,
                      nodes=nodes, on_attempt=on_attempt, on_status=status.append)
    loop.run_first(planner.select_root())
    assert loop.run() == "attempt budget reached (40)"
    assert killed

    attempts = store.attempts(run)
    assert [a.seq for a in attempts] == list(range(1, 41))       # every attempt once: none lost, none twice
    assert store.pending(run) == []                              # no dispatch note left behind
    packets = [json.loads((tmp_path / "packets" / f"{a.id}.json").read_text()) for a in attempts]
    assert len({p["id"] for p in packets}) == 40
    assert all(p["placement"]["target"] == TARGET for p in packets)   # which hardware produced each result
    retried = [p for p in packets if p["placement"]["tries"] > 1]
    assert retried, "the attempts in flight on the killed node were retried"
    assert all(p["placement"]["node_id"] == node_a.node_id and p["verdict"] == "accepted" for p in retried)
    assert not [p for p in packets if p["failure_class"] == "hardware_fault"]   # a live node was there to retry on
    after = packets[[p["id"] for p in packets].index(retried[0]["id"]):]
    assert all(p["placement"]["node_id"] == node_a.node_id for p in after)   # nothing went to the dead node again
    # the dead node is quarantined and named, live and in the log's summary (`kscout status`)
    assert node_b.node_id in pool.quarantined and len(pool.live()) == 3
    assert any("quarantined" in s and node_b.node_id[:12] in s for s in status)
    noted = store.get_run(run).summary["cluster"]
    assert noted["live"] == 3 and any(k.startswith(node_b.node_id[:12]) for k in noted["quarantined_nodes"])
    store.close()


def test_with_every_worker_gone_the_attempts_are_recorded_as_hardware_faults(cluster, tmp_path):
    c, (node_a, node_b) = cluster
    run = "cluster-all-lost"
    store, planner, nodes = search_on(tmp_path, run)
    workers = simulated_workers(2, attempt_s=0.5, slots_per_process=1, failure_rate=0.0, resources={TARGET: 1})
    placements = ray.get([w.placement.remote(TARGET) for w in workers])
    pool = WorkerPool(workers, placements, quarantine_after=1)
    pids = {n.node_id: worker_pids(workers, placements, n) for n in (node_a, node_b)}

    def on_attempt(e):
        if e.seq == 3:
            power_off(c, node_a, pids[node_a.node_id])
            power_off(c, node_b, pids[node_b.node_id])

    # A budget the run cannot spend before the loop sees every worker gone: it stops when it does.
    loop = SearchLoop(planner=planner, proposer=SimulatedProposer.remote(FAMILY), workers=pool, store=store,
                      run_id=run, packets_dir=tmp_path / "packets", budget=Budget(1000, 600), queue_depth=1,
                      nodes=nodes, on_attempt=on_attempt)
    loop.run_first(planner.select_root())
    reason = loop.run()
    assert reason.startswith("no hardware worker left") and "quarantined" in reason
    attempts = store.attempts(run)
    assert [a.seq for a in attempts] == list(range(1, loop.submitted + 1)) and store.pending(run) == []
    faults = [a for a in attempts if a.failure_class == "hardware_fault"]
    assert faults and all(store.packet(a.id).failure_message.startswith("the hardware worker died") for a in faults)
    store.close()


@pytest.fixture
def two_targets():
    """One worker node per hardware kind: 'sim_h100' on one, 'sim_mi300' on the other."""
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "_system_config": FAST_FAILURE})
    nodes = {t: c.add_node(num_cpus=1, resources={t: 1}) for t in (TARGET, "sim_mi300")}
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def test_one_loop_drives_two_targets_and_losing_one_leaves_the_other_running(two_targets, tmp_path):
    """run_loops: one search over two hardware targets, a run each (own log rows, tree, budget).
    Every attempt of each run ran on its own target's node; killing one target's node ends that
    run (its in-flight attempts recorded as hardware faults, none lost) while the other finishes."""
    from search.driver import run_loops
    c, nodes = two_targets
    loops, stores, pids = {}, {}, {}
    killed: list[str] = []
    for target in nodes:
        (tmp_path / target).mkdir()
        store, planner, buf = search_on(tmp_path / target, target)
        workers = simulated_workers(2, attempt_s=0.3, slots_per_process=2, failure_rate=0.0, resources={target: 1})
        placements = ray.get([w.placement.remote(target) for w in workers])
        pool = WorkerPool(workers, placements, quarantine_after=1)
        pids[target] = worker_pids(workers, placements, nodes[target])

        def on_attempt(e, target=target):
            if target == TARGET and e.seq == 6 and not killed:   # mid-run, the other target still going
                killed.append(nodes["sim_mi300"].node_id)
                power_off(c, nodes["sim_mi300"], pids["sim_mi300"])

        # on the driver's node, as kscout places its proposer: a bench node's death must not take it along
        proposer = SimulatedProposer.options(scheduling_strategy=on_this_node()).remote(FAMILY)
        loops[target] = SearchLoop(planner=planner, proposer=proposer, workers=pool,
                                   store=store, run_id=target, packets_dir=tmp_path / target / "packets",
                                   # the killed target's run ends when the loop sees its workers gone:
                                   # no budget stops it first
                                   budget=Budget(24 if target == TARGET else 1000, 600), queue_depth=1, nodes=buf,
                                   on_attempt=on_attempt, lane=target)
        stores[target] = store
        loops[target].run_first(planner.select_root())
    run_loops(list(loops.values()))
    assert killed
    assert loops[TARGET].stop_reason == "attempt budget reached (24)"
    assert loops["sim_mi300"].stop_reason.startswith("no hardware worker left")
    for target, loop in loops.items():
        attempts = stores[target].attempts(target)
        assert [a.seq for a in attempts] == list(range(1, loop.submitted + 1))   # each once, in its own run
        assert stores[target].pending(target) == []
        packets = [json.loads((tmp_path / target / "packets" / f"{a.id}.json").read_text()) for a in attempts]
        ran = [p for p in packets if p["failure_class"] != "hardware_fault"]
        assert ran and all(p["placement"]["target"] == target and p["run_id"] == target for p in ran)
        assert {p["placement"]["node_id"] for p in ran} == {nodes[target].node_id}
    assert len(stores[TARGET].attempts(TARGET)) == 24
    mi300 = stores["sim_mi300"].attempts("sim_mi300")
    assert any(a.failure_class == "hardware_fault" for a in mi300)
    for store in stores.values():
        store.close()
