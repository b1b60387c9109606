"""Run the default search (offline proposer, CPU backend) on shipped workloads, side by side.

    .venv/bin/python bench/search_workloads.py --attempts 20 bias_gelu rmsnorm softmax matmul

Prints a markdown table: baselines (torch eager, torch.compile, naive C++) and the best verified
kernel, all timed in the same run on the same machine, with SOL against this machine's measured
roofline. Each workload is a real `kscout search --json` run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="*", default=["bias_gelu", "rmsnorm", "softmax", "matmul"])
    ap.add_argument("--attempts", type=int, default=20)
    ap.add_argument("--time", default="10m")
    args = ap.parse_args()
    rows = []
    runs = tempfile.mkdtemp(prefix="kscout-bench-")
    for w in args.workloads:
        proc = subprocess.run([sys.executable, "-m", "kscout.cli", "search", w, "--attempts", str(args.attempts),
                               "--time", args.time, "--json", "--runs-dir", runs], capture_output=True, text=True)
        if proc.returncode not in (0, 1):
            print(f"{w}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        out = json.loads(proc.stdout)
        b, base = out["best"], out["baselines_ms"]
        peaks = out["machine_peaks"]
        rows.append((w, base.get("torch_eager"), base.get("torch_compile"), base.get("naive_cpp"),
                     b and b["median_s"] * 1e3, b and b["speedup"].get("torch_eager"),
                     b and b["speedup"].get("torch_compile"), b and b["sol"], out["counts"], peaks))
    print("| workload | eager ms | compile ms | naive C++ ms | best ms | vs eager | vs compile | SOL | attempts (verified) |")
    print("|---|---|---|---|---|---|---|---|---|")
    f = lambda v, p=2: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
    for w, e, c, n, best, se, sc, sol, counts, _ in rows:
        print(f"| {w} | {f(e)} | {f(c)} | {f(n)} | {f(best, 3)} | {f(se)}x | {f(sc)}x | {f(sol)} | "
              f"{counts['attempts']} ({counts['verified']}) |")
    if rows:
        p = rows[0][-1]
        print(f"\nmachine peaks: {p['bandwidth_gbps']:.1f} GB/s, {p['peak_gflops']:.0f} GFLOP/s ({p['method']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
