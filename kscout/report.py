"""`kscout report RUN`: one self-contained HTML file that tells how a run went.

Everything comes from the run's experiment log (the same Store readers `kscout export` uses) and
is drawn with plotly; plotly.js is inlined once in the page head, so the file opens offline and
can be mailed or archived as is. Sections: a summary header, best speedup over attempts and over
time per baseline, the strategy tree coloured by what the log says of each node, rejections by
failure class, a roofline of the accepted kernels, and where the time and money went.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import networkx as nx
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots
from pydantic import BaseModel, Field

from harness.attempt import EAGER
from harness.evidence import EvidencePacket, Verdict
from kscout.export import run_packets
from kscout.run import BASELINE_NAMES
from memory.records import AttemptInfo, RunInfo
from memory.store import Store
from search.node import NodeStatus, StrategyNode

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
BASELINE_COLORS = {"torch_eager": "#1f77b4", "torch_compile": "#d62728", "naive_cpp": "#7f7f7f"}
# What the log says of a node, in the order a reader cares about; each a legend entry and colour.
NODE_CLASSES = {
    "best": ("holds the run's best kernel", "#f2b701"),
    "expanded": ("expanded: verified, children inserted", "#2ca02c"),
    "refining": ("frontier: being refined", "#1f77b4"),
    "untried": ("frontier: not tried yet", "#c7c7c7"),
    "slower": ("pruned: slower than its parent", "#ff7f0e"),
    "never_verified": ("pruned: never verified", "#d62728"),
}


class NodeView(BaseModel):
    """One strategy node with what the log says about it (counted from attempts, not the node's
    own counters, which are saved only at tree updates)."""

    node: StrategyNode
    attempts: int = 0
    accepted: int = 0
    best_speedup: float | None = None
    failures: dict[str, int] = Field(default_factory=dict)
    kind: str = "untried"
    x: float = 0.0


class RunReport(BaseModel):
    """Everything the page draws, read from the log once."""

    info: RunInfo
    attempts: list[AttemptInfo]
    packets: list[EvidencePacket]
    nodes: list[NodeView]
    baselines_ms: dict[str, float]
    best: EvidencePacket | None = None


def load(store: Store, run_id: str) -> RunReport:
    info = store.get_run(run_id)
    if info is None:
        raise KeyError(f"no run '{run_id}' in {store.engine.url}")
    pairs = run_packets(store, run_id)
    attempts, packets = [a for a, _ in pairs], [p for _, p in pairs]
    best_info = store.best_attempt(run_id, EAGER)
    best = next((p for p in packets if best_info and p.id == best_info.id), None)
    return RunReport(info=info, attempts=attempts, packets=packets,
                     nodes=_node_views(store.nodes(run_id), attempts, best),
                     baselines_ms={k: t.median_s * 1e3 for k, t in store.baselines(run_id).items()}, best=best)


def write_report(store: Store, run_id: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(load(store, run_id)), encoding="utf-8")
    return out


# --- the page --------------------------------------------------------------------------------

def render(r: RunReport) -> str:
    figures = [("Best speedup so far", progress_figure(r)),
               ("Strategy tree", tree_figure(r)),
               ("Rejections by failure class", rejection_figure(r)),
               roofline_figure(r),                  # its title says which kind of chart it drew
               ("Where the time went", cost_figure(r))]
    sections = "\n".join(f'<section><h2>{html.escape(title)}</h2>\n'
                         f'{fig.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG)}</section>'
                         for title, fig in figures)
    title = f"kscout report — {r.info.id}"
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style>\n"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n'
            f"<body><h1>{html.escape(title)}</h1>\n{summary_html(r)}\n{spend_html(r)}\n{sections}\n"
            f'<footer>written {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from {html.escape(r.info.id)}\'s '
            f"experiment log by <code>kscout report</code></footer></body></html>\n")


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px auto; max-width: 1300px;
       padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 6px; }
table.kv { border-collapse: collapse; } table.kv th { text-align: left; padding: 2px 14px 2px 0; color: #555;
       font-weight: 600; vertical-align: top; white-space: nowrap; } table.kv td { padding: 2px 0; }
table.grid { border-collapse: collapse; margin-top: 6px; } table.grid th, table.grid td { border: 1px solid #ddd;
       padding: 3px 8px; text-align: right; } table.grid th:first-child, table.grid td:first-child { text-align: left; }
.ok { color: #2ca02c; font-weight: 600; } .bad { color: #d62728; font-weight: 600; }
code { font-size: 12px; } footer { margin-top: 32px; color: #888; font-size: 12px; }
"""


