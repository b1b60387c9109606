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


def _layernorm(tmp_path, label: str, edit=lambda text: text):
    d = small_copy("layernorm", tmp_path / label, "{ M = 16, N = 1024 }")
    toml = d / "workload.toml"
    toml.write_text(edit(toml.read_text()))
    return workload.load(d)


def _verdict(wl, source: str, tmp_path):
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", timing=TimingPolicy(
        warmup=0, min_repeats=1, max_repeats=1, min_time_s=1e-3, max_time_s=1e-2))
    ev = Evaluator(wl, cfg=cfg)
    try:
        return ev.evaluate(Candidate(source=source, workload="layernorm"))
    finally:
        ev.close()


# the bound's table: its header and every line up to the next table header
OFFSET_BOUND = r"\[tolerance\.float32\.by_distribution\.offset\]\n(?:(?!\[).*\n)*"


def _without_offset(text: str) -> str:
    assert '"uniform", "offset", "small"]' in text and "[tolerance.float32.by_distribution.offset]" in text
    text = text.replace('"uniform", "offset", "small"]', '"uniform", "small"]')
    return re.sub(OFFSET_BOUND, "", text)


def _default_bound_for_offset(text: str) -> str:
    return re.sub(OFFSET_BOUND, "", text)


def test_offset_inputs_catch_a_one_pass_layernorm_variance_that_the_other_distributions_let_through(tmp_path):
    caught = _verdict(_layernorm(tmp_path, "shipped"), ONE_PASS_LAYERNORM, tmp_path)
    assert caught.failure_class == FailureClass.wrong_result
    assert re.search(r"\(seed \d+, offset, ", caught.failure_message), caught.failure_message
    missed = _verdict(_layernorm(tmp_path, "no-offset", _without_offset), ONE_PASS_LAYERNORM, tmp_path)
    assert missed.verdict.value == "accepted", f"{missed.failure_class}: {missed.failure_message}"


def test_the_offset_bound_lets_sound_fp32_statistics_through_where_the_default_bound_would_not(tmp_path):
    """A vectorized two-pass kernel is ~1e-4 off on offset inputs: sound, but outside atol = 1e-5."""
    from agents import templates
    src = templates.get("layernorm").render({"vector": "avx2"})
    ok = _verdict(_layernorm(tmp_path, "shipped"), src, tmp_path)
    assert ok.verdict.value == "accepted", f"{ok.failure_class}: {ok.failure_message}"
    strict = _verdict(_layernorm(tmp_path, "strict", _default_bound_for_offset), src, tmp_path)
    assert strict.failure_class == FailureClass.wrong_result and "offset" in strict.failure_message


def test_a_bound_for_a_distribution_no_case_draws_is_an_error_naming_the_field(tmp_path):
    import pytest
    with pytest.raises(workload.WorkloadError, match="by_distribution names \\['offset'\\], which no case draws"):
        _layernorm(tmp_path, "unused", lambda t: t.replace('"uniform", "offset", "small"]', '"uniform", "small"]'))
