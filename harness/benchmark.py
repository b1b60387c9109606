"""Benchmarking: time baselines with the same loop as candidates, and derive speedups and roofline."""

from __future__ import annotations

import copy

import torch

from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import Roofline, Timing
from harness.roofline import MachinePeaks
from harness.timing import cuda_event_clock, summarize, time_calls
from harness.workload import WorkloadSpec


def _rotating(sets: list[Case], cfg: HarnessConfig, on: "OnDevice"):
    """The same protocol as a candidate's timed calls: warmup on set 0, timed calls cycling through
    the sets, caches flushed in between when the candidate's are (cpu_cpp.cache_flush: each call's
    inputs and the model's parameters evicted, or 2 x LLC written; on a GPU, twice its L2 written,
    as harness/torch_child.py does). `on` holds the model and arguments the calls use."""
    evict_fn, nbytes, device = None, 0, on.device
    if device == "cpu":
        from harness import evict
        from harness.backends.cpu_cpp import cache_flush
        flush = cache_flush(cfg, sets)
        evict_fn, nbytes = (evict.load(flush.library)[0] if flush.library else None), flush.bytes
    else:
        from harness.backends.torch_run import l2_flush_bytes
        nbytes = l2_flush_bytes()
    scratch = torch.empty(nbytes // 4, dtype=torch.float32, device=device) if nbytes else None
    args = on.args
    weights = [*on.model.parameters(), *on.model.buffers()] if evict_fn else []
    state = {"i": 0, "k": 0}

    def before(warmup: bool) -> None:
        state["k"] = 0 if warmup else (state["i"] + 1) % len(sets)
        if not warmup:
            state["i"] += 1
        if evict_fn is not None:   # what the call reads comes from memory, as a candidate's does
            for t in [*args[state["k"]], *weights]:
                if torch.is_tensor(t):
                    evict_fn(t.data_ptr(), t.numel() * t.element_size())
        if scratch is not None:
            scratch.fill_(float(state["i"]))
        if device != "cpu":
            torch.cuda.synchronize()
    return state, before


class OnDevice:
    """The reference model and the rotation sets' forward arguments, copied to `device` once.

    On the CPU these are the cases' own objects. On a GPU (device "cuda": NVIDIA or ROCm torch)
    the baselines run where the candidates run, so a speedup compares like with like."""

    def __init__(self, sets: list[Case], device: str = "cpu"):
        self.device, self._sets, self._copied = device, sets, None

    def _copy(self):
        # Copied at the first baseline, not at construction: an evaluator that only verifies (or a
        # machine without the device, which then gets an unsupported_backend verdict) never needs it.
        if self._copied is None:
            if self.device == "cpu":
                self._copied = self._sets[0].model, [s.forward_args for s in self._sets]
            else:
                self._copied = (copy.deepcopy(self._sets[0].model).to(self.device),
                                [[a.to(self.device) for a in s.forward_args] for s in self._sets])
        return self._copied

    @property
    def model(self):
        return self._copy()[0]

    @property
    def args(self):
        return self._copy()[1]


def _time_model(model, on: OnDevice, sets: list[Case], cfg: HarnessConfig) -> Timing:
    torch.set_num_threads(cfg.threads)
    state, before = _rotating(sets, cfg, on)

    def call() -> None:
        with torch.no_grad():
            model(*on.args[state["k"]])

    # On a GPU, device events around the call, as harness/torch_child.py times candidates.
    samples = time_calls(call, cfg.timing.model_dump(), before,
                         **({"clock": cuda_event_clock()} if on.device != "cpu" else {}))
    return Timing(**summarize(samples, cfg.timing.warmup))


def time_eager(sets: list[Case], cfg: HarnessConfig, on: OnDevice | None = None) -> Timing:
    """The reference Model under torch eager, on the bench rotation sets, same timing loop."""
    on = on or OnDevice(sets)
    return _time_model(on.model, on, sets, cfg)


def compile_reference(on: OnDevice, cfg: HarnessConfig):
    """The reference Model under torch.compile (inductor: C++/OpenMP on the CPU, Triton on a GPU),
    compiled by one warm call so compilation stays outside every timed region."""
    torch.set_num_threads(cfg.threads)
    compiled = torch.compile(on.model)
    with torch.no_grad():
        compiled(*on.args[0])
    if on.device != "cpu":
        torch.cuda.synchronize()
    return compiled


def time_compiled(compiled, sets: list[Case], cfg: HarnessConfig, on: OnDevice | None = None) -> Timing:
    """A compiled reference (compile_reference) on the rotation sets, same timing loop."""
    return _time_model(compiled, on or OnDevice(sets), sets, cfg)


def timing_from_samples(samples: list[float], cfg: HarnessConfig) -> Timing:
    return Timing(**summarize(samples, cfg.timing.warmup))


def speedups(candidate: Timing, baselines: dict[str, Timing]) -> dict[str, float]:
    return {name: t.median_s / candidate.median_s for name, t in baselines.items() if candidate.median_s > 0}


def faster_baselines(baselines: dict[str, Timing], interleaved: dict[str, Timing]) -> dict[str, Timing]:
    """What speedups are against: for each baseline, the faster of the run-start timing and the
    re-timing next to the candidate. A timing caught in a load spike makes the baseline slow and
    would inflate the speedup; the faster figure can only understate it."""
    out = dict(baselines)
    for name, again in interleaved.items():
        if name not in out or again.median_s < out[name].median_s:
            out[name] = again
    return out


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
