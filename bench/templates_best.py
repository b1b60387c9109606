"""Time a few best-guess offline template variants per workload on its real bench shape.

    python bench/templates_best.py [WORKLOAD ...]

For each workload: torch eager is timed, then every variant below is compiled, verified on all
shapes and timed; prints the median, the speedup over eager and the achieved roofline numbers
(GB/s for the memory-bound ops, GFLOP/s for matmul). With --rounds R (for a shared, noisy
machine) eager and every variant are timed R times, interleaved, and the best median of each is
kept; the speedup is then best eager median / best candidate median.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agents import templates
from harness import workload
from harness.attempt import Evaluator
from harness.config import HarnessConfig
from harness.evidence import Candidate, EvidencePacket

VARIANTS: dict[str, dict[str, dict]] = {
    "bias_gelu": {
        "naive": {},
        "fused+omp+simd": {"fuse": "fused", "threads": "rows", "vector": "omp_simd", "math": "poly"},
        "fused+omp+avx2x4": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "unroll": 4},
        "fused+omp+avx2x4+nt": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "unroll": 4,
                                "store": "stream"},
        "fused+omp+avx2x4+nt+exp2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly",
                                     "unroll": 4, "store": "stream", "exp": "exp2"},
        "fused+omp+avx512x4+nt": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "unroll": 4,
                                  "store": "stream", "simd_width": 16},
        "fused+omp+avx512x4+nt+exp2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly",
                                       "unroll": 4, "store": "stream", "simd_width": 16, "exp": "exp2"},
        "fused+omp+avx512x2+nt+exp2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly",
                                       "unroll": 2, "store": "stream", "simd_width": 16, "exp": "exp2"},
    },
    "softmax": {
        "naive": {},
        "omp+simd": {"threads": "rows", "vector": "omp_simd", "math": "poly", "normalize": "reciprocal"},
        "omp+avx2x4": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal"},
        "omp+avx2x4+pf": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                          "prefetch": "next_row"},
        "omp+avx2x4+nt+pf": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                             "store": "stream", "prefetch": "next_row"},
        "online+omp+avx2x4+nt+pf": {"passes": "online", "threads": "rows", "vector": "avx2", "unroll": 4,
                                    "normalize": "reciprocal", "store": "stream", "prefetch": "next_row"},
        "omp+avx2x4+nt+pf+exp2": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                                  "store": "stream", "prefetch": "next_row", "exp": "exp2"},
        "omp+avx512x4+nt+pf": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                               "store": "stream", "prefetch": "next_row", "simd_width": 16},
        "omp+avx512x4+nt+pf+exp2": {"threads": "rows", "vector": "avx2", "unroll": 4, "normalize": "reciprocal",
                                    "store": "stream", "prefetch": "next_row", "simd_width": 16, "exp": "exp2"},
        "online+omp+avx512x4+nt+pf+exp2": {"passes": "online", "threads": "rows", "vector": "avx2", "unroll": 4,
                                           "normalize": "reciprocal", "store": "stream", "prefetch": "next_row",
                                           "simd_width": 16, "exp": "exp2"},
    },
    "swiglu": {
        "fused+omp+avx2x4+nt": {"fuse": "fused", "threads": "rows", "vector": "avx2", "unroll": 4, "store": "stream"},
        "fused+omp+avx2x4+nt+exp2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "unroll": 4,
                                     "store": "stream", "exp": "exp2"},
        "fused+omp+avx512x4+nt": {"fuse": "fused", "threads": "rows", "vector": "avx2", "unroll": 4,
                                  "store": "stream", "simd_width": 16},
        "fused+omp+avx512x4+nt+exp2": {"fuse": "fused", "threads": "rows", "vector": "avx2", "unroll": 4,
                                       "store": "stream", "simd_width": 16, "exp": "exp2"},
    },
    "bmm": {
        "6x16+packA+omp-batch": {"micro": "6x16", "pack_a": "yes", "threads": "batch", "unroll_k": 4},
        "4x24+packA+omp-batch": {"micro": "4x24", "pack_a": "yes", "threads": "batch", "unroll_k": 4},
        "12x32+packA+omp-batch": {"micro": "12x32", "pack_a": "yes", "threads": "batch", "unroll_k": 4},
        "12x32+packA+omp-rows": {"micro": "12x32", "pack_a": "yes", "threads": "rows", "unroll_k": 4},
    },
    "rmsnorm": {
        "naive": {},
        "per_row+omp": {"fuse": "per_row", "threads": "rows"},
        "per_row+omp+simd": {"fuse": "per_row", "threads": "rows", "vector": "omp_simd"},
        "per_row+omp+avx2x4": {"fuse": "per_row", "threads": "rows", "vector": "avx2", "unroll": 4},
        "per_row+omp+avx2x4+nt": {"fuse": "per_row", "threads": "rows", "vector": "avx2", "unroll": 4,
                                  "store": "stream"},
        "per_row+omp+avx2x4+nt+pf": {"fuse": "per_row", "threads": "rows", "vector": "avx2", "unroll": 4,
                                     "store": "stream", "prefetch": "next_row"},
    },
    "conv2d": {   # the AVX2 tile the 40-attempt sweep found, the AVX-512 tile, the channels-in-lanes tile
        "tile avx2 6x2 c32 kb_h": {"algo": "tile", "tile": "6x2", "tile_c": 32, "order": "kb_h", "threads": "planes"},
        "tile avx512 6x4 c0 kb_h": {"algo": "tile", "tile": "6x4", "tile_c": 0, "order": "kb_h", "threads": "planes",
                                    "simd_width": 16},
        **{f"kvec avx2 {t}": {"algo": "kvec", "kvec_tile": t, "threads": "planes"} for t in ("1x8", "2x4", "2x8")},
        **{f"kvec avx512 {t}": {"algo": "kvec", "kvec_tile": t, "threads": "planes", "simd_width": 16}
           for t in ("2x8", "2x10", "2x12", "4x4")},
    },
    "cross_entropy": {   # the 40-attempt sweep's best (AVX2), then the same on zmm
        **{f"online+exp2+segments+pf {'avx2' if w == 8 else 'avx512'} x{u}": {
            "passes": "online", "threads": "rows", "vector": "avx2", "math": "poly", "exp": "exp2",
            "sweep": "segments", "prefetch": "ahead", "unroll": u, "simd_width": w}
           for w, u in [(8, 4), (16, 4), (16, 2)]},
        "two+exp2 avx512 x4": {"passes": "two", "threads": "rows", "vector": "avx2", "math": "poly", "exp": "exp2",
                               "unroll": 4, "simd_width": 16},
    },
    "int8_matmul": {   # the 40-attempt sweep's best (AVX2 4x3), then the same and larger tiles on zmm
        **{f"{'avx2' if w == 8 else 'avx512'} {t}": {"order": "nm", "dequant": "scale_after", "threads": "cols",
                                                     "vector": "avx2", "tile": t, "simd_width": w}
           for w, t in [(8, "4x3"), (16, "4x3"), (16, "4x4"), (16, "8x2"), (16, "8x3"), (16, "4x6")]},
    },
    "matmul": {
        "ikj+omp+avx2+tiled": {"loop_order": "ikj", "vector": "avx2", "tiling": "cache", "threads": "rows",
                               "unroll_k": 4, "tile_m": 24, "tile_n": 3072, "tile_k": 64},
        "6x16+omp": {"micro": "6x16", "threads": "rows"},
        "6x16+packA+omp": {"micro": "6x16", "pack_a": "yes", "threads": "rows", "unroll_k": 4},
        "6x16+packA+omp mc96": {"micro": "6x16", "pack_a": "yes", "threads": "rows", "unroll_k": 4, "tile_m": 96},
        "4x24+packA+omp": {"micro": "4x24", "pack_a": "yes", "threads": "rows", "unroll_k": 4},
        "12x32+packA+omp": {"micro": "12x32", "pack_a": "yes", "threads": "rows", "unroll_k": 4},
    },
}


def _median(pk: EvidencePacket) -> float:
    return pk.bench.candidate.median_s if pk.verdict.value == "accepted" and pk.bench else float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=list(VARIANTS))
    ap.add_argument("--rounds", type=int, default=1, help="time everything R times, keep the best median")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "kscout-bench-cache")
    args = ap.parse_args()
    for name in args.workloads:
        fam = templates.get(name)
        ev = Evaluator(workload.load(name), cfg=HarnessConfig(cache_dir=args.cache_dir))
        eager: list[float] = []
        best: dict[str, EvidencePacket] = {}
        for _ in range(args.rounds):
            eager.append(ev.measure_eager().median_s)
            for label, params in VARIANTS[name].items():
                pk = ev.evaluate(Candidate(source=fam.render(params), workload=name, params=params))
                if label not in best or _median(pk) < _median(best[label]):
                    best[label] = pk
        e = min(eager)
        print(f"\n== {name} {ev.bench_case.shape.dims}: torch eager {e * 1e3:.3f} ms "
              f"(best of {args.rounds}; {ev.cfg.threads} threads)")
        for label, pk in best.items():
            if pk.verdict.value != "accepted" or pk.bench is None:
                print(f"  {label:26s} REJECTED {pk.failure_class}: {pk.failure_message[:300]}")
                continue
            t, rf = pk.bench.candidate, pk.bench.roofline
            print(f"  {label:26s} {t.median_s * 1e3:9.3f} ms  iqr {t.iqr_rel * 100:4.1f}%  "
                  f"x{e / t.median_s:6.2f} vs eager  {rf.achieved_gbps:6.1f} GB/s  {rf.achieved_gflops:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
