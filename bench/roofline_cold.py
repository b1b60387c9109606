"""The CPU bandwidth probes warm and cold, side by side: why the roofline evicts before each pass.

    python bench/roofline_cold.py [--mib 64 128 512] [--threads N]

For each array size, every bandwidth probe of harness/roofline.py (torch triad, torch sum, the
compiled read of four streams per thread, the compiled triad with non-temporal stores) is timed
best-of-8 twice in one run: on warm arrays (what the roofline measured before bound method 2) and
on arrays evicted from every cache level before each pass (what it measures now, and how
candidates' inputs are timed). Where warm is much faster, the last-level cache served the probe,
and a bound measured that way is out of reach of a kernel whose inputs come from memory.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from harness.roofline import _best_time, _evictor, _probe_library


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, nargs="+", default=[64, 128, 512], help="array sizes (MiB each)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    evict_fn = _evictor("g++", Path(tempfile.gettempdir()) / "kscout-bench-cache")
    lib = _probe_library()
    if evict_fn is None or lib is None:
        raise SystemExit("needs g++ and an x86 CPU (the eviction library and the compiled probes)")

    def cold(*ts) -> None:
        for t in ts:
            evict_fn(t.data_ptr(), t.numel() * t.element_size())

    print(f"{args.threads} threads; GB/s, best of 8 passes")
    print(f"{'MiB':>5}  {'probe':32s} {'warm':>7} {'evicted':>8} {'warm/evicted':>13}")
    for mib in args.mib:
        n = (mib << 20) // 4
        a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
        probes = {
            "triad c=a+2b (torch)": (3, lambda: torch.add(a, b, alpha=2.0, out=c), (a, b, c)),
            "sum (torch)": (1, lambda: a.sum(), (a,)),
            "read, 4 streams/thread": (1, lambda: lib.read_streams(a.data_ptr(), n, args.threads), (a,)),
            "triad, non-temporal stores": (3, lambda: lib.triad_nt(a.data_ptr(), b.data_ptr(), c.data_ptr(), n,
                                                                   args.threads), (a, b, c)),
        }
        for name, (arrays, fn, ts) in probes.items():
            warm = arrays * n * 4 / _best_time(fn, 8) / 1e9
            evicted = arrays * n * 4 / _best_time(fn, 8, lambda: cold(*ts)) / 1e9
            print(f"{mib:5d}  {name:32s} {warm:7.1f} {evicted:8.1f} {warm / evicted:12.2f}x")
        del a, b, c


if __name__ == "__main__":
    main()
