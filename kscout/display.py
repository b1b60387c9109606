"""What a person sees: a live view while a run goes, a clean table when it ends.

On a terminal, a rich Live view (kscout/live.py: best-so-far with its sparkline, the frontier,
rate, worker utilisation, rejections, spend) redrawn at most REFRESH_HZ times a second from
cached state, with one line per attempt scrolling above it; elsewhere (CI, pipes), one plain line
per attempt, so logs stay readable.
"""

from __future__ import annotations

import threading

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from kscout.live import LiveState, Prerendered, body, body_width, prerender, view
from kscout.run import BASELINE_NAMES, RunSummary
from search.driver import AttemptEvent

# Redraws a second, in rich's own thread. The body is laid out once per event and kept as
# rendered lines, so a redraw is cheap; bench/live_view.py measures both (docs/benchmarks.md).
REFRESH_HZ = 4


class SearchDisplay:
    """The live view of a search. A search over several hardware targets has one lane each
    (`lanes`: label -> attempt budget); each gets its own panel, and its attempt lines and status
    lines carry its label."""

    def __init__(self, console: Console, total: int, workload: str, lanes: dict[str, int] | None = None):
        self.console = console
        self.live = console.is_terminal
        lanes = lanes or {"": total}
        self.states = {label: LiveState(f"{workload} @ {label}" if label else workload, n) for label, n in lanes.items()}
        self._lock = threading.Lock()     # events arrive on the driver's thread, redraws on rich's
        # each lane's body, laid out; a missing one means an event changed it
        self._bodies: dict[str, Prerendered] = {}
        self._live = Live(console=console, get_renderable=self.renderable, refresh_per_second=REFRESH_HZ,
                          transient=False) if self.live else None

    @property
    def state(self) -> LiveState:
        """The first lane's state (the only one, unless the search covers several targets)."""
        return next(iter(self.states.values()))

    def __enter__(self) -> "SearchDisplay":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.stop()

    def seed_from_log(self, counts, best, spend: dict[str, float], lane: str = "") -> None:
        with self._lock:
            self.states[lane].seed_from_log(counts, best, spend)
            self._bodies.pop(lane, None)

    @property
    def best(self) -> float | None:
        return self.state.best

    def renderable(self) -> RenderableType:
        """The live view; a body is laid out only after an event (or a resize), the one-line
        headers on every redraw."""
        with self._lock:
            width = body_width(self.console)
            views = []
            for label, state in self.states.items():
                cached = self._bodies.get(label)
                if cached is None or cached.width != width:
                    cached = self._bodies[label] = prerender(self.console, body(state), width)
                views.append(view(state, cached))
            return views[0] if len(views) == 1 else Group(*views)

    def status(self, text: str) -> None:
        lane = next((label for label in self.states if label and text.startswith(f"[{label}] ")), None)
        own = text.removeprefix(f"[{lane}] ") if lane else text
        if self.live:
            with self._lock:
                for label, state in self.states.items():   # a lane's own status, or the search's to every lane
                    if lane is None or label == lane:
                        state.status = own
            if own.startswith("warning"):   # the header shows only the latest status: keep warnings
                self.console.print(f"[yellow]{escape(text)}[/]", highlight=False)
        else:
            self.console.print(f"\\[kscout] {escape(text)}", highlight=False, soft_wrap=True)

    def attempt(self, e: AttemptEvent) -> None:
        state = self.states[e.lane]
        with self._lock:
            line = state.add(e)
            self._bodies.pop(e.lane, None)
        if e.lane:
            line = f"[bold]{escape(e.lane)}[/] {line}"
        if self.live:   # printed above the live view, so the scrollback keeps every attempt; one row each
            self.console.print(line, highlight=False, no_wrap=True, overflow="ellipsis")
        else:
            rate = state.rate()
            pace = f" · {rate:.1f}/min" if rate is not None else ""
            self.console.print(f"\\[kscout] {line} ({state.best_text()}{pace})", highlight=False,
                               soft_wrap=True)   # one attempt, one line, however long


