"""The hardware worker's own logic (search/actors.py), run in this process as the local executor
runs it: no Ray."""

from __future__ import annotations

import pytest

from harness.attempt import EAGER, NAIVE
from harness.evidence import Candidate, Verdict
from search.actors import Hardware
from tests.conftest import AXPY_OK

pytestmark = pytest.mark.slow


def test_the_naive_kernels_speedup_is_against_the_faster_eager_figure(tiny_workload_dir, harness_cfg):
    cfg = harness_cfg.model_copy(update={"compiled_baseline": False, "interleave_baselines": True})
    hw = Hardware(str(tiny_workload_dir), "float32", cfg, "test-run")
    start = hw.evaluator.baselines[EAGER]
    # as if eager had been timed at the run's start on an idle machine and re-timed, beside the
    # naive kernel, in a load spike: the speedup must use the faster figure, as every other
    # attempt's does (CI saw a naive kernel at "18.5x over eager" become a run's best)
    fast = start.model_copy(update={"median_s": start.median_s / 100, "min_s": start.min_s / 100,
                                    "q1_s": start.q1_s / 100, "q3_s": start.q3_s / 100})
    hw.add_baseline(EAGER, fast)
    packet = hw.evaluate_naive(Candidate(source=AXPY_OK, workload="axpy"))
    assert packet.verdict == Verdict.accepted, packet.failure_message
    b = packet.bench
    assert b.interleaved[EAGER].median_s > fast.median_s
    assert b.speedup[EAGER] == pytest.approx(fast.median_s / b.candidate.median_s)
    assert b.speedup[NAIVE] == pytest.approx(1.0) and b.baselines[NAIVE] == b.candidate
