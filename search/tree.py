"""The strategy tree: typed StrategyNodes held in a networkx DiGraph (parent -> child)."""

from __future__ import annotations

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
        return node

    def node(self, node_id: str) -> StrategyNode:
        return self.g.nodes[node_id]["node"]

    def nodes(self) -> Iterator[StrategyNode]:
        for nid in self.g.nodes:
            yield self.node(nid)

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

    def next_seq(self) -> int:
        return self._seq + 1
