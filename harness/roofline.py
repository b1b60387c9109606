"""This machine's roofline: peak memory bandwidth and FLOP/s, measured once and cached.

Bandwidth is the larger of the best timed triad (c = a + 2b over arrays far larger than the last
cache level: three streams) and the best read-only sum over one such array; peak FLOP/s is the best of several fp32 GEMMs through torch (the
vendor BLAS). Both are labelled with how they were measured. A kernel's speed-of-light (SOL)
score is the roofline-bound time divided by its measured time: 1.0 is the bound, and a score
above 1 means the measurement or the cost model is wrong, never a win.

Measured at the start of every run (about two seconds), not cached: a shared machine's bandwidth
changes with its load, and a stale, low figure would flatter every SOL score after it.
"""

from __future__ import annotations

import platform
import socket
import time

from pydantic import BaseModel

from harness.envinfo import cpu_model


class MachinePeaks(BaseModel):
    machine: str
    threads: int
    bandwidth_gbps: float
    peak_gflops: float
    method: str


def _best_time(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(threads: int) -> MachinePeaks:
    import torch
    torch.set_num_threads(threads)
    n = 32 << 20                       # 128 MiB per array: far beyond any L3
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    triad = 3 * n * 4 / _best_time(lambda: torch.add(a, b, alpha=2.0, out=c), 8) / 1e9
    # A read-only stream has no write-allocate traffic, which the triad's regular stores pay and
    # do not count; kernels with streaming stores approach it, so the bound is the larger one.
    read = n * 4 / _best_time(lambda: a.sum(), 8) / 1e9
    bw = max(triad, read)
    m = 2048
    x, y = torch.randn(m, m), torch.randn(m, m)
    tf = _best_time(lambda: torch.mm(x, y), 5)
    return MachinePeaks(machine=f"{socket.gethostname()} / {cpu_model()} / {platform.machine()}", threads=threads,
                        bandwidth_gbps=bw, peak_gflops=2 * m ** 3 / tf / 1e9,
                        method=f"max(triad c=a+2b on 3x128 MiB, sum over 128 MiB) fp32 (best of 8); torch.mm {m}^3 fp32 (best of 5); "
                               f"{threads} threads")

