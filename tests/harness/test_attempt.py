"""Compile -> verify -> benchmark on the real compiler, with candidates that misbehave."""

from __future__ import annotations

import pytest

from harness import workload
from harness.attempt import EAGER, Evaluator
from harness.evidence import Candidate, FailureClass, Verdict
from tests.conftest import AXPY_OK

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ev(tiny_workload_dir, harness_cfg):
    e = Evaluator(workload.load(tiny_workload_dir), cfg=harness_cfg)
    e.measure_eager()
    return e


def run(ev, source: str):
    return ev.evaluate(Candidate(source=source, workload="axpy"))


def test_correct_kernel_is_accepted_with_full_evidence(ev):
    p = run(ev, AXPY_OK)
    assert p.verdict == Verdict.accepted, p.failure_message
    assert p.compile.ok and p.verify.ok and p.verify.varies_with_input
    shapes = {c.shape for c in p.verify.cases}
    assert shapes == {"small", "odd", "bench", "hidden-0"}
    assert {c.kind for c in p.verify.cases} == {"suite", "hidden", "rerun"}
    assert {c.distribution for c in p.verify.cases} == {"normal", "large"}
    assert {c.seed for c in p.verify.cases} == {0, 1}
    assert all(c.passed and c.max_abs_err is not None for c in p.verify.cases)
    t = p.bench.candidate
    assert t.repeats >= 3 and t.q1_s <= t.median_s <= t.q3_s
    assert EAGER in p.bench.speedup and p.bench.speedup[EAGER] > 0
    assert p.bench.roofline.achieved_gbps > 0
    assert p.environment.compiler and p.environment.threads >= 1
    assert p.workload_fingerprint
    assert p.bench.rotation_sets == ev.cfg.timing.rotation_sets and EAGER in p.bench.interleaved
    assert p.bench.fresh_over_repeat is not None and p.bench.fresh_over_repeat < ev.cfg.timing.caching_ratio
    assert any(f.startswith("seccomp") for f in p.environment.sandbox), p.environment.sandbox
    assert len(p.environment.harness_digest) == 64
    assert all(c.err_vs_fp64 is not None and c.rel_l2 is not None for c in p.verify.cases)


def test_second_compile_of_same_source_is_cached(ev):
    a, b = run(ev, AXPY_OK + "\n// cache probe\n"), run(ev, AXPY_OK + "\n// cache probe\n")
    assert not a.compile.cached and b.compile.cached


def test_infinite_loop_is_killed_and_named_timeout(ev):
    p = run(ev, AXPY_OK.replace("int64_t total", "for (;;) {} int64_t total"))
    assert p.failure_class == FailureClass.timeout
    assert "killed" in p.failure_message
    assert p.cost.wall_s < ev.workload.spec.limits.run_s + 10


def test_segfault_is_a_runtime_crash_naming_the_case(ev):
    p = run(ev, AXPY_OK.replace("return 0;", "*(volatile int*)0 = 1; return 0;"))
    assert p.failure_class == FailureClass.runtime_crash
    assert "SIGSEGV" in p.failure_message and "small" in p.failure_message


def test_nan_output_is_rejected(ev):
    p = run(ev, AXPY_OK.replace("o[i] = 2.0f * x[i] + y[i];", "o[i] = (i == 3) ? __builtin_nanf(\"\") : 2.0f * x[i] + y[i];"))
    assert p.failure_class == FailureClass.nan_inf


def test_wrong_on_only_one_shape_is_caught_and_named(ev):
    src = AXPY_OK.replace("o[i] = 2.0f * x[i] + y[i];",
                          "o[i] = 2.0f * x[i] + y[i] + (in[0].shape[1] == 33 ? 1e-3f : 0.0f);")
    p = run(ev, src)
    assert p.failure_class == FailureClass.wrong_result
    assert p.failure_message.startswith("odd")
    by_shape = {c.shape: c.passed for c in p.verify.cases}
    assert by_shape["small"] and not by_shape["odd"]


def test_unwritten_output_is_caught_by_poisoning(ev):
    p = run(ev, AXPY_OK.replace("for (int64_t i = 0; i < total; ++i)", "for (int64_t i = 0; i < total - 1; ++i)"))
    assert p.failure_class == FailureClass.output_not_written
    assert "1/15 output elements were never written" in p.failure_message


def test_constant_output_is_named(ev):
    # Writes the same value whatever the input: wrong, and caught (as wrong_result first).
    p = run(ev, AXPY_OK.replace("o[i] = 2.0f * x[i] + y[i];", "o[i] = 0.0f;"))
    assert p.failure_class == FailureClass.wrong_result


def test_nonzero_status_is_a_runtime_error(ev):
    p = run(ev, AXPY_OK.replace("return 0;", "return 7;"))
    assert p.failure_class == FailureClass.runtime_error and "7" in p.failure_message


@pytest.mark.parametrize("source, failure", [
    ("this is not C++", FailureClass.compile_error),
    ("", FailureClass.bad_candidate),
    ("\x00\x01\x02ELF\x7f" * 50, FailureClass.bad_candidate),
    (AXPY_OK.replace("kscout_forward", "forward"), FailureClass.missing_entry_point),
    (AXPY_OK.replace("KS_EXPORT int kscout_forward", "static int kscout_forward"), FailureClass.compile_error),
    # wrong signature: the header declares the entry point, so this cannot compile
    (AXPY_OK.replace("const ks_tensor* in, int32_t n, ks_tensor* out", "float* in, int n, float* out")
     .replace("in[0].data", "in").replace("in[1].data", "in").replace("out->data", "out")
     .replace("ks_numel(&in[0])", "n"), FailureClass.compile_error),
])
def test_bad_candidates_get_a_clear_failure_class(ev, source, failure):
    p = run(ev, source)
    assert p.verdict == Verdict.rejected and p.failure_class == failure
    assert p.failure_message


def test_wrong_backend_is_rejected_not_crashed(ev):
    p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy", backend="no_such_backend"))
    assert p.failure_class == FailureClass.unsupported_backend


# Honest axpy whose 2nd and 3rd calls in a process are slow: after one warmup call, those are the
# first timed calls, the ones on first-seen inputs, as when a loaded machine preempts both.
_ENTRY = "KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {\n"
assert _ENTRY in AXPY_OK
SLOW_FIRST_FRESH = AXPY_OK.replace(_ENTRY, "static int calls = 0;\n" + _ENTRY + r'''    ++calls;
    if (calls == 2 || calls == 3) {
        volatile double s = 0;
        for (long i = 0; i < 30000000; ++i) s += (double)i;
    }
''')


def test_first_seen_inputs_slowed_twice_by_noise_are_not_called_memoization(ev):
    # The same two calls are slow in the recheck's process too, but there they fall in the lead-in
    # of repeats; its first-seen sets come later and run at the median the first run claimed (a
    # memoizer is slow on every one: tests/cheats).
    p = run(ev, SLOW_FIRST_FRESH)
    assert p.verdict == Verdict.accepted, p.failure_message
    assert p.bench.fresh_over_repeat > ev.cfg.timing.caching_ratio          # the first run flagged it
    memo = p.bench.memo_recheck
    assert memo.lead_in == p.bench.candidate.repeats and memo.calls == memo.lead_in + 2 * (2 * len(ev.rotation) - 1)
    assert memo.fresh_over_claim < ev.cfg.timing.caching_ratio
    assert len(ev.recheck_rotation()) == 2 * len(ev.rotation)
    assert [c.seed for c in ev.recheck_rotation()[:len(ev.rotation)]] == [c.seed for c in ev.rotation]
