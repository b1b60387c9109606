"""The CUDA/HIP template families: every strategy compiles with the real nvcc, and verifies on a GPU.

Compiling needs nvcc (present on this machine, no GPU): each family's strategy combinations, and
every tunable value on the last of them, are built for sm_90 with the harness's own flags. Running
them needs a device: the `gpu` test verifies every combination against the shipped workload and
skips here. HIP shares the source (kscout_gpu.h maps the stream type and the launch-error check);
without ROCm it is not compiled here.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from agents import templates
from harness import backends, workload
from harness.attempt import Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, Verdict

FAMILIES = ["bias_gelu", "matmul"]
needs_nvcc = pytest.mark.skipif(backends.get("cuda").find_compiler(HarnessConfig()) is None, reason="needs nvcc")


def build_points(fam) -> list[dict]:
    """Every strategy combination at default tunables, then each tunable's values on the last one."""
    points = fam.strategy_points()
    last = points[-1]
    return points + [dict(last, **{a.name: v}) for a in fam.tunables() for v in a.values if v != a.default]


@pytest.mark.parametrize("name", FAMILIES)
def test_the_hip_family_renders_the_same_portable_source_and_keys_its_own_tree(name):
    cuda, hip = templates.get(name, "cuda"), templates.get(name, "hip")
    for p in cuda.strategy_points():
        assert hip.render(p).replace("(hip)", "(cuda)") == cuda.render(p)
    assert cuda.key == f"{name}@cuda" and templates.get(f"{name}@hip") is hip
    assert {"cuda", "hip"} <= set(workload.load(name).spec.backends)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_strategy_renders_distinct_code(name):
    fam = templates.get(name, "cuda")
    assert len({fam.code_key(p) for p in fam.strategy_points()}) == len(fam.strategy_points())


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("name", FAMILIES)
def test_every_strategy_and_tunable_compiles_with_nvcc(name, tmp_path):
    fam = templates.get(name, "cuda")
    cfg = HarnessConfig(cache_dir=tmp_path, gpu_arch="sm_90")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda p: (p, backends.get("cuda").compile(fam.render(p), "kscout_forward", cfg, 300)),
                                build_points(fam)))
    failed = [(p, r.failure, r.log[-600:]) for p, r in results if not r.ok]
    assert not failed, failed
    assert not [p for p, r in results if "warning" in r.log.lower() and "unused" not in r.log.lower()]


@pytest.mark.gpu
@pytest.mark.parametrize("name", FAMILIES)
def test_every_strategy_verifies_on_the_device(name, tmp_path):
    from harness import gpu
    backend = "hip" if gpu.detect().vendor == "amd" else "cuda"
    fam = templates.get(name, backend)
    cfg = HarnessConfig(cache_dir=tmp_path, timing=TimingPolicy(warmup=2, min_repeats=5, max_repeats=20,
                                                                min_time_s=0.05, max_time_s=1.0))
    ev = Evaluator(workload.load(name), cfg=cfg, device="cuda")
    try:
        ev.measure_eager()
        for p in build_points(fam):
            pk = ev.evaluate(Candidate(source=fam.render(p), backend=backend, workload=name, params=p))
            assert pk.verdict == Verdict.accepted, (p, pk.failure_class, pk.failure_message)
            assert pk.bench is not None and pk.speedup("torch_eager") > 0
    finally:
        ev.close()


@pytest.mark.slow
@needs_nvcc
def test_the_cuda_skills_example_kernel_compiles_against_the_abi(tmp_path):
    """The skill a model reads shows a whole candidate: it must build against kscout_gpu.h as shown."""
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / "skills" / "cuda" / "SKILL.md").read_text()
    blocks = [b for b in re.findall(r"```cuda\n(.*?)```", text, re.S) if "kscout_forward" in b]
    assert blocks, "the CUDA skill shows no complete candidate"
    for b in blocks:
        src = b if "#include" in b else '#include "kscout_gpu.h"\n' + b
        r = backends.get("cuda").compile(src, "kscout_forward", HarnessConfig(cache_dir=tmp_path, gpu_arch="sm_90"), 300)
        assert r.ok, r.log[-1500:]
