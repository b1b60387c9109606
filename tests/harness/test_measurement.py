"""The timing protocol and the roofline: written down in harness/timing.py and harness/roofline.py,
checked here."""

from __future__ import annotations

import ctypes
import platform

import pytest

from harness import evict, workload
from harness.backends.cpu_cpp import CpuCppBackend, last_level_cache_bytes
from harness.attempt import EAGER, Evaluator
from harness.evidence import Candidate, FailureClass, Verdict
from harness.roofline import MachinePeaks, _merge_cached
from harness.timing import time_calls
from tests.conftest import AXPY_OK

POLICY = {"warmup": 2, "min_repeats": 5, "max_repeats": 40, "min_time_s": 0.0, "max_time_s": 5.0, "target_iqr": 0.05}


def test_before_hook_runs_untimed_ahead_of_every_call_and_knows_warmup():
    log = []
    policy = POLICY | {"min_time_s": 10.0, "max_repeats": 6}   # warmup runs all its calls
    samples = time_calls(lambda: log.append("call"), policy, before=lambda warm: log.append("warm" if warm else "timed"))
    assert len(samples) == 6
    assert log[:4] == ["warm", "call", "warm", "call"]
    assert log[4::2] == ["timed"] * len(samples) and log[5::2] == ["call"] * len(samples)


def test_repeats_stop_early_when_the_spread_is_small_and_continue_when_it_is_not():
    steady = time_calls(lambda: sum(range(2000)), POLICY)
    assert len(steady) <= 3 * POLICY["min_repeats"]
    flip = {"n": 0}

    def noisy():   # alternates 0 and ~2 ms: IQR/median never gets small
        flip["n"] += 1
        if flip["n"] % 2:
            sum(range(60000))
    wobbly = time_calls(noisy, POLICY)
    assert len(wobbly) == 3 * POLICY["min_repeats"]   # the cap for a spread that does not settle


def test_roofline_cache_keeps_the_best_figure_ever_seen(tmp_path):
    cache = tmp_path / "roofline.json"
    fast = MachinePeaks(machine="m", threads=2, bandwidth_gbps=40.0, peak_gflops=200.0,
                        peak_gflops_by_dtype={"float32": 200.0, "float64": 100.0}, method="t")
    slow = MachinePeaks(machine="m", threads=2, bandwidth_gbps=20.0, peak_gflops=150.0,
                        peak_gflops_by_dtype={"float32": 150.0, "float64": 110.0}, method="t")
    _merge_cached(fast, cache)
    merged = _merge_cached(slow, cache)   # measured under load: must not lower the bound
    assert merged.bandwidth_gbps == 40.0 and merged.gflops("float32") == 200.0 and merged.gflops("float64") == 110.0


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64", "i686"),
                    reason="the eviction library evicts with clflushopt/clflush (x86)")
def test_the_bandwidth_bound_is_measured_on_evicted_arrays_and_ignores_warm_figures(tmp_path, monkeypatch):
    """Candidates' inputs come from memory; the bound must too. A figure cached by the old warm
    method (a large LLC served part of it) is never merged in as 'the best ever seen'."""
    import hashlib
    import json
    import socket

    from harness import roofline
    from harness.envinfo import cpu_model
    if not roofline._probe_library():
        pytest.skip("no g++: the compiled probes are not built")
    cache = tmp_path / "roofline.json"
    old_key = hashlib.sha256(f"{socket.gethostname()}|{cpu_model()}|{platform.machine()}|1".encode()).hexdigest()[:16]
    warm = MachinePeaks(machine="m", threads=1, bandwidth_gbps=5000.0, peak_gflops=1.0, method="warm 128 MiB")
    cache.write_text(json.dumps({old_key: warm.model_dump()}))
    import torch
    threads = torch.get_num_threads()
    try:
        peaks = roofline.measure(1, cache, build_dir=tmp_path / "build")
    finally:
        torch.set_num_threads(threads)   # measure() sets it for the process
    assert "evicted from every cache level" in peaks.method and "non-temporal" in peaks.method
    assert 1.0 < peaks.bandwidth_gbps < 5000.0
    assert old_key in json.loads(cache.read_text()) and roofline._machine_key(1) != old_key


