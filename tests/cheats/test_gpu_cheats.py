"""The GPU cheat suite: CUDA candidates that a naive GPU harness would accept.

Every cheat in harness/cheats.py with backend "cuda" has a candidate in gpu_cheats/; the honest
twin is gpu_honest/axpy.cu. Here (nvcc, no GPU) each one is compiled with the real nvcc, so the
suite is real code, ready for a device. On a GPU (`gpu` marker) each cheat must be rejected with
its class and the twin accepted, against baselines measured on that GPU.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import backends, workload
from harness.attempt import Evaluator
from harness.cheats import by_name
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, Verdict

HERE = Path(__file__).resolve().parent
HEADER = re.compile(r"//\s*workload:\s*(\S+)\s+twin:\s*(\S+)")
CHEATS = {p.stem: HEADER.search(p.read_text().splitlines()[0]).groups()
          for p in sorted((HERE / "gpu_cheats").glob("*.cu"))}
needs_nvcc = pytest.mark.skipif(backends.get("cuda").find_compiler(HarnessConfig()) is None, reason="needs nvcc")


def test_every_gpu_cheat_is_catalogued_with_a_candidate_and_a_twin():
    gpu = {n for n, c in by_name().items() if c.backend == "cuda"}
    assert set(CHEATS) == gpu and len(gpu) >= 6, set(CHEATS) ^ gpu
    for w, twin in CHEATS.values():
        assert "cuda" in workload.load(HERE / "workloads" / w).spec.backends
        assert (HERE / "gpu_honest" / f"{twin}.cu").is_file()


@needs_nvcc
@pytest.mark.slow
def test_every_gpu_cheat_and_twin_compiles_with_nvcc(tmp_path):
    cfg = HarnessConfig(cache_dir=tmp_path, gpu_arch="sm_90")
    files = [HERE / "gpu_cheats" / f"{n}.cu" for n in CHEATS] + [HERE / "gpu_honest" / "axpy.cu"]
    bad = []
    for f in files:
        r = backends.get("cuda").compile(f.read_text(), "kscout_forward", cfg, 120)
        if not r.ok:
            bad.append((f.name, r.failure, r.log[-500:]))
    assert not bad, bad


@pytest.fixture(scope="module")
def gpu_evaluators(tmp_path_factory):
    cfg = HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"),
                        timing=TimingPolicy(warmup=2, min_repeats=6, max_repeats=12, min_time_s=0.02, max_time_s=1.0))
    made: dict[str, Evaluator] = {}

    def get(name: str) -> Evaluator:
        if name not in made:
            made[name] = Evaluator(workload.load(HERE / "workloads" / name), cfg=cfg, device="cuda")
            made[name].measure_eager()
        return made[name]
    yield get
    for ev in made.values():
        ev.close()


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CHEATS))
def test_gpu_cheat_is_rejected_with_its_class(gpu_evaluators, name):
    w, _ = CHEATS[name]
    p = gpu_evaluators(w).evaluate(Candidate(source=(HERE / "gpu_cheats" / f"{name}.cu").read_text(),
                                             backend="cuda", workload=w))
    assert p.verdict == Verdict.rejected, f"{name} was accepted: {p.bench}"
    assert p.failure_class == by_name()[name].caught_as, f"{name}: got {p.failure_class}: {p.failure_message}"


@pytest.mark.gpu
@pytest.mark.parametrize("wl", sorted({w for w, _ in CHEATS.values()}))
def test_gpu_honest_twin_is_accepted(gpu_evaluators, wl):
    p = gpu_evaluators(wl).evaluate(Candidate(source=(HERE / "gpu_honest" / "axpy.cu").read_text(), backend="cuda",
                                              workload=wl))
    assert p.verdict == Verdict.accepted, f"{wl}: {p.failure_class}: {p.failure_message}"
    assert p.bench is not None and p.bench.speedup
