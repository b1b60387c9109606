"""Wall-clock timing of a callable: warmup, then repeats until enough time or a cap.

Standard library only: the CPU child process imports this, and so does the parent when it
times torch baselines, so candidates and baselines are measured by the same loop.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


def wall_clock(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cuda_event_clock() -> Callable[[Callable[[], object]], float]:
    """Times one call on the GPU: events recorded on the current stream before and after it,
    elapsed time once the end event completes. The call is done when its work is (the stream has
    no backlog when it starts: `before` synchronises), and host-side time in between counts only
    where the GPU waited for it. torch is imported here, not at module level: the C++ child
    imports this module with the standard library only."""
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def clock(fn: Callable[[], object]) -> float:
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    return clock


def time_calls(fn: Callable[[], object], policy: dict,
               before: Callable[[bool], None] | None = None,
               clock: Callable[[Callable[[], object]], float] = wall_clock) -> list[float]:
    """Per-call times in seconds (wall clock, or `clock`: cuda_event_clock() on a GPU). `policy` is
    a harness.config.TimingPolicy as a dict.

    `before(warmup)` runs untimed ahead of every call: it rotates the input set, poisons the
    output and flushes caches, so each timed call does the whole job from memory.
    Stops at max_repeats or max_time_s; after min_repeats and min_time_s, also as soon as the
    spread (IQR / median) is below target_iqr.
    """
    # Warm up, but a slow kernel (a naive matmul) need not be called many times to be warm.
    warm = 0.0
    for _ in range(policy["warmup"]):
        if before:
            before(True)
        warm += clock(fn)
        if warm >= policy["min_time_s"]:
            break
    samples: list[float] = []
    spent = 0.0
    target = policy.get("target_iqr")
    while len(samples) < policy["max_repeats"]:
        if before:
            before(False)
        dt = clock(fn)
        samples.append(dt)
        spent += dt
        if spent >= policy["max_time_s"]:
            break
        if len(samples) >= policy["min_repeats"] and spent >= policy["min_time_s"]:
            if target is None or _iqr_rel(samples) <= target or len(samples) >= 3 * policy["min_repeats"]:
                break
    return samples


def next_set(calls_done: int, n_sets: int, schedule: list[int] | None = None) -> int:
    """The input set of timed call `calls_done` (0-based): `schedule` cycled where one is given
    (TimingPolicy.schedule), else 1, 2, ..., n-1, 0, 1, ... (set 0 is the warmup's)."""
    if schedule:
        return schedule[calls_done % len(schedule)] % n_sets
    return (calls_done + 1) % n_sets


def first_seen(order: list[int]) -> list[bool]:
    """Per timed call, whether its input set is seen for the first time (set 0 was seen in the
    warmup): the calls the memoization check compares with the repeats."""
    seen, out = {0}, []
    for k in order:
        out.append(k not in seen)
        seen.add(k)
    return out


def _iqr_rel(samples: list[float]) -> float:
    if len(samples) < 2:
        return 0.0   # one sample has no spread to wait for; the minimums decide
    q1, med, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return (q3 - q1) / med if med > 0 else 0.0


def summarize(samples: list[float], warmup: int) -> dict:
    """Median and quartiles (the spread we report is the interquartile range)."""
    s = sorted(samples)
    if len(s) >= 4:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1, q3 = s[0], s[-1]
    return {"warmup": warmup, "repeats": len(s), "median_s": statistics.median(s), "q1_s": q1,
            "q3_s": q3, "min_s": s[0], "mean_s": statistics.fmean(s)}
