"""Per-candidate cost of a Triton candidate's child processes: fork server vs fresh interpreters.

    python bench/fork_server.py [WORKLOAD ...] [--rounds 2]

A Triton candidate runs up to four children (import check, GPU-target compile check for
`harness.triton_targets`, verify, bench), each of which imports torch and triton when started as
a fresh interpreter. For each workload (default: bias_gelu, softmax, rmsnorm), every move of its
Triton template family is evaluated end to end, as a search would (Triton's interpreter, bench
shape shrunk to the smallest declared shape so the imports, not numpy emulation, dominate), once
with `harness.fork_server = true` and once with false. The two configurations alternate candidate
by candidate, each with its own build cache (nothing is cached across them), so machine noise hits
both alike. Printed: wall seconds per candidate for each, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import templates  # noqa: E402
from harness import forkserver  # noqa: E402
from harness.attempt import Evaluator  # noqa: E402
from harness.config import HarnessConfig  # noqa: E402
from harness.evidence import Candidate, Verdict  # noqa: E402
from tests.agents.test_templates import smallest_bench_copy  # noqa: E402


def sources(name: str) -> list[tuple[dict, str]]:
    fam = templates.get(name, "triton")
    out, seen = [], set()
    for params in [fam.defaults()] + [dict(fam.defaults(), **{**m.requires, **m.assigns}) for m in fam.moves]:
        if fam.code_key(params) not in seen:
            seen.add(fam.code_key(params))
            out.append((params, fam.render(params)))
    return out


def one(name: str, root: Path, rounds: int) -> dict:
    wl = smallest_bench_copy(name, root / name)
    evs = {mode: Evaluator(wl, cfg=HarnessConfig(cache_dir=root / f"cache-{mode}-{name}", triton_interpret=True,
                                                  fork_server=mode == "fork"))
           for mode in ("fork", "fresh")}
    secs: dict[str, list[float]] = {m: [] for m in evs}
    try:
        cands = sources(name)
        for r in range(rounds):
            for i, (params, src) in enumerate(cands):
                order = ["fork", "fresh"] if (i + r) % 2 == 0 else ["fresh", "fork"]
                for mode in order:
                    # a different comment per round: a new source hash, so nothing comes from the build cache
                    c = Candidate(source=f"# round {r}\n{src}", backend="triton", workload=name, params=params)
                    t0 = time.monotonic()
                    p = evs[mode].evaluate(c)
                    secs[mode].append(time.monotonic() - t0)
                    if p.verdict != Verdict.accepted:
                        raise SystemExit(f"{name} {params}: {p.failure_class} {p.failure_message}")
    finally:
        for ev in evs.values():
            ev.close()
        forkserver._close_all()
    return {"workload": name, "candidates": len(secs["fork"]), **{m: statistics.median(v) for m, v in secs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=["bias_gelu", "softmax", "rmsnorm"])
    ap.add_argument("--rounds", type=int, default=2, help="times each candidate is evaluated per mode")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kscout-bench-fork-") as d:
        for name in args.workloads:
            rows.append(one(name, Path(d), args.rounds))
            r = rows[-1]
            print(f"{r['workload']:<12} {r['candidates']:>3} candidates  fork server {r['fork']:6.2f} s  "
                  f"fresh interpreters {r['fresh']:6.2f} s  per candidate (median)  ratio {r['fresh'] / r['fork']:.2f}x",
                  flush=True)
    print(f"geomean ratio (fresh / fork server): "
          f"{statistics.geometric_mean([r['fresh'] / r['fork'] for r in rows]):.2f}x")


if __name__ == "__main__":
    main()
