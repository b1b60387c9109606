"""Offline template families: every legal parameter assignment must compile and be correct.

Fast tests check the declared spaces and the rendered text. Slow tests compile and verify with
the real harness (no mocks) on copies of the shipped workloads whose bench shape is shrunk, so
benchmarking is cheap while the odd verification shapes (tails!) stay: every move applied to
the naive root, every value of every axis combined with others, and seeded random assignments.
"""

from __future__ import annotations

import math
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agents import templates
from agents.templates.snippets import EXP2_AVX2, EXP2_SCALAR, EXP_AVX2, EXP_SCALAR, zmm
from harness import workload
from harness.envinfo import cpu_flags
from harness.attempt import Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, FailureClass
from search.planner import stack

# One shipped workload per op family exercises that family's templates.
WORKLOAD_OF = {workload.load(w).spec.family: w for w in reversed(workload.list_builtin())}
FAMILIES = sorted(WORKLOAD_OF)
# Sub-spaces whose axes only matter together: cover them with these axes pinned as well.
PINNED = {"matmul": [{"micro": "none"}, {}]}
RANDOM_DRAWS = 4


# --- fast: the declared spaces and the rendered text ------------------------------------------

def test_every_shipped_workload_has_templates():
    assert len(FAMILIES) >= 4
    assert set(FAMILIES) <= set(templates.families())


@pytest.mark.parametrize("name", FAMILIES)
def test_axes_and_moves_are_well_formed(name):
    fam = templates.get(name)
    names = [a.name for a in fam.axes]
    assert len(names) == len(set(names))
    for a in fam.axes:
        assert a.default in a.values, a.name
        assert len(a.values) == len(set(map(repr, a.values))), a.name
    assert len({m.name for m in fam.moves}) == len(fam.moves)
    for m in fam.moves:
        for k, v in {**m.assigns, **m.requires}.items():
            assert v in fam.axis(k).values, (m.name, k, v)
        assert all(fam.axis(k).kind == "strategy" for k in m.assigns), m.name
        assert fam.applicable(m, fam.defaults() | m.requires), f"{m.name} changes nothing at the root"


@pytest.mark.parametrize("name", FAMILIES)
def test_root_is_naive_scalar_single_thread(name):
    fam = templates.get(name)
    src = fam.render(fam.defaults())
    assert "#pragma omp" not in src and "_mm256" not in src and "ks_expf" not in src


@pytest.mark.parametrize("name", FAMILIES)
def test_every_axis_value_renders(name):
    fam = templates.get(name)
    for a in fam.axes:
        for v in a.values:
            src = fam.render({a.name: v})
            assert src.startswith(f"// kscout offline template: {name}\n// strategy: ")
            assert '#include "kscout.h"' in src
            assert "KS_EXPORT int kscout_forward(const ks_tensor* inputs, int32_t n_inputs, ks_tensor* output)" in src
            assert fam.render({a.name: v}) == src   # deterministic: same params, same source hash


def test_rejects_unknown_values():
    fam = templates.get("softmax")
    with pytest.raises(ValueError, match="threads"):
        fam.render({"threads": "gpu"})
    with pytest.raises(ValueError, match="unknown"):
        fam.render({"warp_size": 32})


# --- slow: compile + verify with the real harness ---------------------------------------------

def _small_workload(family: str, root: Path) -> workload.Workload:
    """A copy of the family's shipped workload whose bench shape is its smallest declared shape."""
    return smallest_bench_copy(WORKLOAD_OF[family], root)


def smallest_bench_copy(name: str, root: Path) -> workload.Workload:
    """A copy of shipped workload `name` whose bench shape is its smallest declared shape."""
    dst = root / name
    shutil.copytree(workload.resolve(name), dst)
    spec = workload.load(dst).spec
    smallest = min((s for s in spec.shapes if not s.bench), key=lambda s: math.prod(s.dims.values()))
    dims = ", ".join(f"{k} = {v}" for k, v in smallest.dims.items())
    toml = (dst / "workload.toml").read_text()
    small = re.sub(r'(name = "bench"\s*\ndims = \{ )[^}]*( \})', rf"\g<1>{dims}\g<2>", toml)
    assert small != toml, "bench shape not found in workload.toml"
    (dst / "workload.toml").write_text(small)
    return workload.load(dst)