def test_the_non_temporal_triad_probe_computes_the_triad():
    import torch

    from harness.roofline import _probe_library
    lib = _probe_library()
    if lib is None:
        pytest.skip("no g++ here")
    a, b = torch.arange(4096, dtype=torch.float32), torch.full((4096,), 0.5)
    c = torch.empty(4096)
    lib.triad_nt(a.data_ptr(), b.data_ptr(), c.data_ptr(), a.numel(), 2)
    assert torch.equal(c, a + 2 * b)


@pytest.fixture(scope="module")
def ev(tiny_workload_dir, harness_cfg):
    e = Evaluator(workload.load(tiny_workload_dir), cfg=harness_cfg)
    e.measure_eager()
    yield e
    e.close()


@pytest.mark.slow
def test_speedups_are_against_baselines_re_timed_after_the_candidate(ev):
    p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    assert p.verdict == Verdict.accepted, p.failure_message
    b = p.bench
    eager = min(b.interleaved[EAGER].median_s, b.baselines[EAGER].median_s)
    assert b.speedup[EAGER] == pytest.approx(eager / b.candidate.median_s)
    assert b.drift[EAGER] == pytest.approx(b.interleaved[EAGER].median_s / b.baselines[EAGER].median_s)


@pytest.mark.slow
@pytest.mark.parametrize("spike", [1000.0, 0.001])
def test_a_baseline_timed_in_a_load_spike_never_inflates_a_speedup(ev, spike):
    """The start-of-run eager figure caught 1000x slow (a spike then), or the re-timing slow
    (a spike now, as the run-start figure 1000x faster stands for): the faster figure is used."""
    start = ev.baselines[EAGER]
    scaled = start.model_copy(update={f: getattr(start, f) * spike for f in ("median_s", "q1_s", "q3_s", "min_s", "mean_s")})
    ev.add_baseline(EAGER, scaled)
    try:
        p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    finally:
        ev.add_baseline(EAGER, start)
    assert p.verdict == Verdict.accepted, p.failure_message
    b = p.bench
    used = min(b.interleaved[EAGER].median_s, scaled.median_s)
    assert b.speedup[EAGER] == pytest.approx(used / b.candidate.median_s)
    assert used == (b.interleaved[EAGER].median_s if spike > 1 else scaled.median_s)
    assert b.drift[EAGER] == pytest.approx(b.interleaved[EAGER].median_s / scaled.median_s)


@pytest.mark.slow
def test_a_result_faster_than_the_roofline_is_a_measurement_fault(ev):
    real = ev.peaks
    # A bound no kernel can reach on this machine: 1 MB/s. The honest kernel now "beats" it.
    ev.peaks = MachinePeaks(machine="test", threads=1, bandwidth_gbps=1e-3, peak_gflops=1e-3, method="test")
    ev.remeasure_roofline = False   # else it measures this machine again first (and the fake bound goes)
    try:
        p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    finally:
        ev.peaks, ev.remeasure_roofline = real, True
    assert p.failure_class == FailureClass.measurement_fault, p.failure_message
    assert p.bench.roofline.sol > 1.1 and "roofline" in p.failure_message


@pytest.mark.slow
def test_with_warm_caches_asked_for_the_memory_bound_rejects_nothing(ev):
    """timing.flush_cache = false: calls may read from cache, so beating memory's bound is no fault."""
    real, cfg = ev.peaks, ev.cfg
    ev.peaks = MachinePeaks(machine="test", threads=1, bandwidth_gbps=1e-3, peak_gflops=1e-3, method="test")
    ev.remeasure_roofline = False
    ev.cfg = cfg.model_copy(update={"timing": cfg.timing.model_copy(update={"flush_cache": False})})
    try:
        p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    finally:
        ev.peaks, ev.remeasure_roofline, ev.cfg = real, True, cfg
    assert p.verdict == Verdict.accepted, p.failure_message
    assert p.bench.roofline.sol > 1.1 and "warm caches" in p.bench.roofline.peak_method


