"""Input distributions earn their place by catching kernels the others let through."""

from __future__ import annotations

import re

import torch

from harness import workload
from harness.attempt import Evaluator
from harness.cases import fill
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, FailureClass
from tests.cli.test_search_e2e import small_copy

# LayerNorm with the textbook one-pass variance, E[x^2] - E[x]^2, finished in fp32: exact enough
# while |mean| is not much larger than the spread, ~1e-3 off when it is (100 + N(0,1)).
ONE_PASS_LAYERNORM = r"""
#include "kscout.h"
#include <math.h>
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    const float* w = (const float*)in[1].data;
    const float* b = (const float*)in[2].data;
    float* y = (float*)out->data;
    const int64_t N = in[0].shape[in[0].ndim - 1], M = ks_numel(&in[0]) / N;
    for (int64_t i = 0; i < M; ++i) {
        const float* r = x + i * N;
        double s = 0, s2 = 0;
        for (int64_t j = 0; j < N; ++j) { s += r[j]; s2 += (double)r[j] * r[j]; }
        const float mean = (float)(s / N), ex2 = (float)(s2 / N);
        const float inv = 1.0f / sqrtf(ex2 - mean * mean + 1e-5f);
        for (int64_t j = 0; j < N; ++j) y[i * N + j] = (r[j] - mean) * inv * w[j] + b[j];
    }
    return 0;
}
"""


def test_offset_inputs_are_a_large_mean_over_a_unit_spread():
    t = torch.empty(64, 4096)
    fill(t, "offset", torch.Generator().manual_seed(0))
    assert abs(t.mean().item() - 100.0) < 0.01 and abs(t.std().item() - 1.0) < 0.01


def test_only_the_offset_distribution_catches_a_one_pass_layernorm_variance(tmp_path):
    """The shipped layernorm contract lets this kernel through; adding offset inputs catches it."""
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", timing=TimingPolicy(
        warmup=0, min_repeats=1, max_repeats=1, min_time_s=1e-3, max_time_s=1e-2))
    verdicts = {}
    for label, add_offset in (("shipped", False), ("with offset", True)):
        d = small_copy("layernorm", tmp_path / label.replace(" ", "_"), "{ M = 16, N = 1024 }")
        toml = d / "workload.toml"
        if add_offset:
            text = toml.read_text()
            assert '"uniform", "small"]' in text
            toml.write_text(text.replace('"uniform", "small"]', '"uniform", "offset", "small"]'))
        ev = Evaluator(workload.load(d), cfg=cfg)
        try:
            verdicts[label] = ev.evaluate(Candidate(source=ONE_PASS_LAYERNORM, workload="layernorm"))
        finally:
            ev.close()
    ok, caught = verdicts["shipped"], verdicts["with offset"]
    assert ok.verdict.value == "accepted", f"{ok.failure_class}: {ok.failure_message}"
    assert caught.failure_class == FailureClass.wrong_result
    assert re.search(r"\(seed \d+, offset, ", caught.failure_message), caught.failure_message
