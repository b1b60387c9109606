"""The strategy tree: typed StrategyNodes held in a networkx DiGraph (parent -> child).

The frontier is ranked by a heap with lazy invalidation: an entry (priority, insertion order, id)
is pushed whenever a node is added or `touch`ed after its priority or status changed, and entries
that no longer match their node are dropped when they surface. Walking the frontier best-first
costs O(k log n) for the k nodes looked at, where sorting it cost O(n log n) per selection (~0.3 s
at 100k nodes). Whoever changes a node's priority or status touches it.
"""

from __future__ import annotations

import heapq
from typing import Iterator

import networkx as nx

from search.node import NodeStatus, StrategyNode


def params_key(params: dict) -> tuple:
    """A hashable identity for a parameter assignment (a strategy is its parameters)."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


class StrategyTree:
    def __init__(self) -> None:
        self.g = nx.DiGraph()
        self._by_params: dict[tuple, str] = {}
        self._seq = 0
        self._heap: list[tuple[float, int, str]] = []   # (-priority, seq, id); stale entries allowed
        self._frontier: set[str] = set()                  # ids on the frontier as of their last touch

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __contains__(self, node_id: str) -> bool:
        return node_id in self.g

    def add(self, node: StrategyNode) -> StrategyNode:
        if node.seq == 0 and len(self.g):
            node.seq = self._seq + 1
        self._seq = max(self._seq, node.seq)
        self.g.add_node(node.id, node=node)
        if node.parent_id is not None:
            self.g.add_edge(node.parent_id, node.id)
        self._by_params.setdefault(params_key(node.params), node.id)
        self.touch(node)
        return node

    def touch(self, node: StrategyNode) -> None:
        """Re-rank a node after its priority or status changed (a frontier node gets a fresh entry)."""
        if node.status == NodeStatus.frontier:
            heapq.heappush(self._heap, (-node.priority, node.seq, node.id))
            self._frontier.add(node.id)
        else:
            self._frontier.discard(node.id)
        if len(self._heap) > 4 * len(self.g) + 64:   # many stale entries: rebuild from the nodes
            self._heap = [(-n.priority, n.seq, n.id) for n in self.nodes() if n.status == NodeStatus.frontier]
            heapq.heapify(self._heap)

    def iter_frontier(self) -> Iterator[StrategyNode]:
        """Frontier nodes best first (priority descending, then insertion order), lazily. Close
        the iterator (or exhaust it) before changing the tree: the entries it has visited go back
        on the heap only then."""
        visited: list[tuple[float, int, str]] = []
        seen: set[str] = set()
        try:
            while self._heap:
                entry = heapq.heappop(self._heap)
                node = self.node(entry[2])
                if node.status != NodeStatus.frontier or -node.priority != entry[0] or node.id in seen:
                    continue   # stale: the node moved on since this entry was pushed
                seen.add(node.id)
                visited.append(entry)
                yield node
        finally:
            for entry in visited:
                heapq.heappush(self._heap, entry)

    def node(self, node_id: str) -> StrategyNode:
        return self.g.nodes[node_id]["node"]

    def nodes(self) -> Iterator[StrategyNode]:
        for _, node in self.g.nodes(data="node"):
            yield node

    def root(self) -> StrategyNode:
        return next(n for n in self.nodes() if n.parent_id is None)

    def parent(self, node: StrategyNode) -> StrategyNode | None:
        return self.node(node.parent_id) if node.parent_id else None

    def children(self, node_id: str) -> list[StrategyNode]:
        return [self.node(c) for c in self.g.successors(node_id)]

    def ancestry(self, node_id: str) -> list[StrategyNode]:
        """Root first, this node last: the kernel's lineage."""
        path = [node_id, *nx.ancestors(self.g, node_id)]
        return sorted((self.node(n) for n in path), key=lambda n: n.depth)

    def has_params(self, params: dict) -> bool:
        return params_key(params) in self._by_params

    def frontier(self) -> list[StrategyNode]:
        """Frontier nodes, best first: priority descending, then insertion order."""
        f = [n for n in self.nodes() if n.status == NodeStatus.frontier]
        return sorted(f, key=lambda n: (-n.priority, n.seq))

    def frontier_size(self) -> int:
        """How many nodes are on the frontier (as of their last touch: O(1), for live views)."""
        return len(self._frontier)

    def top_frontier(self, k: int) -> list[StrategyNode]:
        """The best k frontier nodes, in frontier() order, without ranking the rest."""
        it = self.iter_frontier()
        try:
            return [node for node, _ in zip(it, range(k))]
        finally:
            it.close()

    def next_seq(self) -> int:
        return self._seq + 1
