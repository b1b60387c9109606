"""The CUDA/HIP bias_gelu template family: every strategy compiles with the real nvcc, and verifies on a GPU.

Compiling needs nvcc (present on this machine, no GPU): each of the family's strategy combinations
is built for sm_90 with the harness's own flags. Running them needs a device: the `gpu` test
verifies and times every combination against the shipped workload and skips here. HIP shares the
source (kscout_gpu.h maps the stream type and the launch-error check); without ROCm it is not
compiled here.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents import templates
from harness import backends, workload
from harness.attempt import Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, Verdict

CUDA = templates.get("bias_gelu", "cuda")


def strategy_points() -> list[dict]:
    axes = [a for a in CUDA.axes if a.kind == "strategy"]
    return [dict(zip([a.name for a in axes], vals)) for vals in itertools.product(*[a.values for a in axes])]


def test_the_hip_family_renders_the_same_portable_source_and_keys_its_own_tree():
    assert templates.get("bias_gelu", "hip").render({"fuse": "fused"}).replace("(hip)", "(cuda)") == \
        CUDA.render({"fuse": "fused"})
    assert CUDA.key == "bias_gelu@cuda" and templates.get("bias_gelu@hip").backend == "hip"
    assert "cuda" in workload.load("bias_gelu").spec.backends


def test_every_strategy_renders_distinct_code():
    keys = {CUDA.code_key(p) for p in strategy_points()}
    assert len(keys) == len(strategy_points()) == 16


@pytest.mark.slow
@pytest.mark.skipif(backends.get("cuda").find_compiler(HarnessConfig()) is None, reason="needs nvcc")
def test_every_strategy_and_block_size_compiles_with_nvcc(tmp_path):
    cfg = HarnessConfig(cache_dir=tmp_path, gpu_arch="sm_90")
    points = strategy_points() + [{"fuse": "fused", "vector": 4, "block": b} for b in (128, 512, 1024)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: (p, backends.get("cuda").compile(CUDA.render(p), "kscout_forward", cfg, 300)),
                                points))
    failed = [(p, r.failure, r.log[-600:]) for p, r in results if not r.ok]
    assert not failed, failed


@pytest.mark.gpu
def test_every_strategy_verifies_on_the_device(tmp_path):
    from harness import gpu
    backend = "hip" if gpu.detect().vendor == "amd" else "cuda"
    fam = templates.get("bias_gelu", backend)
    cfg = HarnessConfig(cache_dir=tmp_path, timing=TimingPolicy(warmup=2, min_repeats=5, max_repeats=20,
                                                                min_time_s=0.05, max_time_s=1.0))
    ev = Evaluator(workload.load("bias_gelu"), cfg=cfg)
    try:
        for p in strategy_points():
            pk = ev.evaluate(Candidate(source=fam.render(p), backend=backend, workload="bias_gelu", params=p))
            assert pk.verdict == Verdict.accepted, (p, pk.failure_class, pk.failure_message)
    finally:
        ev.close()
