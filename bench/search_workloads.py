"""Run the default search (offline proposer, CPU backend) on shipped workloads, one after another.

    .venv/bin/python bench/search_workloads.py --attempts 40 --time 30m            # every shipped workload
    .venv/bin/python bench/search_workloads.py --attempts 20 rmsnorm softmax
    .venv/bin/python bench/search_workloads.py --attempts 2000 --time 30m --results runs/sweep-30m  # resumable

With `--results DIR` each workload's `kscout search --json` summary is kept as DIR/<workload>.json
and a workload already there is not searched again, so a sweep longer than one sitting (13
workloads x 30 minutes) continues where it stopped; the table covers every result in DIR.

Each row is one real `kscout search W --json` run: baselines (torch eager, torch.compile, naive
C++) and the best verified kernel, timed in the same run on the same machine, with SOL against
this machine's measured roofline and the attempt at which the best was found. Then the geometric
mean speedup over eager and over torch.compile across the memory-bound workloads (arithmetic
intensity below the machine's ridge point), and the compute-bound ones listed against torch.

With `--results DIR` the best kernel's source and evidence packet are kept beside its summary
(DIR/<workload>.best.cpp, DIR/<workload>.best.evidence.json), because the run folders live in a
temporary directory. The baseline columns are the times each speedup is against (the faster of the
run-start timing and the re-timing right after the best kernel), and SOL is against the roofline
the best kernel was judged by (a run measures the machine again when a kernel beats its bound).
`--into FILE` writes the table into FILE between the lines `<!-- table: DIR -->` and
`<!-- /table -->` (docs/benchmarks.md has them), so the published table is exactly what the
results render to:

    .venv/bin/python bench/search_workloads.py --render --results bench/results/sweep-30m --into docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import templates  # noqa: E402
from harness import workload  # noqa: E402


def shipped_with_templates() -> list[str]:
    return [w for w in workload.list_builtin() if templates.get(workload.load(w).spec.family).renders]


def geomean(xs: list[float]) -> float:
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def keep_best(out: dict, stem: Path) -> None:
    """Copy the best kernel's source and evidence packet out of the (temporary) run folder."""
    src = Path(out["best"]["source_path"])
    shutil.copyfile(src, stem.with_name(f"{stem.name}.best{src.suffix}"))
    shutil.copyfile(out["best"]["packet_path"], stem.with_name(f"{stem.name}.best.evidence.json"))


def judged_peaks(out: dict, evidence: Path) -> tuple[float, float] | None:
    """The roofline the best kernel's SOL is against (GB/s, GFLOP/s): from the summary, or for a
    summary written before it carried them, from the kept evidence packet."""
    b = out["best"] or {}
    if b.get("peak_gbps"):
        return b["peak_gbps"], b["peak_gflops"]
    if evidence.is_file():
        r = (json.loads(evidence.read_text()).get("bench") or {}).get("roofline") or {}
        if r.get("peak_gbps"):
            return r["peak_gbps"], r["peak_gflops"]
    return None


