"""The live view of a running search: state folded from AttemptEvents, and its rich renderable.

Kept apart from the terminal plumbing (kscout/display.py) so it can be rendered anywhere: into a
recording Console for tests and screenshots, or timed by bench/live_view.py. Folding an event is
O(1) apart from the sparkline list; rendering reads only this state, never the log.
"""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.panel import Panel
from rich.segment import Segment
from rich.text import Text

from harness.evidence import Cost, Verdict
from kscout.export import run_packets
from memory.store import Store
from search.driver import AttemptEvent
from search.stats import LoopStats, frontier_rows
from search.strategy import Proposal
from search.tree import StrategyTree

SPARK = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉█"
SPARK_WIDTH = 60


def sparkline(values: list[float | None], width: int = SPARK_WIDTH) -> str:
    """One character per value; a longer series is cut into `width` buckets, each shown by its
    last value (for a best-so-far curve, its maximum). None (nothing verified yet) is a blank."""
    if len(values) > width:
        step = len(values) / width
        values = [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi - lo < 1e-12:
            out.append(SPARK[-1])
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((v - lo) / (hi - lo) * (len(SPARK) - 1) + 0.5))])
    return "".join(out)


def hbar(fraction: float, width: int) -> str:
    """A horizontal bar in eighths of a cell, padded to `width`."""
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = EIGHTHS[int((cells - full) * 8)] if full < width else ""
    return ("█" * full + part.strip()).ljust(width)


class LiveState:
    """Everything the live view shows, folded from the events of this session."""

    def __init__(self, workload: str, total: int):
        self.workload, self.total = workload, total
        self.started = time.monotonic()
        self.seq = 0
        self.attempts = 0
        self.accepted = 0
        self.best: float | None = None
        self.best_seq: int | None = None
        self.curve: list[float | None] = []    # best speedup over eager after each attempt
        self.failures: Counter[str] = Counter()
        self.spend = Cost()
        self.stats: LoopStats | None = None
        self.status = "starting"
        self.seeded = 0                        # attempts recorded before this session (resume)

    def seed_from_log(self, counts, best, spend: dict[str, float]) -> None:
        """A resumed run: start from the totals already in its log (memory.records.VerdictCounts,
        the best AttemptInfo, Store.spend), so the view shows the run, not just this session."""
        self.attempts = self.seeded = counts.attempts
        self.seq, self.accepted = counts.attempts, counts.accepted
        self.failures = Counter(counts.failures)
        if best is not None and best.speedup_eager is not None:
            self.best, self.best_seq = best.speedup_eager, best.seq
        self.curve = [self.best]
        self.spend.device_s = spend.get("device_s", 0.0)
        self.spend.llm_dollars = spend.get("llm_dollars", 0.0)
        self.spend.llm_tokens_in = int(spend.get("llm_tokens", 0))

    def add(self, e: AttemptEvent) -> str:
        """Fold one attempt in; returns its one-line description (rich markup)."""
        p = e.packet
        self.seq, self.attempts = e.seq, self.attempts + 1
        sp = p.speedup("torch_eager") if p.verdict == Verdict.accepted else None
        if p.verdict == Verdict.accepted:
            self.accepted += 1
            if sp is not None and (self.best is None or sp > self.best):
                self.best, self.best_seq = sp, e.seq
        else:
            self.failures[p.failure_class.value if p.failure_class else "rejected"] += 1
        self.curve.append(self.best)
        for field in Cost.model_fields:
            setattr(self.spend, field, getattr(self.spend, field) + getattr(p.cost, field))
        if e.stats is not None:
            self.stats = e.stats
        if p.verdict == Verdict.accepted:   # padded before the markup goes on, so columns line up
            verdict = f"[green]{(f'{sp:.2f}x eager' if sp is not None else 'verified, untimed' if p.correctness_only else 'accepted'):<20}[/]"
        else:
            verdict = f"[red]{(p.failure_class.value if p.failure_class else 'rejected'):<20}[/]"
        strategy = p.candidate.strategy if len(p.candidate.strategy) <= 90 else "…" + p.candidate.strategy[-89:]
        new_best = "[bold yellow]new best[/] " if e.improved else ""   # before the strategy: never cut off
        return f"#{e.seq:<3} {verdict} {new_best}{escape(strategy)}"

    def rate(self) -> float | None:
        """Attempts per minute: the driver's clock when it sent one, else this view's own."""
        if self.stats is not None and self.stats.attempts_per_min is not None:
            return self.stats.attempts_per_min
        elapsed = time.monotonic() - self.started
        done = self.attempts - self.seeded      # this session's pace, not the resumed run's history
        return done * 60.0 / elapsed if done and elapsed > 0 else None

    def best_text(self) -> str:
        if self.best:
            return f"best {self.best:.2f}x"
        # verified but untimed (Triton interpreter: correctness only) is not "nothing verified"
        return f"{self.accepted} verified, none timed" if self.accepted else "no verified kernel yet"


def header(state: LiveState, now: float | None = None) -> Text:
    """The line that changes every redraw (elapsed time), rebuilt each time: one Text, cheap."""
    elapsed = (now if now is not None else time.monotonic()) - state.started
    done = state.seq / state.total if state.total else 0.0
    return Text.assemble((state.workload, "bold"), " ", (hbar(done, 30), "magenta"),
                         f" {state.seq}/{state.total}  {int(elapsed // 60)}:{int(elapsed % 60):02d}  ",
                         (state.status, "dim"), no_wrap=True, overflow="ellipsis")


FRONTIER_W = 62   # cells of the frontier block; the rejection histogram goes to its right


