"""Starting timed CPU calls cold: clflushopt of each call's working set vs writing 2 x LLC.

    .venv/bin/python bench/cache_eviction.py [WORKLOAD ...] [--rounds 3]

For each workload (default: bias_gelu, rmsnorm, softmax, matmul), the stacked kernel of its C++
template family (every move expected to gain, as the search's second attempt) is evaluated end
to end, as a search would (verify, bench, baselines re-timed beside it), with
`harness.timing.evict = true` (the default: the harness's clflushopt library evicts the next
call's inputs and output) and with false (2 x the last-level cache written before every call).
The two alternate attempt by attempt with one Evaluator each, so machine noise hits both alike.
Printed per workload: bench seconds per attempt (the candidate's timed calls and the re-timed
eager baseline), the candidate's and eager's medians, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import templates  # noqa: E402
from harness import workload  # noqa: E402
from harness.attempt import EAGER, Evaluator  # noqa: E402
from harness.backends.cpu_cpp import last_level_cache_bytes  # noqa: E402
from harness.config import HarnessConfig, TimingPolicy  # noqa: E402
from harness.evidence import Candidate, Verdict  # noqa: E402
from search.planner import stack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("workloads", nargs="*", default=["bias_gelu", "rmsnorm", "softmax", "matmul"])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"last-level cache as reported: {last_level_cache_bytes() / 2**20:.0f} MiB "
          f"(the fallback writes {2 * last_level_cache_bytes() / 2**20:.0f} MiB before every timed call)\n")
    print("| workload | bench s / attempt: evict | write 2xLLC | ratio | candidate median ms: evict | write | "
          "eager median ms: evict | write |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workloads:
            fam = templates.get(workload.load(name).spec.family)
            params, _ = stack(fam, fam.defaults(), fam.prior_gain)
            src = fam.render(params)
            evs = {mode: Evaluator(workload.load(name), cfg=HarnessConfig(
                cache_dir=Path(tmp) / mode, compiled_baseline=False, timing=TimingPolicy(evict=mode == "evict")))
                for mode in ("evict", "write")}
            for e in evs.values():
                e.measure_eager()
            got: dict[str, list] = {m: [] for m in evs}
            for _ in range(args.rounds):
                for mode, e in evs.items():
                    p = e.evaluate(Candidate(source=src, workload=name, params=params))
                    if p.verdict != Verdict.accepted:
                        print(f"{name} ({mode}): {p.verdict.value} {p.failure_class}: {p.failure_message}", file=sys.stderr)
                        continue
                    got[mode].append((p.cost.bench_s, p.bench.candidate.median_s, p.bench.interleaved[EAGER].median_s))
            for e in evs.values():
                e.close()
            med = {m: [statistics.median(col) for col in zip(*rows)] for m, rows in got.items() if rows}
            if len(med) < 2:
                continue
            (bs_e, c_e, e_e), (bs_w, c_w, e_w) = med["evict"], med["write"]
            print(f"| {name} | {bs_e:.2f} | {bs_w:.2f} | {bs_w / bs_e:.1f}x | {c_e * 1e3:.3f} | {c_w * 1e3:.3f} | "
                  f"{e_e * 1e3:.2f} | {e_w * 1e3:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