def _kv(rows: list[tuple[str, str]]) -> str:
    """A two-column table; values are trusted HTML (callers escape what comes from the log)."""
    return '<table class="kv">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def summary_html(r: RunReport) -> str:
    info, e = r.info, html.escape
    summary = info.summary or {}
    env = info.environment or {}
    accepted = sum(a.verdict == Verdict.accepted for a in r.attempts)
    rows = [("run", f"<code>{e(info.id)}</code> ({e(info.status.value)})"),
            ("workload", e(info.workload)),
            ("started", f"{info.started_at:%Y-%m-%d %H:%M:%S %Z} · searched {info.elapsed_s:.0f} s"),
            ("stopped", e(summary.get("stop_reason") or "(still running, or stopped without a summary)")),
            ("machine", e(" · ".join(str(x) for x in (env.get("cpu"), env.get("threads") and f"{env['threads']} threads",
                                                      env.get("compiler"), env.get("torch") and f"torch {env['torch']}")
                                   if x))),
            ("attempts", f"{len(r.attempts)} made · {accepted} accepted · {len(r.attempts) - accepted} rejected")]
    for name, ms in r.baselines_ms.items():
        rows.append((f"baseline: {BASELINE_NAMES.get(name, name)}", f"{ms:.4g} ms median"))
    for name, why in (summary.get("baseline_errors") or {}).items():
        rows.append((f"baseline: {BASELINE_NAMES.get(name, name)}", f"not measured: {e(why[:200])}"))
    if r.best is not None and r.best.bench is not None:
        b = r.best.bench
        speedups = " · ".join(f'<span class="ok">{v:.2f}x</span> vs {e(BASELINE_NAMES.get(k, k))}'
                              for k, v in b.speedup.items())
        rows += [("best kernel", f"{e(r.best.candidate.strategy)}<br><code>attempt {e(r.best.id)}</code>"
                                 f" · branch <code>kscout/{e(info.workload)}/{e(info.id)}/1</code>"),
                 ("  time", f"{b.candidate.median_s * 1e3:.4g} ms median (IQR {b.candidate.iqr_rel:.1%})"),
                 ("  speedup", speedups)]
        if b.roofline is not None and b.roofline.sol is not None:
            rows.append(("  speed of light", f"{b.roofline.sol:.2f} of the roofline bound "
                                             f"({b.roofline.achieved_gbps:.1f} GB/s, {b.roofline.achieved_gflops:.1f} GFLOP/s)"))
        rows.append(("  replay", f"<code>{e(r.best.replay_command)}</code>"))
    else:
        rows.append(("best kernel", '<span class="bad">none verified</span>'))
    return _kv(rows)


def spend_html(r: RunReport) -> str:
    tot = defaultdict(float)
    for p in r.packets:
        for k, v in p.cost.model_dump().items():
            tot[k] += v
    rows = [("device time", f"{tot['device_s'] + tot['compile_s']:.1f} s: compile and the candidates' processes "
                            f"(what <code>--device-hours</code> counts)"),
            ("by stage", f"compile {tot['compile_s']:.1f} s · verify {tot['verify_s']:.1f} s · bench "
                         f"{tot['bench_s']:.1f} s (with the baselines' re-timing) · attempts' wall {tot['wall_s']:.1f} s"),
            ("model calls", f"{int(tot['llm_tokens_in']):,} tokens in · {int(tot['llm_tokens_out']):,} out · "
                            f"${tot['llm_dollars']:.2f}")]
    return "<h2>Spend</h2>" + _kv(rows)


# --- figures ---------------------------------------------------------------------------------

