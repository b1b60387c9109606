"""How repeatable are kscout's numbers? Spread of repeated measurements and replay agreement.

    python bench/measurement.py [WORKLOAD ...] [--runs 5]

For each shipped workload, one good offline-template kernel (the last variant of
bench/templates_best.py) is evaluated `--runs` times in one worker, exactly as a search would
(verify, rotation sets, cache flush when needed, interleaved baselines). Reported side by side:

- within-run spread: the median over runs of IQR / median of the timed calls;
- across-run spread: max / min of the run medians;
- drift of torch eager and torch.compile re-timed after each run (interleaved / run-start);
- the speedup over the interleaved torch.compile, min and max over runs;
- replay: the first run's packet replayed by `harness.replay` in a fresh evaluator (new cases,
  new roofline, new baselines): its median, the agreement band, and whether it fell inside.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents import templates  # noqa: E402
from bench.templates_best import VARIANTS  # noqa: E402
from harness import workload  # noqa: E402
from harness.attempt import COMPILED, EAGER, Evaluator  # noqa: E402
from harness.config import HarnessConfig  # noqa: E402
from harness.evidence import Candidate, Verdict  # noqa: E402
from harness.replay import replay  # noqa: E402


def one(name: str, runs: int, cfg: HarnessConfig) -> dict:
    wl = workload.load(workload.resolve(name))
    variant, params = list(VARIANTS[name].items())[-1]
    fam = templates.get(wl.spec.family)
    full = fam.defaults() | params
    ev = Evaluator(wl, cfg=cfg)
    ev.measure_roofline()
    ev.measure_eager()
    ev.measure_compiled()
    cand = Candidate(source=fam.render(full), workload=name, params=full, strategy=fam.strategy(full))
    packets = []
    for r in range(runs):
        p = ev.evaluate(cand, replay_command="bench/measurement.py")
        if p.verdict != Verdict.accepted:
            raise SystemExit(f"{name} {variant}: rejected on run {r}: {p.failure_class} {p.failure_message}")
        packets.append(p)
        print(f"  {name} run {r + 1}/{runs}: {p.bench.candidate.median_s * 1e3:.3f} ms "
              f"(IQR {p.bench.candidate.iqr_rel:.1%}), vs compile {p.bench.speedup.get(COMPILED, float('nan')):.2f}x, "
              f"SOL {p.bench.roofline.sol:.2f}", flush=True)
    ev.close()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "packet.json"
        path.write_text(packets[0].model_dump_json())
        rep = replay(packets[0], cfg)
    meds = [p.bench.candidate.median_s for p in packets]
    drift = {k: [p.bench.drift.get(k) for p in packets if k in p.bench.drift] for k in (EAGER, COMPILED)}
    vs_compile = [p.bench.speedup[COMPILED] for p in packets if COMPILED in p.bench.speedup]
    return {
        "workload": name, "variant": variant, "median_ms": statistics.median(meds) * 1e3,
        "within_iqr": statistics.median(p.bench.candidate.iqr_rel for p in packets),
        "across": max(meds) / min(meds),
        "eager_drift": (min(drift[EAGER]), max(drift[EAGER])) if drift[EAGER] else None,
        "compile_drift": (min(drift[COMPILED]), max(drift[COMPILED])) if drift[COMPILED] else None,
        "vs_compile": (min(vs_compile), max(vs_compile)) if vs_compile else None,
        "sol": statistics.median(p.bench.roofline.sol for p in packets),
        "replay_ms": rep.replayed.bench.candidate.median_s * 1e3 if rep.replayed.bench else None,
        "band_ms": tuple(b * 1e3 for b in rep.band_s) if rep.band_s else None, "reproduced": rep.reproduced,
        "replay_verdict": rep.replayed.verdict.value,
    }


def _rng(t, fmt="{:.2f}"):
    return "n/a" if t is None else f"{fmt.format(t[0])}–{fmt.format(t[1])}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workloads", nargs="*", default=list(VARIANTS))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    cfg = HarnessConfig(cache_dir=Path(tempfile.mkdtemp(prefix="kscout-bench-build-")))
    rows = [one(w, args.runs, cfg) for w in args.workloads]
    print("\n| workload | kernel | median (ms) | within-run IQR | across runs max/min | eager drift | "
          "compile drift | vs torch.compile | SOL | replay (ms) | band (ms) | reproduced |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['variant']} | {r['median_ms']:.3f} | {r['within_iqr']:.1%} | {r['across']:.2f}x | "
              f"{_rng(r['eager_drift'])} | {_rng(r['compile_drift'])} | {_rng(r['vs_compile'])}x | {r['sol']:.2f} | "
              f"{r['replay_ms']:.3f} | {_rng(r['band_ms'], '{:.3f}')} | {'yes' if r['reproduced'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