class _Runner:
    """One Evaluator per family (built on first use) and a memo of already-verified sources."""

    def __init__(self, root: Path):
        self.root = root
        self.cfg = HarnessConfig(cache_dir=root / "cache", timing=TimingPolicy(
            warmup=0, min_repeats=1, max_repeats=1, min_time_s=1e-3, max_time_s=1e-2))
        self.evaluators: dict[str, Evaluator] = {}
        self.seen: dict[str, str] = {}

    def check(self, name: str, params: dict) -> None:
        fam = templates.get(name)
        src = fam.render(params)
        if src in self.seen:
            return
        if name not in self.evaluators:
            self.evaluators[name] = Evaluator(_small_workload(name, self.root), cfg=self.cfg)
        p = self.evaluators[name].evaluate(Candidate(source=src, workload=WORKLOAD_OF[name], params=params))
        missing = fam.isa(params) - cpu_flags() if cpu_flags() else set()
        if missing:   # this CPU cannot run it (the planner never proposes it here): it must say why
            assert p.failure_class == FailureClass.compile_error and "AVX-512" in p.artifacts.get("compile_log", ""), (
                f"{name} {params} needs {missing}, absent here: {p.failure_class} {p.failure_message}")
            self.seen[src] = p.id
            return
        assert p.verdict.value == "accepted", (
            f"{name} {params}: {p.failure_class} {p.failure_message}\n{p.artifacts.get('compile_log', '')[-2000:]}")
        self.seen[src] = p.id


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> _Runner:
    return _Runner(tmp_path_factory.mktemp("templates"))


def covering(fam, pinned: dict) -> list[dict]:
    """Assignments in which every value of every (unpinned) axis appears at least once, each
    combined with values of all the other axes (round-robin, offset per axis)."""
    axes = [a for a in fam.axes if a.name not in pinned]
    n = max(len(a.values) for a in axes)
    return [pinned | {a.name: a.values[(i + j) % len(a.values)] for j, a in enumerate(axes)} for i in range(n)]


def all_moves(fam) -> dict:
    """Apply every move that is applicable, in declaration order: the 'everything on' node."""
    params = fam.defaults()
    for m in fam.moves:
        if fam.applicable(m, params):
            params |= m.assigns
    return params


def stacked(fam) -> dict:
    """The planner's stacked child of the naive kernel on the moves' priors (a fresh search's
    second attempt): a combination no single move makes."""
    return stack(fam, fam.defaults(), fam.prior_gain)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_every_move_on_root_is_correct(runner, name):
    fam = templates.get(name)
    for m in fam.moves:
        runner.check(name, fam.defaults() | m.requires | m.assigns)
    runner.check(name, stacked(fam))


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_every_axis_value_is_correct(runner, name):
    fam = templates.get(name)
    runner.check(name, all_moves(fam))
    for pinned in PINNED.get(name, [{}]):
        for params in covering(fam, pinned):
            runner.check(name, params)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_random_assignments_are_correct(runner, name):
    fam = templates.get(name)
    rng = random.Random(f"kscout-{name}")
    for _ in range(RANDOM_DRAWS):
        runner.check(name, {a.name: rng.choice(a.values) for a in fam.axes})


def test_covering_covers_every_value():
    for name in FAMILIES:
        fam = templates.get(name)
        for pinned in PINNED.get(name, [{}]):
            rows = covering(fam, pinned)
            for a in fam.axes:
                if a.name not in pinned:
                    assert {repr(r[a.name]) for r in rows} == {repr(v) for v in a.values}


# --- slow: the fast exp against double precision, directly --------------------------------

_EXP_PROBE = r"""
#include <immintrin.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
%s
%s
int main() {
    double worst_s = 0, worst_v = 0;
    for (int i = 0; i <= 2000000; ++i) {
        const float x = -87.0f + 175.0f * (float)i / 2000000.0f;   // the whole finite range
        const double ref = std::exp((double)x);
        float v[8];
        _mm256_storeu_ps(v, ks_exp8(_mm256_set1_ps(x)));
        worst_s = std::fmax(worst_s, std::fabs(ks_expf(x) - ref) / ref);
        worst_v = std::fmax(worst_v, std::fabs(v[0] - ref) / ref);
    }
    float lo[8];
    _mm256_storeu_ps(lo, ks_exp8(_mm256_set1_ps(-1000.0f)));
    std::printf("%%.3g %%.3g %%g %%g %%g %%g\n", worst_s, worst_v, ks_expf(-1000.0f), lo[0],
                ks_expf(1000.0f), ks_expf(-INFINITY));
}
"""


