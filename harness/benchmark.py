"""Benchmarking: time baselines with the same loop as candidates, and derive speedups and roofline."""

from __future__ import annotations

import torch

from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import Roofline, Timing
from harness.roofline import MachinePeaks
from harness.timing import summarize, time_calls
from harness.workload import WorkloadSpec


def _rotating(sets: list[Case], cfg: HarnessConfig):
    """The same protocol as a candidate's timed calls: warmup on set 0, timed calls cycling through
    the sets, caches flushed in between when the candidate's are (see cpu_cpp.flush_bytes)."""
    from harness.backends.cpu_cpp import flush_bytes
    nbytes = flush_bytes(cfg, sets)
    scratch = torch.empty(nbytes // 4, dtype=torch.float32) if nbytes else None
    state = {"i": 0, "k": 0}

    def before(warmup: bool) -> None:
        state["k"] = 0 if warmup else (state["i"] + 1) % len(sets)
        if not warmup:
            state["i"] += 1
        if scratch is not None:
            scratch.fill_(float(state["i"]))
    return state, before


def _time_model(model, sets: list[Case], cfg: HarnessConfig) -> Timing:
    torch.set_num_threads(cfg.threads)
    state, before = _rotating(sets, cfg)

    def call() -> None:
        with torch.no_grad():
            model(*sets[state["k"]].forward_args)

    samples = time_calls(call, cfg.timing.model_dump(), before)
    return Timing(**summarize(samples, cfg.timing.warmup))


def time_eager(sets: list[Case], cfg: HarnessConfig) -> Timing:
    """The reference Model under torch eager, on the bench rotation sets, same timing loop."""
    return _time_model(sets[0].model, sets, cfg)


def compile_reference(model: torch.nn.Module, sets: list[Case], cfg: HarnessConfig):
    """The reference Model under torch.compile (inductor's C++/OpenMP codegen on CPU), compiled by
    one warm call so compilation stays outside every timed region."""
    torch.set_num_threads(cfg.threads)
    compiled = torch.compile(model)
    with torch.no_grad():
        compiled(*sets[0].forward_args)
    return compiled


def time_compiled(compiled, sets: list[Case], cfg: HarnessConfig) -> Timing:
    """A compiled reference (compile_reference) on the rotation sets, same timing loop."""
    return _time_model(compiled, sets, cfg)


def timing_from_samples(samples: list[float], cfg: HarnessConfig) -> Timing:
    return Timing(**summarize(samples, cfg.timing.warmup))


def speedups(candidate: Timing, baselines: dict[str, Timing]) -> dict[str, float]:
    return {name: t.median_s / candidate.median_s for name, t in baselines.items() if candidate.median_s > 0}


def roofline(spec: WorkloadSpec, dims: dict[str, int], t: Timing, peaks: MachinePeaks | None = None,
             dtype: str = "float32") -> Roofline:
    flops, nbytes = spec.flops(dims), spec.bytes_moved(dims)
    r = Roofline(flops=flops, bytes=nbytes, achieved_gflops=flops / t.median_s / 1e9,
                 achieved_gbps=nbytes / t.median_s / 1e9,
                 arithmetic_intensity=flops / nbytes if nbytes else float("inf"))
    if peaks is not None:
        r.peak_gbps, r.peak_gflops, r.peak_method = peaks.bandwidth_gbps, peaks.gflops(dtype), peaks.method
        r.bound_s = max(nbytes / (peaks.bandwidth_gbps * 1e9), flops / (r.peak_gflops * 1e9))
        r.sol = r.bound_s / t.median_s
    return r
