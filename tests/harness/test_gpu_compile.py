"""Triton kernels compiled for GPUs this machine does not have (harness.gpu_compile): the real
Triton compiler and the ptxas bundled with the triton wheel, no device, no mocks.

What the interpreter cannot see: a tile whose shared memory exceeds the part's, a launch whose
registers exceed the block's file, a dot precision the target does not have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agents import templates
from harness import gpu_compile, workload
from harness.attempt import Evaluator
from harness.config import HarnessConfig
from harness.evidence import Candidate, FailureClass, Verdict
from tests.agents.test_templates import smallest_bench_copy
from tests.agents.test_triton_templates import TRITON_FAMILIES, every_move
from tests.harness.test_triton_backend import oversized_matmul

ROOT = Path(__file__).resolve().parents[2]


def _module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return path


def test_limits_turn_resources_into_problems_and_notes():
    h100, a10 = gpu_compile.TARGETS["sm_90"], gpu_compile.TARGETS["sm_86"]
    k = dict(kernel="k", num_warps=8, num_stages=3, threads=256, shared_bytes=150_000, registers=200)
    assert gpu_compile.check_limits(gpu_compile.KernelResources(**k), h100).problems == []
    small = gpu_compile.check_limits(gpu_compile.KernelResources(**k), a10)
    assert len(small.problems) == 1 and "150000 B of shared memory" in small.problems[0] and "101376" in small.problems[0]
    # 1024 threads x 128 registers = 131072 > the 65536 a block may hold: the launch fails
    wide = gpu_compile.check_limits(gpu_compile.KernelResources(**dict(k, num_warps=32, threads=1024, registers=128,
                                                                       shared_bytes=0)), h100)
    assert len(wide.problems) == 1 and "131072" in wide.problems[0]
    spills = gpu_compile.check_limits(gpu_compile.KernelResources(**dict(k, spilled=96)), h100)
    assert spills.problems == [] and spills.notes == ["spills: 96 bytes of local memory per thread"]
    with pytest.raises(ValueError, match="unknown GPU target 'sm_75'"):
        gpu_compile.check(Path("k.py"), "kscout_forward", "matmul", "sm_75")
    with pytest.raises(ValueError, match="unknown GPU target 'h100'"):
        HarnessConfig(triton_targets=["h100"])


def without_step_down(src: str) -> str:
    """A Triton template's module whose launcher tries only the asked-for (BLOCK_K, stages)."""
    assert "\nFITS = list(" in src
    return src + "\nFITS = FITS[:1]   # this launcher does not step down\n"