def _run_probe(tmp_path: Path, source: str) -> list[str]:
    """Build a C++ probe with -march=native and return what it prints, split on whitespace."""
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    (tmp_path / "probe.cpp").write_text(source)
    subprocess.run(["g++", "-O2", "-march=native", "-std=c++17", "probe.cpp", "-o", "probe"], cwd=tmp_path,
                   check=True, capture_output=True)
    return subprocess.run([str(tmp_path / "probe")], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.slow
def test_fast_exp_accuracy(tmp_path):
    out = _run_probe(tmp_path, _EXP_PROBE % (EXP_SCALAR, EXP_AVX2))
    rel_scalar, rel_vec, under_s, under_v, over, neg_inf = map(float, out)
    assert rel_scalar < 3e-7 and rel_vec < 3e-7          # ~2 ulp; the tolerances are 1e-5
    assert under_s == 0.0 and under_v == 0.0 and neg_inf == 0.0   # e^-1000 underflows to exactly 0
    assert 1e38 < over < float("inf")                     # saturates, stays finite


_EXP2_PROBE = r"""
#include <immintrin.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
%s
%s
int main() {
    double worst_near = 0, worst_far = 0, worst_gap = 0;
    for (int i = 0; i <= 2000000; ++i) {
        const float x = -86.0f * (float)i / 2000000.0f;          // x - max in [-86, 0]
        const float t = x * 1.44269504088896341f;
        const double ref = std::exp((double)x);
        __m256 v = _mm256_set1_ps(t);
        ks_exp2_8_n<1>(&v);
        float lanes[8];
        _mm256_storeu_ps(lanes, v);
        const double rel = std::fabs(lanes[0] - ref) / ref;
        (x >= -1.0f ? worst_near : worst_far) = std::fmax(x >= -1.0f ? worst_near : worst_far, rel);
        worst_gap = std::fmax(worst_gap, std::fabs((double)lanes[0] - ks_exp2f(t)));   // tails match bodies
    }
    __m256 big = _mm256_set1_ps(126.0f), low = _mm256_set1_ps(-1000.0f);
    ks_exp2_8_n<1>(&big);
    ks_exp2_8_n<1>(&low);
    float b[8], l[8];
    _mm256_storeu_ps(b, big);
    _mm256_storeu_ps(l, low);
    std::printf("%%.3g %%.3g %%.3g %%g %%g\n", worst_near, worst_far, worst_gap, b[0], l[0]);
}
"""


@pytest.mark.slow
def test_exp2_accuracy_matches_what_its_comment_claims(tmp_path):
    out = _run_probe(tmp_path, _EXP2_PROBE % (EXP2_SCALAR, EXP2_AVX2))
    near, far, gap, top, floor = map(float, out)
    assert near < 4e-7 and far < 5e-6        # 6 ulp near the max, 4e-6 at -86 (t rounded in log2 units)
    assert gap == 0.0                        # the scalar tail and the vector body give the same bits
    assert top == pytest.approx(2.0 ** 126, rel=1e-6)     # the largest t a caller may pass stays finite
    assert floor == pytest.approx(2.0 ** -126, rel=1e-6)  # clamped: normal, never a denormal


def test_zmm_widens_the_intrinsics_and_refuses_what_has_no_512_bit_form():
    assert zmm("__m256 v = _mm256_castsi256_ps(_mm256_slli_epi32(i, 23)); ks_exp8_n<4>(&v);") == (
        "__m512 v = _mm512_castsi512_ps(_mm512_slli_epi32(i, 23)); ks_exp16_n<4>(&v);")
    with pytest.raises(ValueError, match="extractf128"):
        zmm("__m128 h = _mm256_extractf128_ps(v, 1);")


@pytest.mark.slow
def test_an_avx512_kernel_on_a_cpu_without_it_fails_to_compile_naming_the_reason(tmp_path):
    """-mno-avx512f stands in for a CPU without AVX-512F (the planner never proposes the move there,
    but a replay on another machine or a model's edit can still meet it)."""
    fam = templates.get("bias_gelu")
    params = {"fuse": "fused", "threads": "rows", "vector": "avx2", "math": "poly", "simd_width": 16}
    assert fam.isa(params) == {"avx512f"} and fam.isa(dict(params, vector="scalar")) == set()
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", cxxflags=HarnessConfig().cxxflags + ["-mno-avx512f"],
                        timing=TimingPolicy(warmup=0, min_repeats=1, max_repeats=1, min_time_s=1e-3, max_time_s=1e-2))
    ev = Evaluator(_small_workload("bias_gelu", tmp_path), cfg=cfg)
    p = ev.evaluate(Candidate(source=fam.render(params), workload="bias_gelu", params=params))
    assert p.failure_class == FailureClass.compile_error
    assert "this kernel uses AVX-512F" in p.artifacts["compile_log"]
