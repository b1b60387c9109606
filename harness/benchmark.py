"""Benchmarking: time baselines with the same loop as candidates, and derive speedups and roofline."""

from __future__ import annotations

import torch

from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import Roofline, Timing
from harness.roofline import MachinePeaks
from harness.timing import summarize, time_calls
from harness.workload import WorkloadSpec


def time_eager(case: Case, cfg: HarnessConfig) -> Timing:
    """The reference Model under torch eager, on the bench case's inputs, same timing loop."""
    torch.set_num_threads(cfg.threads)
    model, args = case.model, case.forward_args

    def call() -> None:
        with torch.no_grad():
            model(*args)

    samples = time_calls(call, cfg.timing.model_dump())
    return Timing(**summarize(samples, cfg.timing.warmup))


def time_compiled(case: Case, cfg: HarnessConfig) -> Timing:
    """The reference Model under torch.compile (inductor's C++/OpenMP codegen on CPU)."""
    torch.set_num_threads(cfg.threads)
    compiled = torch.compile(case.model)
    args = case.forward_args

    def call() -> None:
        with torch.no_grad():
            compiled(*args)

    call()   # compile outside the timed region
    samples = time_calls(call, cfg.timing.model_dump())
    return Timing(**summarize(samples, cfg.timing.warmup))


def timing_from_samples(samples: list[float], cfg: HarnessConfig) -> Timing:
    return Timing(**summarize(samples, cfg.timing.warmup))


def speedups(candidate: Timing, baselines: dict[str, Timing]) -> dict[str, float]:
    return {name: t.median_s / candidate.median_s for name, t in baselines.items() if candidate.median_s > 0}


def roofline(spec: WorkloadSpec, dims: dict[str, int], t: Timing, peaks: MachinePeaks | None = None) -> Roofline:
    flops, nbytes = spec.flops(dims), spec.bytes_moved(dims)
    r = Roofline(flops=flops, bytes=nbytes, achieved_gflops=flops / t.median_s / 1e9,
                 achieved_gbps=nbytes / t.median_s / 1e9,
                 arithmetic_intensity=flops / nbytes if nbytes else float("inf"))
    if peaks is not None:
        r.peak_gbps, r.peak_gflops = peaks.bandwidth_gbps, peaks.peak_gflops
        r.bound_s = max(nbytes / (peaks.bandwidth_gbps * 1e9), flops / (peaks.peak_gflops * 1e9))
        r.sol = r.bound_s / t.median_s
    return r
