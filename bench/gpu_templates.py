"""Every strategy of the GPU template families, timed on a GPU against GPU torch eager and torch.compile.

    python bench/gpu_templates.py bias_gelu matmul --backend cuda triton [--tunables] [--json OUT]

Needs only the harness's dependencies (torch, pydantic, and triton for Triton candidates): it runs
on a bare GPU box where the rest of kscout (ray, sqlalchemy, dspy, litellm) is not installed, so a
search cannot run there but this exhaustive sweep of the offline strategy space can. For each
workload and backend: the roofline and the torch baselines are measured once on cuda:0, then every
combination of the family's strategy axes (tunables at their defaults; with --tunables, also every
tunable value on the fastest combination) is compiled, verified on every shape and timed by the
same Evaluator a search uses. Prints one markdown table per workload: the candidates ranked, with
speedup over eager and torch.compile and SOL, then the device, versions and peaks.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import templates  # noqa: E402
from harness import gpu, workload  # noqa: E402
from harness.attempt import COMPILED, EAGER, Evaluator  # noqa: E402
from harness.config import HarnessConfig  # noqa: E402
from harness.evidence import Candidate, Verdict  # noqa: E402


def evaluate_all(ev: Evaluator, fam, backend: str, points: list[dict]) -> list[dict]:
    rows = []
    for i, p in enumerate(points, 1):
        t0 = time.monotonic()
        pk = ev.evaluate(Candidate(source=fam.render(p), backend=backend, workload=ev.workload.name, params=p))
        b = pk.bench
        rows.append({"params": p, "strategy": fam.strategy(fam.validate_params(p)), "verdict": pk.verdict.value,
                     "failure": pk.failure_class.value if pk.failure_class else None,
                     "message": pk.failure_message[:300], "median_ms": b.candidate.median_s * 1e3 if b else None,
                     "iqr_rel": b.candidate.iqr_rel if b else None,
                     "vs_eager": b.speedup.get(EAGER) if b else None, "vs_compile": b.speedup.get(COMPILED) if b else None,
                     "sol": b.roofline.sol if b and b.roofline else None})
        r = rows[-1]
        print(f"  [{i}/{len(points)}] {r['verdict']:8s} {r['median_ms'] or 0:9.4f} ms  {p}  ({time.monotonic() - t0:.1f} s)"
              + (f"  {r['failure']}: {r['message'][:120]}" if r["failure"] else ""), file=sys.stderr, flush=True)
    return rows


def table(name: str, backend: str, ev: Evaluator, rows: list[dict]) -> str:
    f = lambda v, p=2: "—" if v is None else f"{v:.{p}f}"  # noqa: E731
    base = {k: v.median_s * 1e3 for k, v in ev.baselines.items()}
    out = [f"### {name} ({backend}): torch eager {f(base.get(EAGER), 4)} ms, torch.compile "
           f"{f(base.get(COMPILED), 4)} ms" + (f" ({ev.baseline_errors[COMPILED][:80]})" if COMPILED in ev.baseline_errors
                                               else ""), "",
           "| strategy | verdict | median ms | vs eager | vs torch.compile | SOL |", "|---|---|---|---|---|---|"]
    ranked = sorted(rows, key=lambda r: (r["median_ms"] is None, r["median_ms"] or 0))
    for r in ranked:
        out.append(f"| {r['strategy']} | {r['verdict'] if not r['failure'] else r['failure']} | {f(r['median_ms'], 4)} | "
                   f"{f(r['vs_eager'])}x | {f(r['vs_compile'])}x | {f(r['sol'])} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="+")
    ap.add_argument("--backend", nargs="+", default=["cuda", "triton"])
    ap.add_argument("--tunables", action="store_true", help="also sweep each tunable on the fastest strategy")
    ap.add_argument("--json", default=None, help="write every row here")
    args = ap.parse_args()
    info = gpu.detect()
    if info is None:
        print("error: no GPU here (torch.cuda.is_available() is False); this benchmark times GPU kernels against "
              "GPU baselines. On a machine without one, `pytest tests/agents/test_cuda_templates.py` compiles the "
              "CUDA templates and tests/agents/test_triton_templates.py verifies the Triton ones in the interpreter.",
              file=sys.stderr)
        return 2
    import torch
    try:
        import triton
        triton_v = triton.__version__
    except ImportError:
        triton_v = "not installed"
    print(f"device: {info.name} ({info.vendor}, {info.arch}, warp {info.warp_size}, {info.runtime}); python "
          f"{platform.python_version()}, torch {torch.__version__}, triton {triton_v}", flush=True)
    everything = []
    for name in args.workloads:
        wl = workload.load(name)
        for backend in args.backend:
            if backend == "hip" and info.vendor != "amd" or backend == "cuda" and info.vendor != "nvidia":
                continue
            if backend not in wl.spec.backends:
                print(f"{name}: backend {backend} not in its backends {wl.spec.backends}; skipped", file=sys.stderr)
                continue
            fam = templates.get(wl.spec.family, backend)
            cfg = HarnessConfig(cache_dir=Path(tempfile.mkdtemp(prefix="kscout-gpu-build-")))
            ev = Evaluator(wl, cfg=cfg, device="cuda")
            try:
                print(f"{name} ({backend}): measuring the roofline and torch baselines on the GPU", file=sys.stderr)
                ev.measure_roofline()
                ev.measure_eager()
                ev.measure_compiled()
                rows = evaluate_all(ev, fam, backend, fam.strategy_points())
                timed = [r for r in rows if r["median_ms"] is not None]
                if args.tunables and timed:
                    best = min(timed, key=lambda r: r["median_ms"])["params"]
                    extra = [dict(best, **{a.name: v}) for a in fam.tunables() for v in a.values if v != a.default]
                    rows += evaluate_all(ev, fam, backend, extra)
                print(table(name, backend, ev, rows) + "\n", flush=True)
                p = ev.peaks
                print(f"peaks: {p.bandwidth_gbps:.0f} GB/s, {p.gflops('float32'):.0f} GFLOP/s fp32 ({p.method})\n",
                      flush=True)
                everything.append({"workload": name, "backend": backend, "rows": rows,
                                   "baselines_ms": {k: v.median_s * 1e3 for k, v in ev.baselines.items()},
                                   "peaks": p.model_dump()})
            finally:
                ev.close()
    if args.json:
        Path(args.json).write_text(json.dumps({"device": info.model_dump(), "results": everything}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
