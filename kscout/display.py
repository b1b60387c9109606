"""What a person sees: a progress display while a run goes, a clean table when it ends.

On a terminal, a rich progress bar with the best speedup so far; elsewhere (CI, pipes), one
plain line per attempt, so logs stay readable.
"""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from kscout.run import BASELINE_NAMES, RunSummary
from search.driver import AttemptEvent


class SearchDisplay:
    def __init__(self, console: Console, total: int, workload: str):
        self.console = console
        self.live = console.is_terminal
        self.best: float | None = None
        self.progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                 console=console, disable=not self.live, transient=False)
        self.task = self.progress.add_task(workload, total=total, info="starting")

    def __enter__(self) -> "SearchDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def status(self, text: str) -> None:
        if self.live:
            self.progress.update(self.task, info=text)
        else:
            self.console.print(f"[kscout] {text}")

    def attempt(self, e: AttemptEvent) -> None:
        p = e.packet
        sp = p.speedup("torch_eager")
        if e.improved:
            self.best = sp
        verdict = (f"[green]{sp:.2f}x eager[/]" if sp is not None else "[green]accepted[/]") \
            if p.verdict.value == "accepted" else f"[red]{p.failure_class.value if p.failure_class else 'rejected'}[/]"
        best = f"best {self.best:.2f}x" if self.best else "no verified kernel yet"
        strategy = p.candidate.strategy if len(p.candidate.strategy) <= 90 else "…" + p.candidate.strategy[-89:]
        line = f"#{e.seq:<3} {verdict:<28} {strategy}"
        if self.live:
            self.progress.console.print(line + (" [bold yellow]new best[/]" if e.improved else ""), highlight=False)
            self.progress.update(self.task, completed=e.seq, info=best)   # seq: right after a resume too
        else:
            self.console.print(f"[kscout] {line} ({best})", highlight=False)


def summary_table(s: RunSummary) -> Table:
    t = Table(title=f"kscout search — {s.workload}", show_header=False, title_justify="left", pad_edge=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column(overflow="fold")   # paths and branch names must stay whole, so fold, never cut
    t.add_row("workload", s.workload)
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
        if b.sol is not None and s.peaks:
            t.add_row("  speed of light", f"{b.sol:.2f} of the roofline bound (machine: "
                                          f"{s.peaks.bandwidth_gbps:.1f} GB/s, {s.peaks.peak_gflops:.0f} GFLOP/s measured)"
                                          + (" [red]ABOVE the roofline: a measurement or cost-model fault[/]"
                                             if b.sol > 1.05 else ""))
    else:
        t.add_row("best verified kernel", "[red]none verified[/]")
    c = s.counts
    t.add_row("attempts", f"{c.get('attempts', 0)} made · {c.get('compiled', 0)} compiled · "
                          f"{c.get('verified', 0)} verified · {c.get('rejected', 0)} rejected")
    if s.failures:
        t.add_row("rejections", ", ".join(f"{k} ×{v}" for k, v in sorted(s.failures.items(), key=lambda kv: -kv[1])))
    t.add_row("strategy tree", f"{s.tree_nodes} nodes")
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