@pytest.mark.slow
def test_a_stale_low_bound_is_measured_again_before_anything_is_rejected(ev):
    real = ev.peaks
    ev.peaks = MachinePeaks(machine="test", threads=1, bandwidth_gbps=1e-3, peak_gflops=1e-3, method="stale")
    try:
        p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    finally:
        ev.peaks = real
    assert p.verdict == Verdict.accepted, p.failure_message
    assert p.bench.roofline.peak_gbps > 1.0 and p.bench.roofline.sol <= 1.1


def test_a_single_timed_call_is_enough_when_the_policy_says_so():
    one = POLICY | {"min_repeats": 1, "max_repeats": 1, "warmup": 0}
    assert len(time_calls(lambda: None, one)) == 1


def test_one_preempted_fresh_call_is_not_memoization():
    from harness.attempt import _fresh_over_repeat
    fresh = [True, True] + [False] * 8
    one_slow = [40e-3, 1e-3] + [1e-3] * 8          # an OpenMP thread descheduled for one fresh call
    assert _fresh_over_repeat(one_slow, fresh) == 1.0
    memoizer = [10e-3, 11e-3] + [1e-4] * 8          # every first-seen set computed, repeats looked up
    assert _fresh_over_repeat(memoizer, fresh) == 100.0


def test_the_stream_read_probe_reads_every_element_it_times():
    """The bandwidth it reports counts n*4 bytes: the loop must really touch all of them."""
    import torch
    from harness.roofline import _probe_library
    lib = _probe_library()
    if lib is None:
        pytest.skip("no g++ here: the probe is not built and bandwidth falls back to torch's loops")
    x = torch.arange(1 << 20, dtype=torch.float32).remainder_(7)   # exact in fp32 partial sums per lane
    for threads in (1, 2):
        assert lib.read_streams(x.data_ptr(), x.numel(), threads) == pytest.approx(float(x.double().sum()), rel=1e-6)


X86 = platform.machine() in ("x86_64", "AMD64", "i686")


def _bench(ev, tmp_path, **timing):
    cfg = ev.cfg.model_copy(update={"timing": ev.cfg.timing.model_copy(update=timing)})
    backend = CpuCppBackend()
    comp = backend.compile(AXPY_OK, "kscout_forward", cfg, 60)
    assert comp.ok, comp.log
    run = backend.run(comp.artifact, "kscout_forward", ev.rotation, "bench", cfg, tmp_path, 30, ev.stage_dir)
    assert run.exit.kind.value == "ok" and run.times, run.exit.stderr
    per_call = sum(t.numel() * t.element_size() for t in ev.rotation[0].inputs) + \
        ev.rotation[0].reference.numel() * ev.rotation[0].reference.element_size()
    return run, per_call


@pytest.mark.skipif(not X86, reason="the eviction library evicts with clflushopt/clflush (x86); elsewhere 2 x LLC is written")
def test_every_timed_call_starts_with_its_inputs_and_output_evicted(ev, tmp_path):
    run, per_call = _bench(ev, tmp_path / "evict")   # the default
    assert run.cache_eviction.startswith(("clflushopt", "clflush")) and run.flush_bytes == 0
    # every call (warmup included) had its whole working set evicted first, and nothing else
    assert run.evicted_bytes % per_call == 0 and run.evicted_bytes >= len(run.times) * per_call


def test_without_eviction_the_child_writes_twice_the_last_level_cache(ev, tmp_path):
    run, _ = _bench(ev, tmp_path / "write", evict=False)
    assert run.flush_bytes == 2 * last_level_cache_bytes() and run.evicted_bytes == 0
    assert run.cache_eviction.startswith(f"wrote {2 * last_level_cache_bytes()} bytes")
    run, _ = _bench(ev, tmp_path / "off", flush_cache=False)      # asked for warm caches: nothing at all
    assert run.flush_bytes == 0 and run.evicted_bytes == 0 and run.cache_eviction == ""


@pytest.mark.skipif(not X86, reason="x86 only, as above")
def test_the_eviction_library_is_built_once_and_evicts_any_range(tmp_path):
    built = evict.library("g++", tmp_path)
    assert built is not None and built[1] in ("clflushopt", "clflush")
    assert evict.library("g++", tmp_path) == built                  # cached
    fn, method = evict.load(built[0])
    buf = bytearray(3 * 4096 + 5)
    addr = ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf))
    assert fn(addr + 7, len(buf) - 7) == 0 and method == built[1]   # unaligned start and length
    assert evict.library("no-such-compiler", tmp_path / "none") is None   # the caller falls back


