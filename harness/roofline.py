"""This machine's roofline: peak memory bandwidth and FLOP/s per dtype, measured and cached.

Bandwidth is measured the way candidates are timed: every pass starts with its arrays evicted
from every cache level (harness/evict.py), so it reads and writes memory, not the last-level
cache. (On a VM reporting a 480 MiB L3, passes over warm 128 MiB arrays reached 53 GB/s where
evicted ones read 31: every memory-bound SOL score was about half what it should have been.)
Where eviction is unavailable, the arrays are made larger than twice the last-level cache
instead (up to 1 GiB each). The bound is the largest of: the triad c = a + 2b (torch, three streams), the same
triad compiled with non-temporal stores (no read-for-ownership of c: a kernel with streaming
stores moves more bytes per second than any read-only loop), a read-only sum (torch), and a
compiled read of four independent streams per thread (one stream per core understates this
machine by ~25%, which rejected honest kernels as measurement faults). Peak FLOP/s per
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
#if defined(__SSE__)
#include <immintrin.h>
#endif
#if defined(__AVX512F__)
#define NT_L 16
#elif defined(__AVX__)
#define NT_L 8
#elif defined(__SSE__)
#define NT_L 4
#else
#define NT_L 1
#endif
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

// The triad c = a + 2b with non-temporal stores: c is written without being read first.
extern "C" double triad_nt(const float* a, const float* b, float* c, int64_t n, int nthreads) {
    _Pragma("omp parallel for num_threads(nthreads) schedule(static)")
    for (int64_t i = 0; i < n; i += NT_L) {
#if defined(__AVX512F__)
        _mm512_stream_ps(c + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_mul_ps(_mm512_set1_ps(2.f), _mm512_loadu_ps(b + i))));
#elif defined(__AVX__)
        _mm256_stream_ps(c + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_mul_ps(_mm256_set1_ps(2.f), _mm256_loadu_ps(b + i))));
#elif defined(__SSE__)
        _mm_stream_ps(c + i, _mm_add_ps(_mm_loadu_ps(a + i), _mm_mul_ps(_mm_set1_ps(2.f), _mm_loadu_ps(b + i))));
#else
        c[i] = a[i] + 2.f * b[i];
#endif
    }
#if defined(__SSE__)
    _mm_sfence();
#endif
    return c[n - 1];
}

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


def _best_time(fn, reps: int, before=None) -> float:
    """The fastest of `reps` timed calls of fn (after one untimed); `before()` untimed ahead of each."""
    fn()
    best = float("inf")
    for _ in range(reps):
        if before is not None:
            before()
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
    lib.triad_nt.restype = ctypes.c_double
    lib.triad_nt.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    return lib


def _compiled_probes(threads: int, a, b, c, cold) -> tuple[dict[str, float], dict[str, float]]:
    """GFLOP/s of the compiled FMA loop per dtype, and GB/s of the compiled bandwidth probes over
    the float32 tensors a, b, c (`cold(*tensors)` before each pass); ({}, {}) without a compiler."""
    lib = _probe_library()
    if lib is None:
        return {}, {}
    out = {}
    for dtype, name in (("float32", "fma_f32"), ("float64", "fma_f64")):
        fn = getattr(lib, name)
        lanes = getattr(lib, f"{name}_lanes")()
        iters = 2_000_000
        t = _best_time(lambda: fn(iters, threads), 3)
        out[dtype] = 2 * 12 * lanes * iters * threads / t / 1e9
    n = a.numel()
    bw = {"read of 4 streams per thread": n * 4 / _best_time(
        lambda: lib.read_streams(a.data_ptr(), n, threads), 8, lambda: cold(a)) / 1e9,
        "triad with non-temporal stores": 3 * n * 4 / _best_time(
        lambda: lib.triad_nt(a.data_ptr(), b.data_ptr(), c.data_ptr(), n, threads), 8, lambda: cold(a, b, c)) / 1e9}
    return out, bw


# Part of the cache key: figures measured another way (before 2: warm 128 MiB arrays, which a
# large last-level cache served in part) are never merged with these.
BOUND_METHOD = 2


def _machine_key(threads: int) -> str:
    return hashlib.sha256(f"{socket.gethostname()}|{cpu_model()}|{platform.machine()}|{threads}|"
                          f"bound-{BOUND_METHOD}".encode()).hexdigest()[:16]


def _evictor(cxx: str, build_dir: Path | None):
    """clflushopt over a tensor's bytes (harness/evict.py), or None where it cannot be had."""
    if build_dir is None:
        return None
    from harness import evict
    built = evict.library(cxx, Path(build_dir))
    return evict.load(built[0])[0] if built else None


