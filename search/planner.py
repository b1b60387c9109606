"""The world-model planner: best-first over a strategy tree, local refinement, tree updates.

In the spirit of K-Search. The planner picks the frontier node with the highest priority,
refines it with a few attempts (the node's parameters, then one-step changes of its tunable
axes around the best so far) until a stagnation counter runs out, then updates the tree from
what the experiment log says about that node:

- never verified            -> pruned, with the failure classes that killed it
- slower than its parent    -> pruned ("dead end")
- otherwise                 -> expanded: one child per applicable move, applied to the node's
                               best parameters, expected gain = node's best x the move's gain

A move's gain is its prior until evidence arrives; after that it is the geometric mean of what
the move actually achieved elsewhere in this tree, so evidence re-ranks the whole frontier. A move
that replaces one the node's kernel already embodies (AVX2 on an omp-simd kernel, OpenMP over
tiles on one threaded over rows) is expected to gain its gain over the replaced move's, not its
gain over a kernel without either; what it measures there teaches neither move.

The naive kernel, expanded by the rules, also gets one stacked child (`stack_moves`): every move
expected to gain applied at once, one per axis, ranked at the product of their gains, so the
search's second attempt is the kernel the priors (or memory) say to write; its gain teaches no
single move, and when it loses the one-move children are still there.

Warm start (memory/knowledge.py): with knowledge from earlier runs on the same op family and
hardware, a move's gain before in-run evidence is what it proved there (not the template's prior),
moves that never verified there are not expanded, and the best-known kernel of the family is
inserted under the root as a "from memory" node, run right after the naive kernel whatever the
estimates rank above it, so refinement starts where the last search ended.
Every node records the facts that shaped it (`StrategyNode.knowledge`), and so does its packet.
Selection is a deterministic rule over typed node fields: the model (when there is one) may
suggest edits, but code decides.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict, deque
from typing import Any, Callable

from pydantic import BaseModel, Field

from agents.templates.base import Move, TemplateFamily
from harness.evidence import FailureClass, Verdict
from memory.knowledge import Knowledge
from search.node import COMPOSITE_MOVES, MEMORY, STACK, NodeStatus, StrategyNode
from search.strategy import Outcome, Proposal
from search import world_model
from search.tree import StrategyTree, params_key
from search.world_model import WorldModelAnswer


class PlannerConfig(BaseModel):
    patience: int = Field(3, ge=1, description="attempts without improvement before a node is updated")
    max_refinements: int = Field(6, ge=1, description="attempts per node at most")
    min_improvement: float = Field(0.02, ge=0, description="relative gain that resets stagnation")
    prune_below_parent: float = Field(0.97, gt=0, description="prune a node whose best < parent best x this")
    depth_bonus: float = Field(0.05, ge=0, description="priority bonus for shallow nodes (exploration)")
    refine_leader_only: bool = Field(True, description="tune a node's tunable axes only while it holds the run's "
                                     "best kernel; any other node is updated right after its first attempt "
                                     "(moves first, block sizes on the leaders)")
    tune_last: bool = Field(True, description="moves before block sizes: every node gets one attempt and is "
                            "expanded or pruned; tuning a node's tunables (block sizes, unroll, schedule) is priced "
                            "like a move that gains tune_margin over the node's best, so the best untuned node is "
                            "tuned once no untried move is expected to beat that (each node once)")
    tune_margin: float = Field(0.0, ge=0, description="with tune_last: the gain tuning is expected to add to a "
                               "node before the run's own tunings say (a prior worth one tuning); 0 tunes a node "
                               "once no untried move is expected to beat it")
    stack_moves: bool = Field(True, description="when the rules expand the naive kernel, also add one child with every "
                              "move expected to gain (prior, or proven in memory) applied together, best first, "
                              "one per axis: the recipe a kernel engineer would write first. It ranks at the "
                              "product of their gains, so it runs right after the naive kernel; the one-move "
                              "children stay in the tree for when it does not pay")


def stack(family: TemplateFamily, base: dict[str, Any], gain: Callable[[str], float],
          exclude: set[str] = frozenset(), isa: frozenset[str] | None = None) -> tuple[dict[str, Any], list[Move]]:
    """`base` with every move expected to gain (gain(name) > 1) applied together: greedily, the
    highest expected gain first, each axis set once (of two vectorizations, the better one), a
    move's requirements checked against what is stacked so far (AVX2 first, then the streaming
    stores that need it), and its CPU features against `isa` where that is known. Returns the
    parameters and the moves taken, in order."""
    params, taken, set_axes = dict(base), [], set()
    while True:
        fits = [m for m in family.moves if m.name not in exclude and family.applicable(m, params, isa)
                and not set_axes & set(m.assigns) and gain(m.name) > 1.0]
        if not fits:
            return family.validate_params(params), taken
        m = max(fits, key=lambda m: gain(m.name))
        params = dict(params, **m.assigns)
        set_axes |= set(m.assigns)
        taken.append(m)


class NodeLog(BaseModel):
    """What the experiment log says about one node (memory.Store.node_stats provides it)."""

    attempts: int = 0
    accepted: int = 0
    best_speedup: float | None = None
    best_attempt_id: str | None = None
    failures: dict[str, int] = Field(default_factory=dict)


class WorldModelPlanner:
    name = "world-model"

    def __init__(self, family: TemplateFamily, node_log: Callable[[str], NodeLog],
                 config: PlannerConfig | None = None, on_update: Callable[[StrategyNode], None] | None = None,
                 knowledge: Knowledge | None = None,
                 world_model: Callable[[str, str, str, str], WorldModelAnswer] | None = None):
        self.family = family
        self.world_model = world_model    # (node, tree, results, moves) -> the model's proposed edits
        self.knowledge = knowledge or Knowledge()
        self.facts = {f.move: f for f in self.knowledge.facts}
        self.dead = {d.move: d for d in self.knowledge.dead_ends}
        # Moves that never produced a correct kernel on this family and hardware: neither expanded nor stacked.
        self.never_verified = {m for m, d in self.dead.items() if d.reason.startswith("never verified")}
        # The CPU features of the hardware workers (restrict_isa); None: unknown, every move allowed.
        self.isa: frozenset[str] | None = None
        self.cfg = config or PlannerConfig()
        self.node_log = node_log          # reads the SQL log: updates come from recorded facts
        self.on_update = on_update or (lambda node: None)
        self.tree = StrategyTree()
        self.tried: set[tuple] = set()    # param assignments already run or in flight, whole run
        self.tried_code: set[str] = set()  # the kernels they render (family.code_key): no code twice
        self.in_flight: dict[str, int] = defaultdict(int)
        self.params_of_best: dict[str, dict[str, Any]] = {}
        self.move_gains: dict[str, list[float]] = defaultdict(list)
        self.recent: deque[Outcome] = deque(maxlen=12)   # the newest results, for the world model
        self.revived: set[str] = set()    # dead ends given their second look (once each)
        self.tuning: set[str] = set()     # nodes reopened for tuning (tune_last), once each
        # Measured nodes (expanded, or pruned dead ends) not yet tuned, best first (a heap, entries
        # checked when popped): tuning the top one is the move the frontier competes with (tune_last).
        self._untuned: list[tuple[float, int, str]] = []
        self._recorded: list[str] = []    # nodes with a result since the last selection
        # Warm start: the remembered kernel, run before anything the estimates rank (None: none, or it ran).
        self._warm_start: str | None = None
        self._tune_base: dict[str, float] = {}   # node -> its best when its tuning began
        self.tune_gains: list[float] = []        # what each finished tuning added (best after / before)
        # Sum of their logs with the prior's: the tuning gain is read for every node a selection
        # walks past, so it is kept up to date here rather than re-averaged each time.
        self._tune_log_sum = math.log1p(self.cfg.tune_margin)
        # Untried nodes whose expected gain is the rules' (parent's best x the move's learned gain):
        # that estimate goes stale as gains are learned, and selection re-derives it (_stale).
        self._rule_gain: set[str] = set()
        self.gain_of: dict[str, float] = {}   # node -> the gain it added to move_gains
        self.faulted: set[tuple] = set()  # assignments whose attempt died with its hardware (retried once)
        self._best = 0.0                  # the run's best speedup (the leader's)
        self._leader_id: str | None = None
        # Frontier nodes with attempts in flight and nothing more to propose until one comes back
        # (or the leader changes): selection skips them instead of re-deriving that each time.
        self._waiting: set[str] = set()

    def restrict_isa(self, flags: frozenset[str]) -> list[str]:
        """Propose only moves whose code the hardware workers' CPUs can run (`flags`: the features
        every worker has; empty means unknown and restricts nothing). Returns the moves left out."""
        if not flags:
            return []
        self.isa = frozenset(flags)
        return [m.name for m in self.family.moves if not set(m.isa) <= self.isa]

    # --- tree construction ----------------------------------------------------------------

    def seed_root(self) -> StrategyNode:
        root = StrategyNode(id="n0", family=self.family.key, description=self.family.naive_description,
                            params=self.family.defaults(), priority=1.0, expected_gain=1.0, seq=0)
        self.tree.add(root)
        self.on_update(root)
        return root

    def seed_memory(self) -> StrategyNode | None:
        """Warm start: the best-known kernel of this family (same hardware) as a child of the root."""
        root = self.tree.root()
        for best in self.knowledge.best:
            try:
                params = self.family.validate_params(dict(self.family.defaults(), **best.params))
            except (ValueError, KeyError):   # the templates changed since: that kernel cannot be rebuilt
                continue
            if self.tree.has_params(params):
                continue
            if self.isa is not None and not self.family.isa(params) <= self.isa:
                continue   # it needs CPU features these workers lack (a cluster target whose nodes changed)
            node = StrategyNode(
                id=f"n{self.tree.next_seq()}", parent_id=root.id, family=root.family, move=MEMORY,
                description=f"from memory: {best.strategy.split(' [refine:')[0]}", params=params, depth=1,
                seq=self.tree.next_seq(), expected_gain=best.speedup_eager, confidence=0.6,
                knowledge=[f"best of run {best.run_id} on {best.workload}: attempt {best.attempt_id}, "
                           f"{best.speedup_eager:.2f}x over eager"])
            node.priority = self._priority(node)
            self.tree.add(node)
            self.on_update(node)
            self._warm_start = node.id
            return node
        return None

    def restore(self, nodes: list[StrategyNode], tried: list[dict[str, Any]]) -> None:
        """Rebuild from the log (resume): nodes as stored, every recorded attempt counts as tried."""
        for n in sorted(nodes, key=lambda n: n.seq):
            n.priority = self._priority(n)   # from the log's counts (a crash may have come before an update)
            self.tree.add(n)
            self._saw(n)
            if n.move == MEMORY and not n.attempts:   # the crash came before the warm start ran
                self._warm_start = n.id
            if self.cfg.tune_last and n.parent_id is not None and n.attempts > 1:
                # Moves first gives a node one attempt until it is reopened: more means it was
                # tuned (or, pruned, given its second look) before the crash; not again.
                (self.revived if n.status == NodeStatus.pruned else self.tuning).add(n.id)
            self._push_untuned(n)
            if n.best_params:
                self.params_of_best[n.id] = n.best_params
        self.tried.update(params_key(p) for p in tried)
        self.tried_code.update(self._code(p) for p in tried)
        for n in self.tree.nodes():
            self._learn_move_gain(n)

    # --- the protocol -----------------------------------------------------------------------

    def select(self) -> Proposal | None:
        self._update_finished()
        while True:
            proposal, done = self._scan()
            if proposal is not None:
                return proposal
            if done is not None:       # a node finished refining: update the tree, then rank again
                self._update(done)
                continue
            if not any(self.in_flight.values()) and self._reopen():
                continue
            return None

    def _update_finished(self) -> None:
        """Update the nodes whose latest result was their last attempt before ranking anything:
        a node measured well below the top of the frontier would otherwise wait there, its
        children (the moves its result makes promising) not yet in the tree, while tuning or a
        weaker move is chosen over what it would have offered."""
        while self._recorded:
            node = self.tree.node(self._recorded.pop())
            if (node.status == NodeStatus.frontier and not self.in_flight[node.id]
                    and self._next_params(node)[0] is None):
                self._update(node)

    def _scan(self) -> tuple[Proposal | None, StrategyNode | None]:
        """Walk the frontier best first: the first node with an attempt to make gives the proposal;
        the first with none left and nothing in flight is returned to be updated. An untried
        node ranked on a gain estimate that has since dropped (its move did worse elsewhere, or
        its parent's best changed) is re-ranked first and the walk starts again: each node is
        re-ranked once per change, so the walk stays O(k log n) for the k nodes it looks at."""
        warm = self._warm_start_proposal()
        if warm is not None:
            return warm, None
        while True:
            stale: list[tuple[StrategyNode, float]] = []
            again = False
            frontier = self.tree.iter_frontier()
            try:
                for node in frontier:
                    if node.id in self._waiting:
                        continue
                    gain = self._stale(node)
                    if gain is not None:
                        stale.append((node, gain))
                        if gain < node.expected_gain:
                            break   # it ranks lower now: what is below it may come first
                    if self._tune_before(node):
                        again = True
                        break       # a measured node is back on the frontier for tuning, above this move
                    params, change = self._next_params(node)
                    if params is None:
                        if self.in_flight[node.id] == 0:
                            return None, node
                        self._waiting.add(node.id)
                        continue
                    return self._propose(node, params, change), None
                if not stale and not again:
                    return None, None
            finally:
                frontier.close()   # before the tree changes: the walked entries go back on the heap
                for node, gain in stale:
                    node.expected_gain = gain
                    node.priority = self._priority(node)
                    self.tree.touch(node)
                    self.on_update(node)

    def _propose(self, node: StrategyNode, params: dict[str, Any], change: str = "") -> Proposal:
        self.tried.add(params_key(params))
        self.tried_code.add(self._code(params))
        self.in_flight[node.id] += 1
        return Proposal(node_id=node.id, params=params, strategy=node.description, refinement=change,
                        knowledge=list(node.knowledge))

    def _warm_start_proposal(self) -> Proposal | None:
        """The remembered kernel's attempt, once, before the frontier walk. Its rank is the old
        run's speedup, measured against that run's eager timing; the moves' (the stack's above
        all) are this run's naive speedup times their gains. The two scales drift apart with the
        machine's load, and when the estimates came out above it, the stack and its children
        filled a short budget and the kernel memory proved best never ran (a warm start that
        did not start warm). A measurement outranks a prediction: it runs first."""
        if self._warm_start is None:
            return None
        node = self.tree.node(self._warm_start)
        self._warm_start = None
        if node.status != NodeStatus.frontier or node.attempts or self.in_flight[node.id]:
            return None
        params, change = self._next_params(node)
        return None if params is None else self._propose(node, params, change)

    def _tune_before(self, node: StrategyNode) -> bool:
        """tune_last: tuning is priced like a move that adds the tuning gain to a node's best.
        When the best untuned node, so priced, outranks the best frontier node (`node`: an
        untried move, or a node being tuned), its tunables come first; True when that reopened
        it. Not only the leader: a node that ties it (within the noise) or sits just below it is
        worth its block sizes before moves expected far lower (on softmax the best kernel is a
        tuned runner-up, and tuning only the leader sent the search through every worse branch
        first)."""
        if not self.cfg.tune_last:
            return False
        best = self._best_untuned()
        if best is None or node.priority >= self._priority(best, tuned=True):
            return False
        what = "the leader" if best.id == self._leader_id else "this node"
        self._tune(best, f"tuning: nothing on the frontier ranks above its best x {self._tune_gain():.3f} "
                         f"(what tuning is expected to add), so {what} gets its block sizes")
        return True

    def _best_untuned(self) -> StrategyNode | None:
        """The measured non-root node with the highest best speedup not yet tuned (None: none).
        Dead ends count: pruned for not beating their parent by the noise margin, one may still
        tie the leader, and its block sizes are worth more than a move expected far below it."""
        while self._untuned:
            neg, _, node_id = self._untuned[0]
            node = self.tree.node(node_id)
            if (node.status in (NodeStatus.expanded, NodeStatus.pruned) and node_id not in self.tuning
                    and node_id not in self.revived and -neg == node.best_speedup):
                return node
            heapq.heappop(self._untuned)   # tuned, reopened or re-measured since it was pushed
        return None

    def _push_untuned(self, node: StrategyNode) -> None:
        if (node.status in (NodeStatus.expanded, NodeStatus.pruned) and node.parent_id is not None
                and node.best_speedup is not None and node.id not in self.tuning and node.id not in self.revived):
            heapq.heappush(self._untuned, (-node.best_speedup, node.seq, node.id))

    def _tune_gain(self) -> float:
        """What tuning a node is expected to add: tune_margin as a prior worth one tuning, then the
        geometric mean with what the run's finished tunings added (on a workload whose block
        sizes barely matter, tuning sinks below the untried moves; where they matter, it rises)."""
        return math.exp(self._tune_log_sum / (1 + len(self.tune_gains)))

    def _learn_tune_gain(self, gain: float) -> None:
        self.tune_gains.append(gain)
        self._tune_log_sum += math.log(max(gain, 1e-3))

    def _tune(self, node: StrategyNode, note: str) -> None:
        """Put `node` back on the frontier for its tunables (once). A dead end tuned this way has
        had its second look: it is not revived again when the frontier runs dry."""
        if node.best_speedup:
            self._tune_base[node.id] = node.best_speedup
        self.tuning.add(node.id)
        if node.status == NodeStatus.pruned:
            self.revived.add(node.id)
        self._back_on_frontier(node, note)

    def _back_on_frontier(self, node: StrategyNode, note: str) -> None:
        """A node reopened (for tuning, or a dead end's second look): ranked again, counters fresh."""
        node.status = NodeStatus.frontier
        node.stagnation = 0
        node.priority = self._priority(node)
        self.tree.touch(node)
        self._annotate(node, note)

    def _stale(self, node: StrategyNode) -> float | None:
        """An untried rules-ranked node's expected gain as the rules would give it now, if that
        differs from the one it is ranked by; None when it is current (or not the rules')."""
        if node.id not in self._rule_gain:
            return None
        if node.attempts or self.in_flight[node.id]:
            self._rule_gain.discard(node.id)   # measured now: ranked by its own result from here on
            return None
        parent = self.tree.parent(node)
        gain = ((parent.best_speedup if parent else None) or 1.0) * self._edge_gain(node.move, node.displaces)
        return gain if abs(gain - node.expected_gain) > 1e-9 * max(1.0, gain) else None

    def select_root(self) -> Proposal:
        """The root's one attempt (the naive kernel), whatever else ranks higher."""
        root = self.tree.root()
        return self._propose(root, dict(root.params))

    def record(self, proposal: Proposal, outcome: Outcome) -> None:
        node = self.tree.node(proposal.node_id)
        self.in_flight[node.id] -= 1
        self._waiting.discard(node.id)
        self.recent.append(outcome)
        key = params_key(outcome.params)
        if outcome.failure_class == FailureClass.hardware_fault and key not in self.faulted:
            # The hardware died under it: no evidence about the kernel. It may be proposed again, once.
            self.faulted.add(key)
            self.tried.discard(key)
            self.tried_code.discard(self._code(outcome.params))
            self.on_update(node)
            return
        node.attempts += 1
        improved = (outcome.verdict == Verdict.accepted and outcome.speedup is not None and
                    (node.best_speedup is None or outcome.speedup > node.best_speedup * (1 + self.cfg.min_improvement)))
        if outcome.verdict == Verdict.accepted:
            node.accepted += 1
        if improved:
            node.best_speedup = outcome.speedup
            node.best_attempt_id = outcome.attempt_id
            node.best_params = dict(outcome.params)
            self.params_of_best[node.id] = node.best_params
            node.stagnation = 0
        else:
            node.stagnation += 1
        node.priority = self._priority(node)
        self._saw(node)
        self._learn_move_gain(node)
        self.tree.touch(node)
        self.on_update(node)
        self._recorded.append(node.id)

    def exhausted(self) -> bool:
        return not self.tree.top_frontier(1) and not any(self.in_flight.values())

    # --- local refinement ------------------------------------------------------------------

    def _next_params(self, node: StrategyNode) -> tuple[dict[str, Any] | None, str]:
        # The root is the naive kernel, kept as the baseline: one attempt, no tuning.
        limit = 1 if node.parent_id is None else self.cfg.max_refinements
        if node.attempts + self.in_flight[node.id] >= limit:
            return None, ""
        if node.attempts and node.stagnation >= self.cfg.patience:
            return None, ""
        if (self.cfg.tune_last and node.attempts + self.in_flight[node.id] and node.id not in self.tuning
                and node.id not in self.revived):
            return None, ""   # moves first: one attempt, its tunables wait until it is reopened for tuning
        if (self.cfg.refine_leader_only and node.attempts and node.id not in self.revived
                and node.id not in self.tuning and
                (node.best_speedup or 0.0) < self._leader() * (1 - self.cfg.min_improvement)):
            return None, ""   # not (or no longer) the best: let its children or siblings compete first
        if params_key(node.params) not in self.tried:
            return dict(node.params), ""
        base = node.best_params or node.params
        for axis in self.family.tunables():
            vals = axis.values
            i = vals.index(base[axis.name]) if base[axis.name] in vals else 0
            for j in (i + 1, i - 1):
                if 0 <= j < len(vals):
                    cand = dict(base, **{axis.name: vals[j]})
                    if params_key(cand) not in self.tried and self._code(cand) not in self.tried_code:
                        return cand, f"{axis.name} {base[axis.name]} -> {vals[j]}"
        return None, ""

    def _leader(self) -> float:
        """The run's best speedup so far (kept up to date, not recomputed: this is called for every
        node a selection walks past, and a scan of the tree each time was O(nodes) per node)."""
        return self._best

    def _saw(self, node: StrategyNode) -> None:
        if (node.best_speedup or 0.0) > self._best:
            self._best = node.best_speedup
            self._leader_id = node.id
            self._waiting.clear()   # a new leader: nodes that were waiting on leadership may go on

    def _code(self, params: dict[str, Any]) -> str:
        """The kernel an assignment renders (params that render no kernel key on themselves)."""
        try:
            return self.family.code_key(params)
        except (ValueError, KeyError, NotImplementedError):
            return repr(params_key(params))

    # --- world-model update ------------------------------------------------------------------

    def _update(self, node: StrategyNode) -> None:
        log = self.node_log(node.id)
        node.attempts, node.accepted = log.attempts, log.accepted
        node.best_speedup, node.best_attempt_id = log.best_speedup, log.best_attempt_id
        self._saw(node)
        base = self._tune_base.pop(node.id, None)
        if base and node.best_speedup:
            self._learn_tune_gain(node.best_speedup / base)
        parent = self.tree.parent(node)
        if log.accepted == 0:
            node.status = NodeStatus.pruned
            node.note = "never verified: " + ", ".join(f"{k} x{v}" for k, v in sorted(log.failures.items()))
        elif parent and parent.best_speedup and node.best_speedup is not None and \
                node.best_speedup < parent.best_speedup * self.cfg.prune_below_parent:
            node.status = NodeStatus.pruned
            node.note = f"dead end: {node.best_speedup:.2f}x vs parent {parent.best_speedup:.2f}x"
            if node.id in self.revived:
                node.note += f" after its second look ({node.attempts} attempts)"
        else:
            node.status = NodeStatus.expanded
            if not self._model_expand(node):
                self._expand(node)
                if parent is None and self.cfg.stack_moves:
                    self._stack(node)
        self._push_untuned(node)
        self._learn_move_gain(node)
        self.tree.touch(node)   # off the frontier
        self.on_update(node)

    def _expand(self, node: StrategyNode) -> None:
        base = self.params_of_best.get(node.id) or node.params
        for move in self.family.moves:
            if not self.family.applicable(move, base, self.isa) or move.name in self.never_verified:
                continue
            dead = self.dead.get(move.name)
            params = self.family.validate_params(dict(base, **move.assigns))
            if self.tree.has_params(params):
                continue
            knowledge = []
            if move.name in self.facts and not self.move_gains[move.name]:
                knowledge = [self.facts[move.name].says()]
            elif dead is not None:
                knowledge = [f"{move.name}: {dead.reason} in earlier runs"]
            self._child(node, move, params, knowledge=knowledge)

    def _stack(self, node: StrategyNode) -> StrategyNode | None:
        """The stacked child of `node` (see `stack`), with the moves the gains favour: priors, or
        what memory proved; moves that never verified in memory stay out. None when fewer than
        two moves stack (that child is already in the tree) or the stacked kernel is."""
        base = self.params_of_best.get(node.id) or node.params
        params, taken = stack(self.family, base, self._move_gain, exclude=self.never_verified, isa=self.isa)
        if len(taken) < 2 or self.tree.has_params(params) or params_key(params) in self.tried:
            return None
        gain = math.prod(self._move_gain(m.name) for m in taken)
        move = Move(name=STACK, description=" + ".join(m.description for m in taken), assigns={})
        return self._child(node, move, params, description="stacked: " + " + ".join(m.name for m in taken),
                           expected_gain=(node.best_speedup or 1.0) * gain,
                           knowledge=[f"stacked moves {', '.join(m.name for m in taken)}: expected "
                                      f"{gain:.2f}x over the naive kernel from their gains"])

    def _reopen(self) -> bool:
        """The frontier ran dry while budget remains. Two second looks, in order:

        - the world model inserts only its few picks per node; when those all die, the rules add
          the moves it passed over, under the best node first;
        - a node pruned as a dead end on one noisy measurement (one timing on a loaded machine
          can make a good move look slower than its parent) gets its tuning after all, once.

        "Search space exhausted" then means every move was tried and every dead end had its
        second look. False when there is nothing left to reopen."""
        expanded = [n for n in self.tree.nodes() if n.status == NodeStatus.expanded]
        for node in sorted(expanded, key=lambda n: -(n.best_speedup or 0.0)):
            before = len(self.tree)
            self._expand(node)
            if len(self.tree) > before:
                self._annotate(node, "reopened: the rules added the moves not yet in the tree")
                return True
        if self.cfg.tune_last:   # the best node not yet tuned (or revived) gets its tuning now
            untuned = self._best_untuned()
            if untuned is not None:
                self._tune(untuned, "tuning: the moves ran dry, so the best untuned node gets its block sizes")
                return True
        dead_ends = [n for n in self.tree.nodes() if n.status == NodeStatus.pruned
                     and n.best_speedup is not None and n.id not in self.revived]
        for node in sorted(dead_ends, key=lambda n: -(n.best_speedup or 0.0)):
            self.revived.add(node.id)
            self._back_on_frontier(node, "revived: the frontier ran dry, so this dead end gets its tuning after all")
            return True
        return False

    def _annotate(self, node: StrategyNode, note: str) -> None:
        node.note = f"{node.note}; {note}" if node.note else note
        self.on_update(node)

    def _child(self, node: StrategyNode, move, params: dict[str, Any], description: str = "",
               expected_gain: float | None = None, knowledge: list[str] | None = None) -> StrategyNode:
        child = StrategyNode(
            id=f"n{self.tree.next_seq()}", parent_id=node.id, family=node.family, move=move.name,
            description=description or (move.description if node.parent_id is None
                                        else f"{node.description} + {move.description}"),
            params=params, depth=node.depth + 1, seq=self.tree.next_seq(), knowledge=knowledge or [],
            displaces=[] if move.name in COMPOSITE_MOVES else
            self.family.replaced(move, self.params_of_best.get(node.id) or node.params))
        child.expected_gain = expected_gain or (node.best_speedup or 1.0) * self._edge_gain(move.name, child.displaces)
        if expected_gain is None:   # the rules' estimate: re-derived when the move's gain is learned
            self._rule_gain.add(child.id)
        child.confidence = 0.3 if not self.move_gains[move.name] else min(0.9, 0.3 + 0.15 * len(self.move_gains[move.name]))
        child.priority = self._priority(child)
        self.tree.add(child)
        self.on_update(child)
        return child

    def _model_expand(self, node: StrategyNode) -> bool:
        """Expand `node` with the model's world-model update; False (rules expand it) without a
        model, or when the model's answer held no valid insert."""
        if self.world_model is None:
            return False
        base = self.params_of_best.get(node.id) or node.params
        answer = self.world_model(world_model.describe_node(node), world_model.describe_tree(self.tree),
                                  world_model.describe_results(list(self.recent)),
                                  world_model.describe_moves(self.family, base, self.isa))
        if answer.error:
            node.note = f"world model unavailable ({answer.error[:300]}); expanded by the rules"
            return False

        inserted: list[StrategyNode] = []

        def new_node(parent, move, params, description, gain, reason):
            inserted.append(self._child(parent, move, params, description=description, expected_gain=gain,
                                        knowledge=[f"world model: {reason}"[:500]] if reason else []))
            return inserted[-1]

        changed, notes = world_model.apply(answer.operations, tree=self.tree, family=self.family, node=node,
                                           base=base, new_node=new_node, isa=self.isa)
        for n in changed:
            n.priority = self._priority(n)
            self.tree.touch(n)
            self.on_update(n)
        if notes:
            node.note = ("world model: " + "; ".join(notes))[:1000]
        if not inserted:
            node.note = (node.note + "; " if node.note else "") + "no valid insert from the world model; expanded by the rules"
        return bool(inserted)

    def _move_gain(self, move: str) -> float:
        seen = self.move_gains.get(move)
        if seen:
            return math.exp(sum(math.log(max(g, 1e-3)) for g in seen) / len(seen))
        if move in self.facts:          # proven in earlier runs on this family and hardware
            return self.facts[move].gain
        if move in self.dead:           # never beat its parent there
            return 0.9
        return self.family.prior_gain(move)

    def _edge_gain(self, move: str, displaces: list[str]) -> float:
        """What applying `move` is expected to gain over a kernel that embodies the `displaces`
        moves it replaces: its gain over theirs (AVX2 on an omp-simd kernel is not another 3x).
        A replaced move's gain counts at 1 at least: a move that failed to verify somewhere has
        learned a gain near 0, and replacing it is worth no more than the new move's own gain."""
        return self._move_gain(move) / math.prod(max(1.0, self._move_gain(d)) for d in displaces)

    def _learn_move_gain(self, node: StrategyNode) -> None:
        """What the node's move gained over its parent, from its attempts so far (learned at each
        result, not only when the node is updated: a node measured but not yet updated must not
        leave its move's siblings ranked on the prior)."""
        parent = self.tree.parent(node)
        if (not node.attempts or parent is None or not parent.best_speedup or node.move in COMPOSITE_MOVES
                or node.displaces):
            return   # several moves at once (stacked, remembered), or one move's gain over another's
        gain = (node.best_speedup or 0.0) / parent.best_speedup
        if node.id in self.gain_of:   # a revived node's second update replaces its first
            self.move_gains[node.move].remove(self.gain_of[node.id])
        self.gain_of[node.id] = gain
        self.move_gains[node.move].append(gain)

    def _priority(self, node: StrategyNode, tuned: bool = False) -> float:
        """A frontier node's rank: its best speedup once measured, the expected one before; a
        node reopened for tuning (or `tuned`: as it would rank if it were) at its best plus the
        gain tuning is priced at, so its tuning and the untried moves compete on one scale."""
        value = node.best_speedup if node.attempts else node.expected_gain
        if node.attempts and node.best_speedup is None:
            value = 0.0
        if self.cfg.tune_last and (tuned or node.id in self.tuning):
            value = (value or 0.0) * self._tune_gain()
        return (value or 0.0) * (1 + self.cfg.depth_bonus / (1 + node.depth))
