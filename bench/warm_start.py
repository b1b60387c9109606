"""Does memory pay? Attempts-to-best for a cold and a warm start on a second workload of a family.

    python bench/warm_start.py [--family-workload rmsnorm] [--first 20] [--second 12]

1. A first search on the shipped workload (its own bench shape) fills a runs folder.
2. A second workload of the same op family (the same reference, bench shape transposed in
   aspect: twice the rows, half the columns) is searched twice with the same budget:
   cold (an empty runs folder) and warm (the first run's folder, so memory/knowledge.py applies).
Printed side by side: the best speedup over torch eager and over torch.compile after every
attempt, attempts until the run's final best was first reached (within 3%), and attempts until
each run reached 90% of the cold run's final best.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def search(workload: Path, attempts: int, runs: Path) -> dict:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = subprocess.run([sys.executable, "-m", "kscout.cli", "search", str(workload), "--attempts", str(attempts),
                           "--time", "2h", "--json", "--runs-dir", str(runs)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(proc.stderr[-3000:])
    out = json.loads(proc.stdout)
    con = sqlite3.connect(Path(out["run_dir"]) / "kscout.db")
    rows = con.execute("select seq, verdict, packet from attempts order by seq").fetchall()
    curve, best_e, best_c = [], 0.0, 0.0
    for seq, verdict, packet in rows:
        if verdict == "accepted":
            sp = json.loads(packet)["bench"]["speedup"]
            best_e = max(best_e, sp.get("torch_eager", 0.0))
            best_c = max(best_c, sp.get("torch_compile", 0.0))
        curve.append((seq, best_e, best_c))
    out["curve"] = curve
    return out


def first_reaching(curve, target: float) -> int | None:
    return next((seq for seq, e, _ in curve if e >= target), None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family-workload", default="rmsnorm")
    ap.add_argument("--first", type=int, default=20)
    ap.add_argument("--second", type=int, default=12)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kscout-warm-"))
    src = ROOT / "workloads" / args.family_workload
    second = tmp / f"{args.family_workload}_tall"
    shutil.copytree(src, second)
    toml = second / "workload.toml"
    text = toml.read_text()
    m = re.search(r'name = "bench"\ndims = \{([^}]*)\}', text)
    dims = dict((k.strip(), int(v)) for k, v in (kv.split("=") for kv in m.group(1).split(",")))
    keys = list(dims)
    tall = {keys[0]: dims[keys[0]] * 2, keys[1]: dims[keys[1]] // 2, **{k: dims[k] for k in keys[2:]}}
    text = text.replace(m.group(0), 'name = "bench"\ndims = { ' + ", ".join(f"{k} = {v}" for k, v in tall.items()) + " }")
    toml.write_text(re.sub(r'^name = ".*"', f'name = "{second.name}"', text, count=1, flags=re.M))
    print(f"first: {args.family_workload} {dims}; second: {second.name} {tall}", flush=True)

    warm_runs, cold_runs = tmp / "warm", tmp / "cold"
    first = search(src, args.first, warm_runs)
    print(f"first run {first['run_id']}: best {first['curve'][-1][1]:.2f}x eager", flush=True)
    cold = search(second, args.second, cold_runs)
    warm = search(second, args.second, warm_runs)
    print("\n| attempt | cold: best vs eager | cold: vs compile | warm: best vs eager | warm: vs compile |")
    print("|---|---|---|---|---|")
    for (s, ce, cc), (_, we, wc) in zip(cold["curve"], warm["curve"]):
        print(f"| {s} | {ce:.2f}x | {cc:.2f}x | {we:.2f}x | {wc:.2f}x |")
    cold_final, warm_final = cold["curve"][-1][1], warm["curve"][-1][1]
    print(f"\ncold: final {cold_final:.2f}x eager, reached (within 3%) at attempt "
          f"{first_reaching(cold['curve'], cold_final * 0.97)}")
    print(f"warm: final {warm_final:.2f}x eager, reached (within 3%) at attempt "
          f"{first_reaching(warm['curve'], warm_final * 0.97)}")
    target = 0.9 * cold_final
    print(f"attempts to reach 90% of the cold run's final best ({target:.2f}x): cold "
          f"{first_reaching(cold['curve'], target)}, warm {first_reaching(warm['curve'], target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