def summary_table(s: RunSummary) -> Table:
    t = Table(title=f"kscout search — {s.workload}" + (f" @ {s.target}" if s.target else ""), show_header=False,
              title_justify="left", pad_edge=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(overflow="fold")   # paths and branch names must stay whole, so fold, never cut
    t.add_row("workload", s.workload)
    if s.target:
        t.add_row("hardware target", s.target)
    for name, timing in s.baselines.items():
        t.add_row(f"baseline: {BASELINE_NAMES.get(name, name)}",
                  f"{timing.median_s * 1e3:.3f} ms median (IQR {timing.iqr_rel * 100:.1f}%)")
    for name, why in s.baseline_errors.items():
        t.add_row(f"baseline: {BASELINE_NAMES.get(name, name)}", f"[yellow]not measured[/]: {why[:200]}")
    for note in s.workload_notes:
        t.add_row("[yellow]workload warning[/]", note[:300])
    if s.best:
        b = s.best
        t.add_row("best verified kernel", f"{b.strategy}")
        t.add_row("  time", f"{b.median_s * 1e3:.3f} ms median (IQR {b.iqr_rel * 100:.1f}%)")
        for name, v in b.speedup.items():
            t.add_row(f"  speedup vs {BASELINE_NAMES.get(name, name)}", f"[bold green]{v:.2f}x[/]")
        if b.achieved_gbps is not None:
            t.add_row("  achieved", f"{b.achieved_gbps:.1f} GB/s, {b.achieved_gflops:.1f} GFLOP/s")
        gbps, gflops = (b.peak_gbps, b.peak_gflops) if b.peak_gbps else \
            (s.peaks.bandwidth_gbps, s.peaks.peak_gflops) if s.peaks else (None, None)
        if b.sol is not None and gbps:
            t.add_row("  speed of light", f"{b.sol:.2f} of the roofline bound (machine: "
                                          f"{gbps:.1f} GB/s, {gflops:.0f} GFLOP/s measured)"
                                          + (" [red]ABOVE the roofline: a measurement or cost-model fault[/]"
                                             if b.sol > 1.05 else ""))
    else:
        t.add_row("best verified kernel", s.not_ranked if s.not_ranked else "[red]none verified[/]")
    c = s.counts
    t.add_row("attempts", f"{c.get('attempts', 0)} made · {c.get('compiled', 0)} compiled · "
                          f"{c.get('verified', 0)} verified · {c.get('rejected', 0)} rejected")
    if s.failures:
        t.add_row("rejections", ", ".join(f"{k} ×{v}" for k, v in sorted(s.failures.items(), key=lambda kv: -kv[1])))
    for u in s.models:
        t.add_row(f"model {u.model}", usage_line(u))
    t.add_row("strategy tree", f"{s.tree_nodes} nodes")
    if s.cluster:
        q = s.cluster.get("quarantined_nodes") or {}
        t.add_row("hardware workers", f"{s.cluster['live']} of {s.cluster['workers']} live"
                  + (f" · [red]quarantined: {', '.join(f'{n} ({why})' for n, why in q.items())}[/]" if q else ""))
    t.add_row("stopped", s.stop_reason)
    t.add_row("run directory", s.run_dir)
    if s.branch:
        t.add_row("git branch", f"{s.branch}  (repo {s.repo})")
    if s.best:
        t.add_row("replay", f"kscout replay {s.best.packet_path}")
    t.add_row("wall time", f"{s.wall_s:.0f} s")
    return t


def replay_panel(lines: list[str], ok: bool) -> Panel:
    return Panel("\n".join(lines), title="replay " + ("[green]reproduced[/]" if ok else "[red]NOT reproduced[/]"))


def usage_line(u) -> str:
    """One model's calls in a run (a memory.records.ModelUsage, or its dict)."""
    d = u if isinstance(u, dict) else u.model_dump()
    failed = ", ".join(f"{k} ×{v}" for k, v in sorted(d["outcomes"].items()) if k != "ok")
    price = f"${d['dollars']:.4f}" + (f" (+{d['unpriced']} calls not in litellm's price list)" if d["unpriced"] else "")
    return (f"{d['calls']} calls" + (f" ({failed})" if failed else "") +
            f" · {d['tokens_in']:,} tokens in, {d['tokens_out']:,} out · {price} · {d['mean_latency_s']:.1f} s mean latency")