def render(results: dict[str, dict], results_dir: Path | None = None) -> str:
    """The markdown table of search summaries, the geomeans per bound, and the roofline the SOLs are against."""
    rows = []
    for w, out in results.items():
        spec = workload.load(w).spec
        dims = spec.bench_shape.dims
        peaks = out["machine_peaks"]
        judged = judged_peaks(out, (results_dir or Path()) / f"{w}.best.evidence.json")
        intensity = spec.flops(dims) / spec.bytes_moved(dims)
        ridge = judged[1] / judged[0] if judged else \
            peaks["peak_gflops"] / peaks["bandwidth_gbps"] if peaks else float("inf")
        rows.append(dict(w=w, out=out, memory_bound=intensity < ridge, intensity=intensity, judged=judged))
    f = lambda v, p=2: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
    lines = ["| workload | bound | eager ms | compile ms | naive C++ ms | best ms | vs eager | vs compile | SOL | "
             "attempts to best / run (verified) | wall s | stopped by |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out, base, b = r["out"], r["out"]["baselines_ms"], r["out"]["best"] or {}
        sp = b.get("speedup", {})
        # A baseline's time is the one its speedup is against: the faster of the run-start timing and
        # the re-timing right after the best kernel (a figure caught in a load spike is not used).
        base = {k: b["median_s"] * 1e3 * sp[k] if k in sp else v for k, v in base.items()}
        lines.append(f"| {r['w']} | {'memory' if r['memory_bound'] else 'compute'} ({r['intensity']:.2g} flop/B) | "
                     f"{f(base.get('torch_eager'))} | {f(base.get('torch_compile'))} | {f(base.get('naive_cpp'))} | "
                     f"{f(b.get('median_s') and b['median_s'] * 1e3, 3)} | {f(sp.get('torch_eager'))}x | "
                     f"{f(sp.get('torch_compile'))}x | {f(b.get('sol'))} | {b.get('attempt_seq', '—')} / "
                     f"{out['counts']['attempts']} ({out['counts']['verified']}) | {out['wall_s']:.0f} | "
                     f"{out['stop_reason'].split(' (')[0]} |")
    for label, mem in (("memory-bound", True), ("compute-bound", False)):
        sel = [r["out"]["best"]["speedup"] for r in rows if r["memory_bound"] == mem and r["out"]["best"]]
        if sel:
            lines.append(f"\n{label} ({len(sel)}): geomean {geomean([s['torch_eager'] for s in sel]):.2f}x over eager, "
                         f"{geomean([s['torch_compile'] for s in sel if 'torch_compile' in s]):.2f}x over "
                         f"torch.compile; min over eager {min(s['torch_eager'] for s in sel):.2f}x")
    # The SOLs are against the roofline each best kernel was judged by, which a run measures again
    # when a kernel beats a bound taken while the machine was busy; the run-start figures can be lower.
    judged = [r["judged"] for r in rows if r["judged"]]
    if judged:
        gb, gf = [j[0] for j in judged], [j[1] for j in judged]
        lines.append(f"\nroofline bound of the SOL column: {min(gb):.1f}-{max(gb):.1f} GB/s, "
                     f"{min(gf):.0f}-{max(gf):.0f} GFLOP/s (the dtype under test), as the runs measured it "
                     f"({rows[0]['out']['machine_peaks']['method'] if rows[0]['out']['machine_peaks'] else ''})")
    return "\n".join(lines) + "\n"


def write_into(doc: Path, results_dir: Path, table: str) -> None:
    """Replace what stands between `<!-- table: DIR -->` and `<!-- /table -->` in doc with table."""
    text = doc.read_text()
    begin = f"<!-- table: {results_dir.as_posix()} -->"
    m = re.search(re.escape(begin) + r"\n.*?<!-- /table -->", text, flags=re.S)
    if not m:
        sys.exit(f"{doc}: no block to write the table into; add the two lines\n{begin}\n<!-- /table -->\n"
                 f"where it belongs (the path as given to --results)")
    doc.write_text(text[:m.start()] + f"{begin}\n{table}<!-- /table -->" + text[m.end():])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="*", default=None)
    ap.add_argument("--attempts", type=int, default=20)
    ap.add_argument("--time", default="10m", help="time budget per workload (kscout search --time)")
    ap.add_argument("--results", type=Path, default=None,
                    help="keep each workload's summary here; workloads already there are not searched again")
    ap.add_argument("--render", action="store_true", help="only print the table of the results in --results")
    ap.add_argument("--into", type=Path, default=None,
                    help="write the table into this markdown file, between <!-- table: DIR --> and <!-- /table -->")
    args = ap.parse_args()
    if (args.render or args.into) and not args.results:
        ap.error("--render and --into need --results DIR")
    names = args.workloads or shipped_with_templates()
    if args.results:
        args.results.mkdir(parents=True, exist_ok=True)
    runs = tempfile.mkdtemp(prefix="kscout-bench-")
    results: dict[str, dict] = {}
    for w in [] if args.render else names:
        if args.results and (args.results / f"{w}.json").exists():
            print(f"{w}: kept from {args.results / f'{w}.json'}", file=sys.stderr)
            continue
        proc = subprocess.run([sys.executable, "-m", "kscout.cli", "search", w, "--attempts", str(args.attempts),
                               "--time", args.time, "--json", "--runs-dir", runs], capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            print(f"{w}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        out = json.loads(proc.stdout)
        results[w] = out
        if args.results:  # written whole, then renamed: a sweep killed mid-write keeps no half file
            tmp = args.results / f".{w}.json.tmp"
            tmp.write_text(json.dumps(out, indent=1))
            tmp.replace(args.results / f"{w}.json")
            if out["best"]:   # the run folder is temporary: keep the kernel and its evidence packet
                keep_best(out, args.results / w)
        b = out["best"]
        print(f"{w}: {b['speedup'].get('torch_eager', float('nan')) if b else float('nan'):.2f}x eager after "
              f"{out['counts']['attempts']} attempts in {out['wall_s']:.0f} s", file=sys.stderr, flush=True)
    if args.results:  # the table covers every kept result, from this sitting or an earlier one
        results = {f.stem: json.loads(f.read_text()) for f in sorted(args.results.glob("*.json"))
                   if "." not in f.stem}   # not the kept <w>.best.evidence.json
    table = render(results, args.results)
    if args.into:
        write_into(args.into, args.results, table)
        print(f"wrote the table of {len(results)} workloads into {args.into}", file=sys.stderr)
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
