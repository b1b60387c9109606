"""Time a few best-guess offline template variants per workload on its real bench shape.

    python bench/templates_best.py [WORKLOAD ...]

For each workload: torch eager is timed once, then every variant below is compiled, verified
on all shapes and timed; prints the median, the speedup over eager and the achieved roofline
numbers (GB/s for the memory-bound ops, GFLOP/s for matmul).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agents import templates
from harness import workload
from harness.attempt import EAGER, Evaluator
from harness.config import HarnessConfig
from harness.evidence import Candidate

VARIANTS: dict[str, dict[str, dict]] = {
    "bias_gelu": {
        "naive": {},
        "fused+omp": {"fuse": "fused", "threads": "rows"},
        "fused+omp+simd": {"fuse": "fused", "threads": "rows", "vector": "omp_simd", "math": "poly"},
        "fused+omp+avx2x2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "unroll": 2},
        "fused+omp+avx2x2+nt": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "unroll": 2,
                                "store": "stream"},
    },
    "softmax": {
        "naive": {},
        "omp+simd": {"threads": "rows", "vector": "omp_simd", "math": "poly", "normalize": "reciprocal"},
        "omp+avx2x4": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal"},
        "omp+avx2x4+nt": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                          "store": "stream"},
        "online+omp+avx2x4": {"passes": "online", "threads": "rows", "vector": "avx2", "unroll": 4,
                              "normalize": "reciprocal"},
        "online+omp+avx2x4+nt": {"passes": "online", "threads": "rows", "vector": "avx2", "unroll": 4,
                                 "normalize": "reciprocal", "store": "stream"},
    },
    "rmsnorm": {
        "naive": {},
        "per_row+omp": {"fuse": "per_row", "threads": "rows"},
        "per_row+omp+simd": {"fuse": "per_row", "threads": "rows", "vector": "omp_simd"},
        "per_row+omp+avx2x4": {"fuse": "per_row", "threads": "rows", "vector": "avx2", "unroll": 4},
        "per_row+omp+avx2x4+nt": {"fuse": "per_row", "threads": "rows", "vector": "avx2", "unroll": 4,
                                  "store": "stream"},
    },
    "matmul": {
        "ikj+omp+avx2+tiled": {"loop_order": "ikj", "vector": "avx2", "tiling": "cache", "threads": "rows",
                               "tile_m": 48, "tile_n": 384, "tile_k": 256},
        "6x16+omp": {"micro": "6x16", "threads": "rows", "tile_m": 48, "tile_n": 3072, "tile_k": 256},
        "6x16+packA+omp": {"micro": "6x16", "pack_a": "yes", "threads": "rows", "tile_m": 48, "tile_n": 3072,
                           "tile_k": 256, "unroll_k": 4},
        "4x24+packA+omp": {"micro": "4x24", "pack_a": "yes", "threads": "rows", "tile_m": 48, "tile_n": 3072,
                           "tile_k": 256, "unroll_k": 4},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=list(VARIANTS))
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "kscout-bench-cache")
    args = ap.parse_args()
    for name in args.workloads:
        fam = templates.get(name)
        ev = Evaluator(workload.load(name), cfg=HarnessConfig(cache_dir=args.cache_dir))
        eager = ev.measure_eager()
        print(f"\n== {name} {ev.bench_case.shape.dims}: torch eager {eager.median_s * 1e3:.3f} ms "
              f"({ev.cfg.threads} threads)")
        for label, params in VARIANTS[name].items():
            pk = ev.evaluate(Candidate(source=fam.render(params), workload=name, params=params))
            if pk.verdict.value != "accepted" or pk.bench is None:
                print(f"  {label:26s} REJECTED {pk.failure_class}: {pk.failure_message[:300]}")
                continue
            t, rf = pk.bench.candidate, pk.bench.roofline
            print(f"  {label:26s} {t.median_s * 1e3:9.3f} ms  iqr {t.iqr_rel * 100:4.1f}%  "
                  f"x{pk.bench.speedup[EAGER]:6.2f} vs eager  {rf.achieved_gbps:6.1f} GB/s  "
                  f"{rf.achieved_gflops:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