def test_a_matmul_tile_that_fits_an_h100_steps_down_to_fit_an_a10_and_an_mi300(tmp_path):
    """128x128 tiles, BLOCK_K 64, 4 stages of fp32 slices: 192 KiB of shared memory (Triton keeps
    stages - 1 slices of A and B in flight), under sm_90's 227 KiB, over sm_86's 99 KiB and the
    64 KiB of LDS a gfx942 workgroup gets. The compile check raises OutOfResources where the
    device would; the launcher steps down and the report shows the kernel that launched."""
    fam = templates.get("matmul", "triton")
    params = every_move(fam)
    assert (params["tile"], params["block_k"], params["stages"]) == ("128x128", 64, 4)
    mod = _module(tmp_path, "matmul", fam.render(params))
    cfg = HarnessConfig(cache_dir=tmp_path / "cache")
    h100 = gpu_compile.check(mod, "kscout_forward", workload.resolve("matmul"), "sm_90", cfg=cfg)
    assert h100.ok, h100.summary()
    (k,) = h100.kernels
    assert k.kernel == "_matmul" and k.num_warps == 8 and k.threads == 256 and k.num_stages == 4
    assert 101376 < k.shared_bytes <= 232448 and 0 < k.registers <= 255 and k.notes == []
    for target, limit in (("sm_86", 101376), ("gfx942", 65536)):
        rep = gpu_compile.check(mod, "kscout_forward", workload.resolve("matmul"), target, cfg=cfg)
        assert rep.ok, rep.summary()
        (small,) = rep.kernels
        assert small.shared_bytes <= limit and small.num_stages == 4       # BLOCK_K went down, not the stages
        assert small.notes[0].startswith(f"stepped down to fit {target}'s {limit} B of shared memory, from 196608 B")
    assert rep.kernels[0].threads == 512                                    # gfx942: 8 wavefronts of 64
    # a launcher that does not step down fails there, and the report says why
    rigid = _module(tmp_path, "matmul_rigid", without_step_down(fam.render(params)))
    mi300 = gpu_compile.check(rigid, "kscout_forward", workload.resolve("matmul"), "gfx942", cfg=cfg)
    assert not mi300.ok and mi300.error is None and len(mi300.kernels) == 1
    assert "196608 B of shared memory" in mi300.kernels[0].problems[0] and "65536 B" in mi300.kernels[0].problems[0]
    # the CLI: one line per target, status 1 when any target fails
    r = subprocess.run([sys.executable, "-m", "harness", "gpu-compile", str(rigid), "--workload", "matmul",
                        "--target", "sm_90", "--target", "sm_86"], capture_output=True, text=True, cwd=ROOT,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 1, r.stderr
    ok, fail = r.stdout.strip().splitlines()
    assert ok.startswith("ok    sm_90: _matmul: 192 KiB shared") and fail.startswith("FAIL  sm_86:")
    assert "101376 B" in fail
    bad = subprocess.run([sys.executable, "-m", "harness", "gpu-compile", str(mod), "-w", "matmul", "-t", "sm_75"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--target sm_75: unknown; use one of sm_80" in bad.stderr


def test_a_precision_the_target_lacks_is_a_compile_error(tmp_path):
    """tf32x3 exists on NVIDIA, not on AMD: the interpreter ignores input_precision altogether."""
    fam = templates.get("matmul", "triton")
    src = fam.render(fam.defaults()).replace('input_precision="ieee"', 'input_precision="tf32x3"')
    assert 'input_precision="tf32x3"' in src
    mod = _module(tmp_path, "tf32x3", src)
    cfg = HarnessConfig(cache_dir=tmp_path / "cache")
    rep = gpu_compile.check(mod, "kscout_forward", workload.resolve("matmul"), "gfx942", cfg=cfg)
    assert not rep.ok and rep.kernels == [] and "input_precision must be one of" in rep.error
    assert rep.summary().startswith("gfx942: does not compile: ")
    assert gpu_compile.check(mod, "kscout_forward", workload.resolve("matmul"), "sm_90", cfg=cfg).ok


def test_the_search_rejects_an_interpreter_verified_kernel_that_would_not_launch_on_its_target(tmp_path):
    """harness.triton_targets: verified in the interpreter, then compiled for each target at the
    workload's bench shape; one that does not fit is rejected as compile_error, with the report."""
    fam = templates.get("matmul", "triton")
    params = every_move(fam)
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", triton_interpret=True, triton_targets=["sm_90", "sm_86"])
    ev = Evaluator(smallest_bench_copy("matmul", tmp_path), cfg=cfg)
    try:
        p = ev.evaluate(Candidate(source=without_step_down(fam.render(params)), backend="triton", workload="matmul",
                                  params=params), bench=False)
    finally:
        ev.close()
    assert p.verify is not None and p.verify.ok                         # the interpreter accepted its numbers
    assert p.verdict == Verdict.rejected and p.failure_class == FailureClass.compile_error
    assert p.failure_message.startswith("verified in Triton's CPU interpreter, but would not launch on sm_86 (A10")
    assert [r.target for r in p.gpu_compile] == ["sm_90", "sm_86"]
    assert p.gpu_compile[0].ok and not p.gpu_compile[1].ok


@pytest.mark.slow
@pytest.mark.parametrize("name", TRITON_FAMILIES)
def test_every_triton_family_fits_an_h100_and_an_mi300_at_its_bench_shape(name, tmp_path):
    """The naive kernel and all moves at the largest tunables (the most shared memory and
    registers a family asks for), compiled for sm_90 and gfx942 at the workload's real bench
    shape. The one exception: conv2d's 3xTF32 dot, which AMD does not have (a compile error
    there, which the search records and prunes, rather than a kernel that silently computes in
    another precision than its strategy says)."""
    fam = templates.get(name, "triton")
    cfg = HarnessConfig(cache_dir=tmp_path / "cache")
    for label, params in (("naive", fam.defaults()), ("every move", every_move(fam))):
        mod = _module(tmp_path, f"{name}_{label.replace(' ', '_')}", fam.render(params))
        for target, warp in (("sm_90", 32), ("gfx942", 64)):
            rep = gpu_compile.check(mod, "kscout_forward", workload.resolve(name), target, cfg=cfg)
            if (name, label, target) == ("conv2d", "every move", "gfx942"):
                assert params["precision"] == "tf32x3" and "input_precision must be one of" in rep.error
                continue
            assert rep.ok, f"{name} {label}: {rep.summary()}\n{rep.error or ''}"
            assert all(k.registers and k.threads == warp * k.num_warps for k in rep.kernels)



def test_the_launcher_takes_the_first_pair_that_fits_and_the_report_lists_the_rest(tmp_path):
    rep = gpu_compile.check(_module(tmp_path, "matmul_bk256", oversized_matmul()), "kscout_forward",
                            workload.resolve("matmul"), "sm_90", cfg=HarnessConfig(cache_dir=tmp_path / "cache"))
    assert rep.ok, rep.summary()
    (k,) = rep.kernels
    assert k.shared_bytes == 196608 and k.num_stages == 4
    assert k.notes == ["stepped down to fit sm_90's 232448 B of shared memory, from 786432 B at 4 stages, "
                       "393216 B at 4 stages"]