def body(state: LiveState) -> Text:
    """Everything else, as fixed-width text (rich tables would measure every cell on each
    layout, ~8 ms; this is a fraction of one): laid out once per event (see SearchDisplay)."""
    t = Text(no_wrap=True, overflow="ellipsis")

    def label(name: str) -> None:
        t.append(f"{name:<9}", style="bold cyan")

    label("best")
    if state.best is not None:
        t.append(f"{state.best:.2f}x", style="bold green")
        t.append(" over torch eager  ")
        t.append(sparkline(state.curve), style="green")
        t.append(f"  (attempt #{state.best_seq})\n")
    else:
        t.append((f"{state.accepted} verified, none timed (correctness only)  " if state.accepted
                  else "no verified kernel yet  "), style="yellow")
        t.append(sparkline(state.curve) + "\n")
    rate, st = state.rate(), state.stats
    label("rate")
    t.append((f"{rate:.1f} attempts/min" if rate is not None else "-")
             + f" · {state.accepted}/{state.attempts} accepted" + (f" · {st.in_flight} in flight" if st else "") + "\n")
    if st is not None and st.worker_busy:
        label("workers")
        for i, b in enumerate(st.worker_busy):
            t.append(f"w{i} ")
            t.append(hbar(b, 10), style="magenta")
            t.append(f" {b:4.0%}  ")
        t.append("\n")
    s = state.spend
    label("spend")
    # device = compile + the candidates' processes (what --device-hours counts); the stages overlap
    # it (bench also re-times the baselines), so they are listed beside it, not as its parts
    t.append(f"device {s.device_s + s.compile_s:.1f} s · stages: compile {s.compile_s:.1f}, verify {s.verify_s:.1f}, "
             f"bench {s.bench_s:.1f} s · LLM {s.llm_tokens_in + s.llm_tokens_out:,} tokens, ${s.llm_dollars:.2f}\n\n")

    left: list[list[tuple[str, str]]] = [
        [((f"frontier: {st.frontier_size} of {st.tree_nodes} nodes" if st else "frontier"), "italic")],
        [(f"{'node':<6}{'priority':>9}{'exp. gain':>10}{'tries':>6}{'best':>8}  move", "bold")]]
    for r in (st.frontier if st else []):
        best = f"{r.best_speedup:.2f}x" if r.best_speedup else "-"
        left.append([(f"{r.id:<6}{r.priority:>9.2f}{r.expected_gain:>9.2f}x{r.attempts:>6}{best:>8}  {r.move[:19]}", "")])
    if not st or not st.frontier:
        left.append([("(empty)" if st else "(waiting for the first attempt)", "dim")])
    right: list[list[tuple[str, str]]] = [[(f"rejections: {sum(state.failures.values())}", "italic")]]
    most = max(state.failures.values(), default=0)
    for name, n in state.failures.most_common(8):
        right.append([(f"{name[:20]:<20} ", ""), (hbar(n / most, 16), "red"), (f" {n}", "")])
    if not state.failures:
        right.append([("none", "dim")])
    for i in range(max(len(left), len(right))):
        cells = left[i] if i < len(left) else []
        width = 0
        for text, style in cells:
            t.append(text, style=style or None)
            width += len(text)
        t.append(" " * max(1, FRONTIER_W - width))
        for text, style in (right[i] if i < len(right) else []):
            t.append(text, style=style or None)
        t.append("\n")
    t.rstrip()
    return t


class Prerendered:
    """Lines already laid out: redrawing them copies segments instead of laying tables out again
    (the body's tables cost ~8 ms to lay out, its segments well under one; bench/live_view.py)."""

    def __init__(self, lines: list[list[Segment]], width: int):
        self.lines, self.width = lines, width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        new_line = Segment.line()
        for line in self.lines:
            yield from line
            yield new_line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


def prerender(console: Console, renderable: RenderableType, width: int) -> Prerendered:
    return Prerendered(console.render_lines(renderable, console.options.update_width(width), pad=True), width)


def body_width(console: Console) -> int:
    """The body's width inside view()'s panel (border and padding take two cells a side)."""
    return max(20, console.width - 4)


def view(state: LiveState, cached_body: RenderableType | None = None, now: float | None = None) -> Panel:
    return Panel(Group(header(state, now), cached_body if cached_body is not None else body(state)),
                 title="kscout search", title_align="left", border_style="blue")


def events_from_log(store: Store, run_id: str) -> list[AttemptEvent]:
    """A recorded run's attempts as the events the driver sent, rebuilt from its log, to render
    or time the live view after the fact (tests, bench/live_view.py). The log
    keeps the tree's final state and no dispatch times, so each event carries the final frontier
    and no worker utilisation; the rate comes from the attempts' timestamps."""
    info = store.get_run(run_id)
    tree = StrategyTree()
    for n in store.nodes(run_id):
        tree.add(n)
    frontier, size = frontier_rows(tree)
    events, best = [], None
    for i, (a, p) in enumerate(run_packets(store, run_id), start=1):
        sp = p.speedup("torch_eager") if p.verdict == Verdict.accepted else None
        improved = sp is not None and (best is None or sp > best)
        best = sp if improved else best
        stats = LoopStats(elapsed_s=max(0.0, (a.created_at - info.started_at).total_seconds()), finished=i,
                          frontier=frontier, frontier_size=size, tree_nodes=len(tree))
        proposal = Proposal(node_id=p.candidate.node_id or "", params=p.candidate.params, strategy=p.candidate.strategy)
        events.append(AttemptEvent(a.seq, p, proposal, improved, stats=stats))
    return events