def test_a_schedule_spreads_first_seen_sets_through_the_timed_calls(ev, tmp_path):
    """A timing.schedule is followed call by call (the memoization recheck's order is one)."""
    from harness.timing import first_seen, next_set
    assert [next_set(i, 3) for i in range(5)] == [1, 2, 0, 1, 2]          # the default rotation
    assert first_seen([1, 2, 0, 1, 2]) == [True, True, False, False, False]
    schedule = [0, 1, 0, 0, 2, 0]
    assert [next_set(i, 3, schedule) for i in range(7)] == schedule + [0]
    assert first_seen(schedule) == [False, True, False, False, True, False]
    run, _ = _bench(ev, tmp_path / "sched", schedule=schedule, min_repeats=6, max_repeats=6)
    assert len(run.times) == 6 and run.fresh == first_seen(schedule)     # the child followed it


def _recheck(times_of, lead=20, n_sets=6):
    """A recheck's per-call times from `times_of(call, is_fresh)`, judged as attempt.py does."""
    from harness.attempt import _over_claim, memo_recheck_schedule
    from harness.evidence import MemoRecheck
    from harness.timing import first_seen
    schedule = memo_recheck_schedule(lead, n_sets)
    fresh = first_seen(schedule)
    times = [times_of(i, f) for i, f in enumerate(fresh)]
    f, r = _over_claim(times, fresh, lead, claimed_s=3e-5)
    return MemoRecheck(calls=len(times), lead_in=lead, fresh_over_claim=f, repeat_over_claim=r)


def test_the_recheck_meets_every_new_set_after_a_lead_in_as_long_as_the_first_run():
    from harness.attempt import memo_recheck_schedule
    from harness.timing import first_seen
    schedule = memo_recheck_schedule(4, 4)
    assert schedule == [0, 0, 0, 0, 1, 0, 2, 0, 3, 0]
    assert first_seen(schedule) == [False] * 4 + [True, False] * 3


def test_a_slow_start_is_not_memoization_once_the_late_first_seen_calls_are_fast():
    """Seen on a loaded 2-core machine: an honest threaded kernel ~4 ms for its first calls, then
    30 us. The first run (median 30 us) saw its first-seen calls in the slow start."""
    from harness.attempt import _judge_memo
    memo = _recheck(lambda i, fresh: 4e-3 if i < 12 else 3e-5)
    assert memo.fresh_over_claim == pytest.approx(1.0)
    assert _judge_memo(130.0, memo, 3.0) is None                      # accepted


def test_a_memoizer_is_caught_even_when_it_pads_its_first_calls():
    """Slow on every call for a while (like a slow start), then memoizing: the lead-in outlasts
    any padding that still left the first run's median fast."""
    from harness.attempt import _judge_memo
    memo = _recheck(lambda i, fresh: 1e-3 if fresh or i < 12 else 3e-5)
    cls, msg = _judge_memo(33.0, memo, 3.0)
    assert cls == FailureClass.input_caching and "after 20 repeated calls" in msg
    assert memo.fresh_over_claim == pytest.approx(1e-3 / 3e-5) and memo.repeat_over_claim == pytest.approx(1.0)


def test_a_kernel_that_computes_only_when_rechecked_does_not_reproduce_its_claim():
    """It spots the recheck at its first new set and computes every call from then on: its own
    first-seen and repeated calls agree, but neither reaches the median the first run claimed."""
    from harness.attempt import _judge_memo
    memo = _recheck(lambda i, fresh: 3e-5 if i < 20 else 1e-3)
    cls, msg = _judge_memo(33.0, memo, 3.0)
    assert cls == FailureClass.measurement_fault and "does not reproduce" in msg


def test_a_recheck_that_never_reached_a_new_set_leaves_the_first_verdict():
    from harness.attempt import _judge_memo
    from harness.evidence import MemoRecheck
    for memo in (None, MemoRecheck(calls=20, lead_in=20)):
        cls, msg = _judge_memo(33.0, memo, 3.0)
        assert cls == FailureClass.input_caching and "did not complete" in msg