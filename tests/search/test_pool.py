"""The worker pool's bookkeeping, without Ray: which workers are out after one dies, and when its
node is quarantined."""

from harness.evidence import Placement
from search.pool import WorkerPool


def test_slots_of_a_dead_process_are_all_taken_out_and_counted_against_its_node():
    proc_b, proc_a = object(), object()           # two threaded actor processes, three slots each
    workers = [proc_a, proc_b] * 3
    pool = WorkerPool(workers, [Placement(node_id="A" if w is proc_a else "B") for w in workers], quarantine_after=2)
    # one slot's task fails: the other two slots of that process are the same dead process
    message = pool.lost(1, "ActorDiedError: the actor died unexpectedly")
    assert sorted(pool.lost_workers) == [1, 3, 5] and pool.live() == [0, 2, 4]
    assert pool.node_failures["B"] == 3 and "B" in pool.quarantined
    assert message.startswith("node B quarantined: 3 hardware workers lost (last: ActorDiedError")
    assert "same process as worker 1" in pool.lost_workers[3]
    # a sibling's own failure arriving later changes nothing and is not counted twice
    assert pool.lost(3, "ActorDiedError") is None and pool.node_failures["B"] == 3
    assert pool.pick(avoid_node="B") in (0, 2, 4) and pool.pick() in (0, 2, 4)


def test_one_lost_single_slot_worker_does_not_quarantine_its_node():
    workers = [object(), object(), object()]      # one process per slot, as `kscout search` starts them
    pool = WorkerPool(workers, [Placement(node_id=n) for n in "AAB"], quarantine_after=2)
    assert pool.lost(0, "OOM-killed") is None
    assert pool.live() == [1, 2] and pool.quarantined == {} and pool.node_failures["A"] == 1
    assert pool.lost(1, "OOM-killed").startswith("node A quarantined: 2 hardware workers lost")
    assert pool.live() == [2]