def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=40, b=50), template="plotly_white",
                      legend=dict(orientation="h", y=-0.2), **kw)
    return fig


def progress_figure(r: RunReport) -> go.Figure:
    """Best-so-far speedup per baseline as step lines, against attempt number and wall-clock time."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("over attempts", "over time"), horizontal_spacing=0.08)
    names = [n for n in BASELINE_COLORS if any(n in (p.bench.speedup if p.bench else {}) for p in r.packets)]
    names += sorted({n for p in r.packets if p.bench for n in p.bench.speedup} - set(names))
    for name in names:
        seq, when, best, cur = [], [], [], None
        for a, p in zip(r.attempts, r.packets):
            v = p.speedup(name) if p.verdict == Verdict.accepted else None
            if v is not None and (cur is None or v > cur):
                cur = v
            if cur is not None:
                seq.append(a.seq)
                when.append(a.created_at)
                best.append(cur)
        label = f"best vs {BASELINE_NAMES.get(name, name)}"
        color = BASELINE_COLORS.get(name)
        for col, x in ((1, seq), (2, when)):
            fig.add_trace(go.Scatter(x=x, y=best, mode="lines+markers", line_shape="hv", name=label,
                                     legendgroup=name, showlegend=col == 1, line=dict(color=color, width=2),
                                     marker=dict(size=4)), row=1, col=col)
    eager = [(a.seq, p.speedup(EAGER), p.candidate.strategy) for a, p in zip(r.attempts, r.packets)
             if p.verdict == Verdict.accepted and p.speedup(EAGER) is not None]
    if eager:
        fig.add_trace(go.Scatter(x=[s for s, _, _ in eager], y=[v for _, v, _ in eager], mode="markers",
                                 name="each accepted attempt vs eager", marker=dict(color="#1f77b4", size=7, opacity=0.35),
                                 text=[t for _, _, t in eager], hovertemplate="#%{x}: %{y:.2f}x<br>%{text}<extra></extra>"),
                      row=1, col=1)
    fig.add_hline(y=1.0, line=dict(color="#999", dash="dot"))
    fig.update_xaxes(title_text="attempt", row=1, col=1)
    fig.update_xaxes(title_text="time", row=1, col=2)
    fig.update_yaxes(title_text="speedup (x, higher is better)", row=1, col=1)
    if not names:
        fig.add_annotation(text="no verified kernel: nothing to plot", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return _layout(fig, 420)


def _node_views(nodes: list[StrategyNode], attempts: list[AttemptInfo], best: EvidencePacket | None) -> list[NodeView]:
    by_node: dict[str, list[AttemptInfo]] = defaultdict(list)
    for a in attempts:
        by_node[a.node_id or ""].append(a)
    views = []
    for n in nodes:
        mine = by_node.get(n.id, [])
        ok = [a.speedup_eager for a in mine if a.verdict == Verdict.accepted and a.speedup_eager is not None]
        v = NodeView(node=n, attempts=len(mine), accepted=sum(a.verdict == Verdict.accepted for a in mine),
                     best_speedup=max(ok) if ok else None,
                     failures=dict(Counter(a.failure_class.value for a in mine if a.failure_class)))
        if best is not None and best.candidate.node_id == n.id:
            v.kind = "best"
        elif n.status == NodeStatus.pruned:
            v.kind = "never_verified" if v.accepted == 0 else "slower"
        elif n.status == NodeStatus.expanded:
            v.kind = "expanded"
        else:
            v.kind = "refining" if v.attempts else "untried"
        views.append(v)
    _layer(views)
    return views


def _layer(views: list[NodeView]) -> None:
    """A layered tree layout: depth down the page; leaves side by side in insertion order and
    each parent centred over its children (post-order, so a parent is placed after them)."""
    g = nx.DiGraph()
    ids = {v.node.id: v for v in views}
    for v in views:
        g.add_node(v.node.id)
        if v.node.parent_id in ids:
            g.add_edge(v.node.parent_id, v.node.id)
    order = {v.node.id: v.node.seq for v in views}
    next_leaf = 0.0
    for root in sorted((n for n in g if g.in_degree(n) == 0), key=order.get):
        for nid in nx.dfs_postorder_nodes(g, root, sort_neighbors=lambda ns: sorted(ns, key=order.get)):
            kids = [ids[c].x for c in g.successors(nid)]
            if kids:
                ids[nid].x = (min(kids) + max(kids)) / 2
            else:
                ids[nid].x, next_leaf = next_leaf, next_leaf + 1


def tree_figure(r: RunReport) -> go.Figure:
    fig = go.Figure()
    pos = {v.node.id: (v.x, -v.node.depth) for v in r.nodes}
    ex, ey = [], []
    for v in r.nodes:
        if v.node.parent_id in pos:
            (x0, y0), (x1, y1) = pos[v.node.parent_id], pos[v.node.id]
            ex += [x0, x1, None]
            ey += [y0, y1, None]
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#bbb", width=1.5), hoverinfo="skip",
                             showlegend=False))
    for kind, (label, color) in NODE_CLASSES.items():
        group = [v for v in r.nodes if v.kind == kind]
        if not group:
            continue
        hover = [html.escape(f"{v.node.id} · {v.node.move} · {v.node.status.value}") + "<br>"
                 + html.escape(_wrap(v.node.description, 90)).replace("\n", "<br>")
                 + f"<br>attempts {v.attempts}, accepted {v.accepted}"
                 + (f", best {v.best_speedup:.2f}x eager" if v.best_speedup else "")
                 + (f"<br>priority {v.node.priority:.2f}, expected {v.node.expected_gain:.2f}x")
                 + ("<br>rejections: " + html.escape(", ".join(f"{k} ×{n}" for k, n in v.failures.items()))
                    if v.failures else "")
                 + ("<br>" + html.escape(_wrap(v.node.note, 90)).replace("\n", "<br>") if v.node.note else "")
                 for v in group]
        fig.add_trace(go.Scatter(
            x=[pos[v.node.id][0] for v in group], y=[pos[v.node.id][1] for v in group], mode="markers+text",
            name=label, marker=dict(color=color, size=[14 + min(14, 2 * v.attempts) for v in group],
                                    line=dict(color="#333", width=1)),
            # id and best speedup only: siblings sit one unit apart, the move is in the hover text
            text=[v.node.id + (f"<br>{v.best_speedup:.2f}x" if v.best_speedup else "") for v in group],
            textposition="bottom center", textfont=dict(size=10), hovertext=hover, hoverinfo="text"))
    depth = max((v.node.depth for v in r.nodes), default=0)
    width = max((v.x for v in r.nodes), default=0)
    fig.update_xaxes(visible=False, range=[-0.8, width + 0.8])
    fig.update_yaxes(visible=False, range=[-depth - 0.6, 0.5])
    if not r.nodes:
        fig.add_annotation(text="no strategy nodes recorded", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _layout(fig, 220 + 120 * depth, hovermode="closest")


def _wrap(text: str, width: int) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width)) if text else ""


def rejection_figure(r: RunReport) -> go.Figure:
    counts = Counter(p.failure_class.value for p in r.packets if p.verdict == Verdict.rejected and p.failure_class)
    items = counts.most_common()
    fig = go.Figure(go.Bar(x=[k for k, _ in items], y=[n for _, n in items], marker_color="#d62728",
                           text=[str(n) for _, n in items], textposition="outside",
                           width=0.5 if len(items) < 4 else None,      # one class need not fill the page
                           hovertemplate="%{x}: %{y} attempt(s)<extra></extra>"))
    fig.update_yaxes(title_text="attempts", rangemode="tozero", dtick=max(1, math.ceil(max(counts.values(), default=1) / 8)))
    if not items:
        fig.add_annotation(text=f"no rejected attempts (all {len(r.packets)} accepted)", showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
    return _layout(fig, 340)


def roofline_figure(r: RunReport) -> tuple[str, go.Figure]:
    """Accepted kernels on this machine's roofline: log-log achieved GFLOP/s against arithmetic
    intensity, under the bandwidth and peak-FLOP roofs the harness measured; a workload without
    FLOP counts gets achieved GB/s per attempt under the bandwidth roof instead."""
    pts = [(a, p, p.bench.roofline) for a, p in zip(r.attempts, r.packets)
           if p.verdict == Verdict.accepted and p.bench and p.bench.roofline]
    fig = go.Figure()
    if not pts:
        fig.add_annotation(text="no accepted kernel with roofline figures", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
        return "Roofline", _layout(fig, 300)
    peak_bw = max((rf.peak_gbps or 0.0) for _, _, rf in pts) or None
    peak_fl = max((rf.peak_gflops or 0.0) for _, _, rf in pts) or None
    text = [f"#{a.seq} {p.candidate.strategy[:80]}<br>SOL {rf.sol:.2f}" if rf.sol is not None
            else f"#{a.seq} {p.candidate.strategy[:80]}" for a, p, rf in pts]
    sols = [rf.sol or 0.0 for _, _, rf in pts]
    marker = dict(size=10, color=sols, colorscale="Viridis", cmin=0, cmax=max(1.0, max(sols)),
                  colorbar=dict(title="SOL"), line=dict(color="#333", width=1))
    if all(rf.flops > 0 and rf.arithmetic_intensity > 0 for _, _, rf in pts):
        ai = [rf.arithmetic_intensity for _, _, rf in pts]
        fig.add_trace(go.Scatter(x=ai, y=[rf.achieved_gflops for _, _, rf in pts], mode="markers", marker=marker,
                                 name="accepted kernels", text=text,
                                 hovertemplate="%{text}<br>%{x:.3g} FLOP/byte, %{y:.3g} GFLOP/s<extra></extra>"))
        if peak_bw and peak_fl:
            ridge = peak_fl / peak_bw
            lo, hi = min(min(ai), ridge) / 8, max(max(ai), ridge) * 8
            fig.add_trace(go.Scatter(x=[lo, ridge, hi], y=[peak_bw * lo, peak_fl, peak_fl], mode="lines",
                                     line=dict(color="#444", width=2),
                                     name=f"roofline: {peak_bw:.1f} GB/s, {peak_fl:.0f} GFLOP/s (measured)"))
        fig.update_xaxes(type="log", dtick=1, title_text="arithmetic intensity (FLOP/byte)")   # decades only
        fig.update_yaxes(type="log", dtick=1, title_text="achieved GFLOP/s")
        return "Roofline (accepted kernels)", _layout(fig, 440)
    fig.add_trace(go.Scatter(x=[a.seq for a, _, _ in pts], y=[rf.achieved_gbps for _, _, rf in pts], mode="markers",
                             marker=marker, name="accepted kernels", text=text,
                             hovertemplate="%{text}<br>%{y:.3g} GB/s<extra></extra>"))
    if peak_bw:
        fig.add_hline(y=peak_bw, line=dict(color="#444", width=2), annotation_text=f"bandwidth {peak_bw:.1f} GB/s")
    fig.update_xaxes(title_text="attempt")
    fig.update_yaxes(title_text="achieved GB/s", rangemode="tozero")
    return "Achieved bandwidth (the workload declares no FLOP count)", _layout(fig, 440)


def cost_figure(r: RunReport) -> go.Figure:
    """Seconds per stage, accepted and rejected attempts stacked: how much went into failures."""
    # device_s is the sandboxed children's time (within verify and bench); wall is the whole attempt
    stages = [("compile", "compile_s"), ("verify", "verify_s"), ("bench", "bench_s"),
              ("device (candidate processes)", "device_s"), ("attempt wall", "wall_s")]
    fig = go.Figure()
    for verdict, color in ((Verdict.accepted, "#2ca02c"), (Verdict.rejected, "#d62728")):
        mine = [p for p in r.packets if p.verdict == verdict]
        fig.add_trace(go.Bar(x=[label for label, _ in stages], y=[sum(getattr(p.cost, f) for p in mine) for _, f in stages],
                             name=f"{verdict.value} ({len(mine)})", marker_color=color,
                             hovertemplate="%{x}: %{y:.1f} s<extra>" + verdict.value + "</extra>"))
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="seconds")
    return _layout(fig, 340)
