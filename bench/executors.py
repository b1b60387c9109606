"""The local executor against Ray: the same search, side by side, alternating, in one run.

    python bench/executors.py [--workload rmsnorm] [--dims "{ M = 64, N = 1024 }"] [--attempts 16] [--rounds 3]

Each round runs `kscout search` once with `--executor ray` and once with `--executor local` (the
order alternates between rounds, so a load change on this noisy machine hits both alike), on a
copy of the workload with a small bench shape so that orchestration is a visible share of an
attempt. For each run, from the process's own clock and the experiment log:
- startup: from launching the command to the first attempt recorded (Ray's start, the workers'
  baselines, the naive kernel);
- steady rate: attempts per minute between the first and the last recorded attempt (what the
  loop, the proposer, the actor calls and the worker's own Python work add to the candidates'
  child processes; on the local executor the driver and the worker share one interpreter).
Printed: medians per executor and local/ray ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def small_copy(name: str, dest: Path, dims: str) -> Path:
    d = dest / name
    shutil.copytree(ROOT / "workloads" / name, d)
    toml = d / "workload.toml"
    toml.write_text(re.sub(r'(name = "bench"\ndims = )\{[^}]*\}', r"\g<1>" + dims, toml.read_text()))
    return d


def one(workload: Path, executor: str, attempts: int, runs: Path) -> dict:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONPATH=str(ROOT))
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "kscout.cli", "search", str(workload), "--executor", executor,
                           "--attempts", str(attempts), "--time", "1h", "--json", "--runs-dir", str(runs)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"--executor {executor} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout)
    con = sqlite3.connect(Path(out["run_dir"]) / "kscout.db")
    rows = con.execute("select created_at from attempts order by seq").fetchall()
    # created_at is stored as UTC without a zone
    stamps = [datetime.fromisoformat(r[0]).replace(tzinfo=timezone.utc).timestamp() for r in rows]
    span = stamps[-1] - stamps[0]
    n = len(rows) - 1
    return {"executor": executor, "wall_s": wall, "startup_s": stamps[0] - t0,
            "per_min": 60 * n / span if span > 0 else float("nan"),
            "attempts": len(rows), "best": (out.get("best") or {}).get("speedup", {}).get("torch_eager")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="rmsnorm")
    ap.add_argument("--dims", default="{ M = 64, N = 1024 }")
    ap.add_argument("--attempts", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kscout-bench-executors-"))
    wl = small_copy(args.workload, tmp, args.dims)
    results = []
    for r in range(args.rounds):
        for ex in (("ray", "local") if r % 2 == 0 else ("local", "ray")):
            res = one(wl, ex, args.attempts, tmp / "runs")
            results.append(res)
            print(f"round {r + 1} {ex:5s}: wall {res['wall_s']:6.1f} s  startup {res['startup_s']:5.1f} s  "
                  f"{res['per_min']:5.1f} attempts/min  "
                  f"({res['attempts']} attempts, best {res['best'] or 0:.2f}x eager)", flush=True)
    print()
    print(f"{args.workload} {args.dims}, {args.attempts} attempts, {args.rounds} rounds (medians):")
    print("| executor | wall s | startup s | attempts/min |")
    print("|---|---|---|---|")
    med = {}
    for ex in ("ray", "local"):
        mine = [x for x in results if x["executor"] == ex]
        med[ex] = {k: statistics.median(x[k] for x in mine) for k in ("wall_s", "startup_s", "per_min")}
        m = med[ex]
        print(f"| {ex} | {m['wall_s']:.1f} | {m['startup_s']:.1f} | {m['per_min']:.1f} |")
    ratio = {k: med["local"][k] / med["ray"][k] if med["ray"][k] else float("nan") for k in med["ray"]}
    print(f"| local / ray | {ratio['wall_s']:.2f} | {ratio['startup_s']:.2f} | {ratio['per_min']:.2f} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