def measure(threads: int, cache: Path | None = CACHE, *, cxx: str = "g++",
            build_dir: Path | None = None) -> MachinePeaks:
    """Measure (and merge into `cache`) this machine's peaks with `threads` threads. `build_dir`
    is where the eviction library is built (HarnessConfig.cache_dir); without one, or where it
    cannot be built, the bandwidth arrays are sized past twice the last-level cache instead."""
    import torch

    from harness.backends.cpu_cpp import last_level_cache_bytes
    torch.set_num_threads(threads)
    evict_fn = _evictor(cxx, build_dir)
    if evict_fn is not None:
        n = 32 << 20                   # 128 MiB per array, evicted before every pass

        def cold(*ts) -> None:
            for t in ts:
                evict_fn(t.data_ptr(), t.numel() * t.element_size())
        how = "each pass on arrays evicted from every cache level first (clflushopt)"
    else:
        # capped at 1 GiB an array (three for the triad): memory use stays bounded on huge caches
        n = min(max(32 << 20, 2 * last_level_cache_bytes() // 4), 256 << 20) // 64 * 64

        def cold(*ts) -> None:
            pass
        how = f"no eviction here: arrays of {n * 4 >> 20} MiB, past twice the last-level cache"
    a, b, c = torch.rand(n), torch.rand(n), torch.empty(n)
    triad = 3 * n * 4 / _best_time(lambda: torch.add(a, b, alpha=2.0, out=c), 8, lambda: cold(a, b, c)) / 1e9
    # A read-only stream has no write-allocate traffic, which the triad's regular stores pay and
    # do not count; kernels with streaming stores approach it, so the bound is the larger one.
    read = n * 4 / _best_time(lambda: a.sum(), 8, lambda: cold(a)) / 1e9
    fma, compiled = _compiled_probes(threads, a, b, c, cold)
    del a, b, c
    m = 1024
    by_dtype = {}
    for dtype, td in (("float32", torch.float32), ("float64", torch.float64)):
        x, y = torch.randn(m, m, dtype=td), torch.randn(m, m, dtype=td)
        by_dtype[dtype] = 2 * m ** 3 / _best_time(lambda: torch.mm(x, y), 5) / 1e9
    for dtype, g in fma.items():
        by_dtype[dtype] = max(by_dtype.get(dtype, 0.0), g)
    peaks = MachinePeaks(machine=f"{socket.gethostname()} / {cpu_model()} / {platform.machine()}", threads=threads,
                         bandwidth_gbps=max(triad, read, *compiled.values()), peak_gflops=by_dtype["float32"],
                         peak_gflops_by_dtype=by_dtype,
                         method=f"bandwidth: max(triad c=a+2b, sum, {', '.join(['compiled ' + k for k in compiled])}; "
                                f"{how}), best of 8; FLOP/s: "
                                f"max(compiled FMA loop, torch.mm {m}^3) per dtype; {threads} threads; best ever "
                                f"seen on this machine (cache {cache})")
    return _merge_cached(peaks, cache) if cache else peaks


# Spec-sheet figures (dense, no sparsity), used only when the GPU cannot be measured, and labelled
# so: memory bandwidth GB/s, then TFLOP/s for float32 on the CUDA/vector cores (what an fp32
# elementwise or reduction kernel can reach) and for fp16/bf16 on the tensor/matrix cores.
KNOWN_GPUS: dict[str, tuple[float, dict[str, float]]] = {
    "H100 SXM": (3350, {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0}),
    "H100 PCIe": (2000, {"float32": 51.0, "float16": 756.0, "bfloat16": 756.0}),
    "H200": (4800, {"float32": 67.0, "float16": 989.0, "bfloat16": 989.0}),
    "A100-SXM4-80GB": (2039, {"float32": 19.5, "float16": 312.0, "bfloat16": 312.0}),
    "MI300X": (5300, {"float32": 163.4, "float16": 1307.0, "bfloat16": 1307.0}),
}


def known_gpu(name: str) -> tuple[str, float, dict[str, float]] | None:
    """The spec-sheet entry whose key's words all appear in the device name ("NVIDIA H100 80GB HBM3"
    is reported by torch without "SXM": an H100 with HBM3 is the SXM part)."""
    n = name.replace("HBM3", "SXM").lower()
    for key, (bw, tf) in KNOWN_GPUS.items():
        if all(w.lower() in n for w in key.split()):
            return key, bw, tf
    return None


def measure_gpu(cache: Path | None = CACHE) -> MachinePeaks:
    """The GPU's roofline, measured on cuda:0: bandwidth is the best of a device-to-device copy
    (read + write) and a sum (read only) over 1 GiB; FLOP/s per dtype is torch.mm at 8192^3 (the
    vendor BLAS; TF32 off for float32, so it is the fp32 rate a float32 kernel is held to).
    Cached per GPU and only ever raised, like the CPU figures. Where measuring fails, the
    spec-sheet figures of a known part are used and the method says so."""
    import torch

    from harness import gpu
    info = gpu.detect()
    if info is None:
        raise RuntimeError("measure_gpu: torch sees no GPU")
    machine = f"{socket.gethostname()} / {info.name} ({info.arch}, {info.runtime})"
    key = hashlib.sha256(machine.encode()).hexdigest()[:16]
    dev = torch.device("cuda", 0)

    def timed(fn):
        def run():
            fn()
            torch.cuda.synchronize()
        return run

    try:
        n = min(256 << 20, int(torch.cuda.mem_get_info()[0] * 0.2) // 8)   # 1 GiB fp32, or a fifth of free memory
        a, b = torch.rand(n, device=dev), torch.empty(n, device=dev)
        copy = 2 * n * 4 / _best_time(timed(lambda: b.copy_(a)), 10) / 1e9
        read = n * 4 / _best_time(timed(lambda: a.sum()), 10) / 1e9
        del a, b
        m = 8192
        by_dtype = {}
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            for name, td in (("float32", torch.float32), ("float16", torch.float16), ("bfloat16", torch.bfloat16)):
                x, y = torch.randn(m, m, device=dev, dtype=td), torch.randn(m, m, device=dev, dtype=td)
                by_dtype[name] = 2 * m ** 3 / _best_time(timed(lambda: torch.mm(x, y)), 5) / 1e9
                del x, y
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.cuda.empty_cache()
        peaks = MachinePeaks(machine=machine, threads=0, bandwidth_gbps=max(copy, read),
                             peak_gflops=by_dtype["float32"], peak_gflops_by_dtype=by_dtype,
                             method=f"GPU measured on {info.name}: bandwidth max(copy 1 GiB read+write, sum over "
                                    f"1 GiB), best of 10; FLOP/s torch.mm {m}^3 per dtype (TF32 off), best of 5; "
                                    f"best ever seen on this GPU (cache {cache})")
    except RuntimeError as e:          # out of memory, a driver error: fall back, and say so
        spec = known_gpu(info.name)
        if spec is None:
            raise RuntimeError(f"could not measure the roofline of {info.name} ({e}) and it is not among the "
                               f"known parts {sorted(KNOWN_GPUS)}") from e
        part, bw, tf = spec
        return MachinePeaks(machine=machine, threads=0, bandwidth_gbps=bw, peak_gflops=tf["float32"] * 1e3,
                            peak_gflops_by_dtype={d: v * 1e3 for d, v in tf.items()},
                            method=f"spec sheet of {part} (not measured: {str(e)[:200]})")
    return _merge_cached(peaks, cache, key) if cache else peaks


def _merge_cached(peaks: MachinePeaks, cache: Path, key: str | None = None) -> MachinePeaks:
    """Keep, per figure, the best this machine has ever shown; write it back."""
    key = key or _machine_key(peaks.threads)
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
