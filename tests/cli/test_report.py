"""Reviewing a run: the live view during `kscout search`, and `kscout report`'s HTML opened in
headless Chromium. One small real search (real Ray, compiler, SQLite) feeds every test here.

The search runs rmsnorm with a small bench shape and `harness.precision_factor = 2`: the
vectorised nodes sum rows in another order and land ~5x the reference's float32 error (limit
2x), so they are rejected as precision_loss while the scalar and OpenMP nodes pass. The run
therefore has accepted and rejected attempts, a pruned node, bars in every histogram, and (no
verified node is pruned as a dead end) a frontier left when its attempt budget runs out.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from rich.console import Console

from kscout.display import SearchDisplay
from kscout.live import events_from_log, sparkline
from kscout.report import NODE_CLASSES, load, roofline_figure
from memory.store import Store
from search.node import NodeStatus
from tests.cli.test_search_e2e import KEEP_TREE, KSCOUT, run_cli, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ATTEMPTS = 8
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")
BAR = "[█▏▎▍▌▋▊▉]"   # a bar's cells: whole, then one partial eighth


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """(tmp, --json summary, the live view's output with ANSI codes removed)."""
    tmp = tmp_path_factory.mktemp("report")
    wl = small_copy("rmsnorm", tmp, "{ M = 64, N = 4096 }")
    cfg = tmp / "strict.toml"
    # KEEP_TREE: the run ends on its attempt budget with a frontier left, whatever the machine's load
    cfg.write_text("[harness]\nprecision_factor = 2.0\n\n" + KEEP_TREE)
    # A terminal as far as rich can tell (stderr carries the display under --json).
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", TTY_COMPATIBLE="1", TTY_INTERACTIVE="1",
               COLUMNS="120", LINES="60")
    proc = subprocess.run([*KSCOUT, "search", str(wl), "--attempts", str(ATTEMPTS), "--config", str(cfg), "--json",
                           "--runs-dir", str(tmp / "runs")], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["failures"].get("precision_loss"), f"expected rejected vectorised nodes: {out['failures']}"
    assert "exhausted" not in out["stop_reason"], out["stop_reason"]   # the attempt budget ended it
    return tmp, out, ANSI.sub("", proc.stderr)


@pytest.fixture(scope="module")
def events(search_run):
    _, out, _ = search_run
    with Store.open(out["db"]) as store:
        return events_from_log(store, out["run_id"]), store.nodes(out["run_id"])


# --- the live view ---------------------------------------------------------------------------

def test_a_resumed_runs_live_view_starts_from_its_log(search_run):
    """`kscout resume` seeds the view with the run's totals: attempts, rejections, best, spend."""
    _, out, _ = search_run
    with Store.open(out["db"]) as store:
        counts, best, spend = store.verdict_counts(out["run_id"]), store.best_attempt(out["run_id"]), \
            store.spend(out["run_id"])
    console = Console(record=True, width=120, force_terminal=True)
    display = SearchDisplay(console, ATTEMPTS + 4, "rmsnorm")
    display.seed_from_log(counts, best, spend)
    console.print(display.renderable())
    text = console.export_text()
    assert f"{ATTEMPTS}/{ATTEMPTS + 4}" in text
    assert f"{best.speedup_eager:.2f}x over torch eager" in text and f"(attempt #{best.seq})" in text
    assert f"{counts.accepted}/{counts.attempts} accepted" in text
    assert f"rejections: {counts.rejected}" in text
    assert f"device {spend['device_s']:.1f} s" in text
    assert display.state.rate() is None          # no attempt yet in this session: no pace to show


def test_live_view_runs_during_a_real_search(search_run):
    _, out, live = search_run
    frame = live[live.rindex("kscout search"):]          # the last frame the Live view drew
    assert f"{out['best']['speedup']['torch_eager']:.2f}x over torch eager" in frame
    assert f"{ATTEMPTS}/{ATTEMPTS}" in frame and "attempts/min" in frame
    busy = re.search(rf"w0 [{BAR[1:-1]} ]+\s+(\d+)%", frame)
    assert busy and 0 < int(busy.group(1)) <= 100, frame         # the driver's worker accounting
    assert re.search(rf"precision_loss\s+{BAR}+\s+{out['failures']['precision_loss']}\b", frame), frame
    assert re.search(r"frontier: \d+ of \d+ nodes", frame)
    assert re.search(r"device \d+\.\d s · stages: compile \d+\.\d, verify \d+\.\d, bench \d+\.\d s · LLM 0 tokens",
                     frame)
    assert re.search(r"#\d+\s+precision_loss", live)                 # attempt lines scroll above it


def test_live_view_renders_sparkline_histogram_and_frontier(events):
    evs, nodes = events
    console = Console(record=True, width=120, force_terminal=True)
    display = SearchDisplay(console, ATTEMPTS, "rmsnorm")
    assert display.live
    for e in evs:                        # not started: the attempt lines print as plain lines
        display.attempt(e)
    console.print(display.renderable())
    text = console.export_text()

    best, curve = None, []               # best-so-far over eager, computed here from the packets
    for e in evs:
        sp = e.packet.speedup("torch_eager") if e.packet.verdict.value == "accepted" else None
        best = sp if sp is not None and (best is None or sp > best) else best
        curve.append(best)
    spark = sparkline(curve)
    assert len(spark) == len(evs) and spark.strip() and "█" in spark
    assert f"{best:.2f}x over torch eager  {spark}" in text

    failures: dict[str, int] = {}
    for e in evs:
        if e.packet.failure_class:
            failures[e.packet.failure_class.value] = failures.get(e.packet.failure_class.value, 0) + 1
    assert f"rejections: {sum(failures.values())}" in text
    for name, n in failures.items():
        assert re.search(rf"{name}\s+{BAR}+\s+{n}\b", text), text

    frontier = sorted((n for n in nodes if n.status == NodeStatus.frontier), key=lambda n: (-n.priority, n.seq))
    assert frontier, "the run left no frontier"
    assert f"frontier: {len(frontier)} of {len(nodes)} nodes" in text
    rows = [line.strip("│ ") for line in text.splitlines()]
    for n in frontier[:5]:
        assert any(re.match(rf"{n.id}\s+{n.priority:.2f}\s+{n.expected_gain:.2f}x\s+", r) for r in rows), (n, text)


def test_a_search_over_two_targets_gets_a_panel_each_and_labelled_lines(events):
    """One search, two hardware targets: each target's panel counts only its own attempts, its
    status lines reach only its panel, and every attempt line names its target."""
    import copy
    evs, _ = events
    console = Console(record=True, width=120, force_terminal=True)
    display = SearchDisplay(console, ATTEMPTS, "rmsnorm", lanes={"xeonA": ATTEMPTS, "accelerator_type:H100": 5})
    for e in evs:
        a = copy.copy(e)
        a.lane = "xeonA"
        display.attempt(a)
    h100 = copy.copy(evs[0])
    h100.lane = "accelerator_type:H100"
    display.attempt(h100)
    display.status("[accelerator_type:H100] measuring baselines (torch eager, naive C++)")
    display.status("searching")                                   # the search's own: every panel
    display.status("[xeonA] warning: the workload changed")
    console.print(display.renderable())
    text = console.export_text()
    assert "rmsnorm @ xeonA" in text and f"{len(evs)}/{ATTEMPTS}" in text
    assert "rmsnorm @ accelerator_type:H100" in text and "1/5" in text
    assert display.states["accelerator_type:H100"].status == "searching"
    assert display.states["xeonA"].status == "warning: the workload changed"
    lines = [ln for ln in text.splitlines() if re.match(r"(xeonA|accelerator_type:H100) #\d+", ln)]
    assert len(lines) == len(evs) + 1                             # every attempt line, labelled
    assert "warning: the workload changed" in text                # warnings stay in the scrollback


def test_live_view_is_plain_lines_off_a_terminal(events):
    evs, _ = events
    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    display = SearchDisplay(console, ATTEMPTS, "rmsnorm")
    assert not display.live
    with display:
        display.status("searching")
        for e in evs:
            display.attempt(e)
    lines = console.file.getvalue().splitlines()
    assert lines[0] == "[kscout] searching"
    assert len(lines) == 1 + len(evs)                    # one line per attempt, never wrapped
    assert all(line.startswith(f"[kscout] #{e.seq} ") for line, e in zip(lines[1:], evs))
    assert "\x1b" not in console.file.getvalue() and "╭" not in console.file.getvalue()
    assert re.search(r"\(best \d+\.\d\dx · \d+\.\d/min\)$", lines[-1]), lines[-1]


def test_sparkline_scales_and_buckets():
    assert sparkline([None, None, 1.0, 2.0, 3.0]) == "  ▁▅█"
    assert sparkline([2.0, 2.0]) == "██"
    long = sparkline([float(i) for i in range(1000)], width=10)
    assert len(long) == 10 and long[0] == "▁" and long[-1] == "█"


# --- the report ------------------------------------------------------------------------------

def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def report(search_run):
    tmp, out, _ = search_run
    proc = run_cli("report", out["run_id"], "--runs-dir", str(tmp / "runs"), cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = Path(out["run_dir"]) / "report.html"
    assert f"report: {path}" in proc.stdout
    return path


def test_report_is_one_self_contained_file(report, search_run):
    _, out, _ = search_run
    page = report.read_text()
    assert not re.search(r"<script[^>]*\bsrc=", page)                 # plotly.js inlined: opens offline
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert len(page) > 1_000_000 and "Plotly.newPlot" in page
    assert out["run_id"] in page and out["workload"] in page
    assert out["best"]["attempt_id"] in page and html.escape(out["best"]["strategy"]) in page
    assert out["stop_reason"] in page
    for title in ("Best speedup so far", "Strategy tree", "Rejections by failure class", "Roofline",
                  "Where the time went"):
        assert f"<h2>{title}" in page
    assert "precision_loss" in page


def test_report_tree_is_layered_and_coloured_from_the_log(report, search_run):
    _, out, _ = search_run
    with Store.open(out["db"]) as store:
        r = load(store, out["run_id"])
    page = report.read_text()
    assert {v.kind for v in r.nodes} >= {"best"} and len(r.nodes) >= 3
    for kind in {v.kind for v in r.nodes}:
        assert NODE_CLASSES[kind][0] in page                      # each kind present is a legend entry
    best = next(v for v in r.nodes if v.kind == "best")
    assert best.node.id == next(p for p in r.packets if p.id == out["best"]["attempt_id"]).candidate.node_id
    rejected = {p.candidate.node_id for p in r.packets if p.failure_class and p.failure_class.value == "precision_loss"}
    for v in r.nodes:
        if v.node.id in rejected:
            assert v.failures.get("precision_loss") and v.kind in ("never_verified", "refining"), v
    by_id = {v.node.id: v for v in r.nodes}
    leaves = [v for v in r.nodes if not any(c.node.parent_id == v.node.id for c in r.nodes)]
    assert len({v.x for v in leaves}) == len(leaves)              # leaves never overlap
    for v in r.nodes:
        kids = [c.x for c in r.nodes if c.node.parent_id == v.node.id]
        if kids:
            assert v.x == pytest.approx((min(kids) + max(kids)) / 2)   # a parent sits over its children
        if v.node.parent_id:
            assert by_id[v.node.parent_id].node.depth == v.node.depth - 1


def test_roofline_uses_the_measured_roofs_or_falls_back_to_bandwidth(search_run):
    _, out, _ = search_run
    with Store.open(out["db"]) as store:
        r = load(store, out["run_id"])
    title, fig = roofline_figure(r)
    assert title.startswith("Roofline") and fig.layout.xaxis.type == "log" == fig.layout.yaxis.type
    kernels, roof = fig.data
    roofs = [p.bench.roofline for p in r.packets if p.verdict.value == "accepted"]
    assert list(kernels.x) == [rf.arithmetic_intensity for rf in roofs]
    assert list(kernels.y) == [rf.achieved_gflops for rf in roofs]
    peak_bw, peak_fl = max(rf.peak_gbps for rf in roofs), max(rf.peak_gflops for rf in roofs)
    assert roof.x[1] == pytest.approx(peak_fl / peak_bw) and roof.y[1] == pytest.approx(peak_fl)   # the ridge
    assert roof.y[0] == pytest.approx(peak_bw * roof.x[0])                                          # the slope
    for rf in roofs:                      # a workload that declares no FLOPs
        rf.flops = rf.arithmetic_intensity = rf.achieved_gflops = 0.0
    title, fig = roofline_figure(r)
    assert "no FLOP count" in title and fig.layout.yaxis.title.text == "achieved GB/s"
    assert list(fig.data[0].y) == [rf.achieved_gbps for rf in roofs]
    assert fig.layout.shapes[0].y0 == pytest.approx(peak_bw)      # the bandwidth roof


def test_report_renders_in_headless_chromium(report, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium on PATH: scripts/test.sh installs it from the OS packages (apt-get, as root); "
                    "install it to run this test")
    base = [chromium, "--headless=new", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--hide-scrollbars"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-3000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    assert dom.stdout.count('class="plot-container plotly"') == 5, "every figure was drawn by plotly.js"
    assert dom.stdout.count('class="main-svg"') >= 5

    png = tmp_path / "report.png"
    shot = subprocess.run([*base, f"--screenshot={png}", "--window-size=1400,2400", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-3000:]
    assert png.stat().st_size > 50_000
    width, height, pixels = _decode_png(png.read_bytes())
    assert (width, height) == (1400, 2400)
    assert len(set(pixels[::997])) > 20, "the screenshot is (nearly) one colour"


def _decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines of an 8-bit PNG (the standard library is enough)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8, depth
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert len(raw) == height * (1 + width * channels)
    return width, height, raw


def test_report_of_an_unknown_run_names_it_and_the_fix(search_run):
    tmp, out, _ = search_run
    proc = run_cli("report", "no-such-run", "--runs-dir", str(tmp / "runs"), cwd=tmp)
    assert proc.returncode == 2
    assert "no run 'no-such-run'" in proc.stderr and out["run_id"] in proc.stderr and "--runs-dir" in proc.stderr
