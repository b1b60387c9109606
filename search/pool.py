"""The hardware workers of a run, where each one lives, and which of them are gone.

On a cluster, workers die: a process is OOM-killed, a node loses power, a spot instance is taken
back. The driver asks the pool for the least-loaded live worker; when a worker's task fails
because the worker itself died (not because the harness raised), the pool marks it lost and
counts the failure against its node. A node that loses `quarantine_after` workers is
quarantined: every worker on it is taken out of rotation, and the run's status names it.
Lost workers are not replaced (a replacement would wait for a free bench slot that a dead node
no longer offers); the run carries on with the rest, and stops, with its in-flight attempts
left in the log for `kscout resume`, when none is left.
"""

from __future__ import annotations

from collections import Counter

from harness.evidence import Placement


class WorkerPool:
    def __init__(self, workers: list, placements: list[Placement] | None = None, quarantine_after: int = 2):
        self.workers = workers
        self.placements = placements or [Placement(node_id="local") for _ in workers]
        if len(self.placements) != len(workers):
            raise ValueError(f"{len(workers)} workers but {len(self.placements)} placements")
        self.quarantine_after = quarantine_after
        self.load = [0] * len(workers)
        self.lost_workers: dict[int, str] = {}        # worker index -> why it was taken out
        self.node_failures: Counter[str] = Counter()
        self.quarantined: dict[str, str] = {}         # node id -> reason, for the status

    def __len__(self) -> int:
        return len(self.workers)

    def live(self) -> list[int]:
        return [i for i in range(len(self.workers)) if i not in self.lost_workers]

    def pick(self, avoid_node: str | None = None) -> int | None:
        """The least-loaded live worker, off `avoid_node` when another node has one; None if none."""
        live = self.live()
        if not live:
            return None
        elsewhere = [i for i in live if self.placements[i].node_id != avoid_node]
        return min(elsewhere or live, key=lambda i: self.load[i])

    def lost(self, w: int, error: str) -> str | None:
        """Take worker `w` out after it died; returns a message when this quarantines its node."""
        if w in self.lost_workers:
            return None
        node = self.placements[w].node_id
        # Handles of one actor are slots of one process (a threaded actor): it died for all of them.
        # Each counts as a lost worker, and none gets a retry that could only fail again.
        dead = [i for i, h in enumerate(self.workers) if i not in self.lost_workers and (i == w or h == self.workers[w])]
        for i in dead:
            self.lost_workers[i] = error if i == w else f"same process as worker {w}, which died: {error}"
        self.node_failures[node] += len(dead)
        if node in self.quarantined or self.node_failures[node] < self.quarantine_after:
            return None
        first = (error.strip().splitlines() or ["?"])[0][:200]
        n = self.node_failures[node]
        reason = f"{n} hardware worker{'s' if n > 1 else ''} lost (last: {first})"
        self.quarantined[node] = reason
        for i, p in enumerate(self.placements):
            if p.node_id == node and i not in self.lost_workers:
                self.lost_workers[i] = f"node {node} quarantined"
        return f"node {self.describe(node)} quarantined: {reason}"

    def describe(self, node: str) -> str:
        host = next((p.host for p in self.placements if p.node_id == node and p.host), "")
        return f"{node[:12]}" + (f" ({host})" if host else "")

    def summary(self) -> dict[str, object]:
        """For the run summary and `kscout status`: what was lost, which nodes are out."""
        return {"workers": len(self.workers), "live": len(self.live()),
                "lost": {str(i): why for i, why in sorted(self.lost_workers.items())},
                "quarantined_nodes": {self.describe(n): why for n, why in self.quarantined.items()}}
