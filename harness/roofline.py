"""This machine's roofline: peak memory bandwidth and FLOP/s per dtype, measured and cached.

Bandwidth is the largest of the best timed triad (c = a + 2b over arrays far larger than the last
cache level: three streams), the best read-only sum over one such array, and a compiled read of
four independent streams per thread (one stream per core understates this machine by ~15%, which
rejected honest kernels as measurement faults). Peak FLOP/s per
dtype is the larger of a compiled FMA-throughput loop (independent vector accumulators, all
threads) and the vendor BLAS (torch.mm), so a kernel that beats MKL is not mistaken for a
measurement fault. A kernel's speed-of-light (SOL) score is the roofline-bound time divided by
its measured time: 1.0 is the bound. A score above 1 (plus a margin for noise) means the
measurement or the cost model is wrong, and the attempt is rejected as `measurement_fault`.

The figures are cached per machine (CPU model, threads) and only ever raised: each run measures
again (about three seconds) and keeps the best seen. On a shared machine a measurement taken
under load is low, and a low bound would both flatter SOL scores and reject honest kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from harness.envinfo import cpu_model

CACHE = Path.home() / ".cache" / "kscout" / "roofline.json"

# fp32/fp64 FMA throughput: 12 independent 256/512-bit accumulators per thread hide FMA latency.
_FMA_SRC = r"""
#include <stdint.h>
#include <omp.h>
#define ACC 12
#define DEF(T, W, NAME)                                                              \
typedef T NAME##_v __attribute__((vector_size(W)));                                 \
extern "C" double NAME(int64_t iters, int nthreads) {                                              \
    double total = 0;                                                                \
    _Pragma("omp parallel num_threads(nthreads) reduction(+:total)")                                       \
    {                                                                                \
        NAME##_v acc[ACC], a, b;                                                     \
        for (int i = 0; i < ACC; ++i) acc[i] = (NAME##_v){} + (T)(i + omp_get_thread_num()); \
        a = (NAME##_v){} + (T)0.999999; b = (NAME##_v){} + (T)1e-7;                  \
        for (int64_t it = 0; it < iters; ++it)                                       \
            _Pragma("GCC unroll 12")                                                 \
            for (int i = 0; i < ACC; ++i) acc[i] = acc[i] * a + b;                   \
        T s = 0;                                                                     \
        for (int i = 0; i < ACC; ++i) for (int l = 0; l < (int)(W / sizeof(T)); ++l) s += acc[i][l]; \
        total += s;                                                                  \
    }                                                                                \
    return total;                                                                    \
}                                                                                    \
extern "C" int NAME##_lanes() { return W / sizeof(T); }
DEF(float, VW, fma_f32)
DEF(double, VW, fma_f64)

// Read bandwidth with four independent streams per thread: one sequential stream per core leaves
// the prefetchers idle part of the time, so it understates what a well-written kernel reads.
typedef float rd_v __attribute__((vector_size(VW)));
extern "C" double read_streams(const float* x, int64_t n, int nthreads) {
    const int L = VW / sizeof(float);
    double total = 0;
    _Pragma("omp parallel num_threads(nthreads) reduction(+:total)")
    {
        int64_t per = n / omp_get_num_threads(), seg = per / 4 / L * L;
        const float* base = x + per * omp_get_thread_num();
        rd_v a0 = {}, a1 = {}, a2 = {}, a3 = {}, v0, v1, v2, v3;
        for (int64_t i = 0; i < seg; i += L) {
            __builtin_memcpy(&v0, base + i, VW); __builtin_memcpy(&v1, base + seg + i, VW);
            __builtin_memcpy(&v2, base + 2 * seg + i, VW); __builtin_memcpy(&v3, base + 3 * seg + i, VW);
            a0 += v0; a1 += v1; a2 += v2; a3 += v3;
        }
        rd_v a = a0 + a1 + a2 + a3;
        float s = 0;
        for (int l = 0; l < L; ++l) s += a[l];
        total += s;
    }
    return total;
}
"""


class MachinePeaks(BaseModel):
    machine: str
    threads: int
    bandwidth_gbps: float
    peak_gflops: float                              # float32, kept for older packets and summaries
    peak_gflops_by_dtype: dict[str, float] = Field(default_factory=dict)
    method: str

    def gflops(self, dtype: str) -> float:
        # narrower types than measured run at least at the fp32 rate on this CPU path
        return self.peak_gflops_by_dtype.get(dtype, self.peak_gflops)


def _best_time(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _probe_library():
    """The compiled probes (FMA loops, stream read) as a ctypes library; None without g++."""
    cxx = shutil.which("g++")
    if not cxx:
        return None
    flags = subprocess.run([cxx, "-march=native", "-dM", "-E", "-x", "c++", "/dev/null"], capture_output=True,
                           text=True).stdout
    width = 64 if "__AVX512F__" in flags else 32 if "__AVX__" in flags else 16
    with tempfile.TemporaryDirectory(prefix="kscout-roofline-") as d:   # stays mapped once loaded
        src, so = Path(d) / "probes.cpp", Path(d) / "probes.so"
        src.write_text(_FMA_SRC.replace("VW", str(width)))
        res = subprocess.run([cxx, "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", str(src), "-o", str(so)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            return None
        lib = ctypes.CDLL(str(so))
    for name in ("fma_f32", "fma_f64"):
        getattr(lib, name).restype, getattr(lib, name).argtypes = ctypes.c_double, [ctypes.c_int64, ctypes.c_int]
    lib.read_streams.restype = ctypes.c_double
    lib.read_streams.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    return lib


def _compiled_probes(threads: int, data) -> tuple[dict[str, float], float]:
    """GFLOP/s of the compiled FMA loop per dtype, and GB/s of the 4-streams-per-thread read over
    `data` (a float32 tensor far larger than the last cache level); ({}, 0.0) without a compiler."""
    lib = _probe_library()
    if lib is None:
        return {}, 0.0
    out = {}
    for dtype, name in (("float32", "fma_f32"), ("float64", "fma_f64")):
        fn = getattr(lib, name)
        lanes = getattr(lib, f"{name}_lanes")()
        iters = 2_000_000
        t = _best_time(lambda: fn(iters, threads), 3)
        out[dtype] = 2 * 12 * lanes * iters * threads / t / 1e9
    n = data.numel()
    t = _best_time(lambda: lib.read_streams(data.data_ptr(), n, threads), 8)
    return out, n * 4 / t / 1e9


def _machine_key(threads: int) -> str:
    return hashlib.sha256(f"{socket.gethostname()}|{cpu_model()}|{platform.machine()}|{threads}".encode()).hexdigest()[:16]


def measure(threads: int, cache: Path | None = CACHE) -> MachinePeaks:
    import torch
    torch.set_num_threads(threads)
    n = 32 << 20                       # 128 MiB per array: far beyond any L3
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    triad = 3 * n * 4 / _best_time(lambda: torch.add(a, b, alpha=2.0, out=c), 8) / 1e9
    # A read-only stream has no write-allocate traffic, which the triad's regular stores pay and
    # do not count; kernels with streaming stores approach it, so the bound is the larger one.
    read = n * 4 / _best_time(lambda: a.sum(), 8) / 1e9
    fma, streams = _compiled_probes(threads, a)
    del a, b, c
    m = 1024
    by_dtype = {}
    for dtype, td in (("float32", torch.float32), ("float64", torch.float64)):
        x, y = torch.randn(m, m, dtype=td), torch.randn(m, m, dtype=td)
        by_dtype[dtype] = 2 * m ** 3 / _best_time(lambda: torch.mm(x, y), 5) / 1e9
    for dtype, g in fma.items():
        by_dtype[dtype] = max(by_dtype.get(dtype, 0.0), g)
    peaks = MachinePeaks(machine=f"{socket.gethostname()} / {cpu_model()} / {platform.machine()}", threads=threads,
                         bandwidth_gbps=max(triad, read, streams), peak_gflops=by_dtype["float32"],
                         peak_gflops_by_dtype=by_dtype,
                         method=f"bandwidth: max(triad c=a+2b on 3x128 MiB, sum over 128 MiB, compiled read of 4 "
                                f"streams per thread over 128 MiB), best of 8; FLOP/s: "
                                f"max(compiled FMA loop, torch.mm {m}^3) per dtype; {threads} threads; best ever "
                                f"seen on this machine (cache {cache})")
    return _merge_cached(peaks, cache) if cache else peaks


def _merge_cached(peaks: MachinePeaks, cache: Path) -> MachinePeaks:
    """Keep, per figure, the best this machine has ever shown; write it back."""
    key = _machine_key(peaks.threads)
    try:
        data = json.loads(cache.read_text()) if cache.exists() else {}
    except (OSError, ValueError):
        data = {}
    old = data.get(key)
    if old:
        prev = MachinePeaks.model_validate(old)
        peaks.bandwidth_gbps = max(peaks.bandwidth_gbps, prev.bandwidth_gbps)
        for d, g in prev.peak_gflops_by_dtype.items():
            peaks.peak_gflops_by_dtype[d] = max(peaks.peak_gflops_by_dtype.get(d, 0.0), g)
        peaks.peak_gflops = peaks.peak_gflops_by_dtype.get("float32", peaks.peak_gflops)
    data[key] = peaks.model_dump()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(cache)
    except OSError:
        pass   # a read-only home still gets this run's figures
    return peaks
