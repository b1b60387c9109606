"""Ray actors: proposers (CPU, many) and hardware workers (one per bench slot).

What they do is in search/actors.py (Ray-free, so the local executor can run the same code on
threads). A hardware worker asks for one bench slot, a custom Ray resource each machine offers
once, so two benchmarks never share cores.
"""

from __future__ import annotations

import ray

from search.actors import BENCH_SLOT, Hardware, Proposer, placement

__all__ = ["BENCH_SLOT", "HardwareWorker", "ProposerActor", "on_this_node", "placement"]


def on_this_node():
    """A scheduling strategy that pins an actor to the caller's node. The proposer lives beside
    the driver: if it landed on a bench node (it asks for no resources, so Ray may put it anywhere),
    losing that node would fail every later attempt of the run, not just the ones running there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:   # a driver that cannot name its node (old Ray Client servers): Ray places it
        return "DEFAULT"
    return NodeAffinitySchedulingStrategy(node_id=node, soft=False)


# A model-backed proposer is started with max_concurrency = the agents' concurrency, so that many
# model calls are in flight at once on its threads.
ProposerActor = ray.remote(num_cpus=0)(Proposer)
HardwareWorker = ray.remote(num_cpus=0, resources={BENCH_SLOT: 1})(Hardware)
