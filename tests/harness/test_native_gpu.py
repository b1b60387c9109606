"""The CUDA and HIP backends: building, caching and clear verdicts where the toolchain or device is missing.

This machine has nvcc (CUDA 13) and no GPU, so the CUDA tests here compile real CUDA for a named
architecture (`harness.gpu_arch`) and check what the backend does with the result; they skip where
nvcc is absent. There is no ROCm here: the HIP tests check the "toolchain not found" verdict for
real, and the HIP build logic (flags, cache, log, entry-point check) against a stand-in `hipcc` at
the process boundary, a shell script that records its arguments and builds host code with g++.
Running kernels needs a device: those tests carry the `gpu` marker and skip here.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from harness import backends, gpu, workload
from harness.attempt import EAGER, Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, FailureClass, Verdict
from tests.conftest import TINY_REFERENCE, TINY_TOML

# The GPU cheat suite's honest twin: out = 2x + y, one thread per element, launched on the harness's stream.
AXPY_CUDA = (Path(__file__).resolve().parents[1] / "cheats" / "gpu_honest" / "axpy.cu").read_text()

NVCC = backends.get("cuda").find_compiler(HarnessConfig())
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit); none on this machine")


def cfg_for(tmp_path: Path, **kw) -> HarnessConfig:
    return HarnessConfig(cache_dir=tmp_path / "build", **kw)


# --- CUDA: real nvcc, no device ---------------------------------------------------------------

@needs_nvcc
def test_cuda_builds_for_the_named_arch_caches_by_source_flags_and_arch_and_keeps_the_log(tmp_path):
    b = backends.get("cuda")
    cfg = cfg_for(tmp_path, gpu_arch="sm_90")
    first = b.compile(AXPY_CUDA, "kscout_forward", cfg, 120)
    assert first.ok, first.log
    assert not first.cached and Path(first.artifact).is_file() and first.artifact.endswith("kernel.so")
    assert "-arch=sm_90" in first.command and "-shared" in first.command and first.command[-3] == "kernel.cu"
    assert (Path(first.artifact).parent / "compile.log").is_file()
    assert (Path(first.artifact).parent / "kernel.cu").read_text() == AXPY_CUDA

    again = b.compile(AXPY_CUDA, "kscout_forward", cfg, 120)
    assert again.ok and again.cached and again.source_hash == first.source_hash

    other_arch = b.compile(AXPY_CUDA, "kscout_forward", cfg_for(tmp_path, gpu_arch="sm_80"), 120)
    assert other_arch.ok and not other_arch.cached and other_arch.source_hash != first.source_hash
    other_flags = b.compile(AXPY_CUDA, "kscout_forward",
                            cfg_for(tmp_path, gpu_arch="sm_90", nvccflags=["-O2", "-std=c++17"]), 120)
    assert other_flags.ok and other_flags.source_hash not in (first.source_hash, other_arch.source_hash)
    assert "release" in b.toolchain(cfg) and "sm_90" in b.toolchain(cfg)


@needs_nvcc
def test_cuda_compile_errors_keep_nvccs_message(tmp_path):
    res = backends.get("cuda").compile(AXPY_CUDA.replace("2.0f * x[i]", "2.0f * x[i] +* "), "kscout_forward",
                                       cfg_for(tmp_path, gpu_arch="sm_90"), 120)
    assert not res.ok and res.failure == FailureClass.compile_error
    assert "error" in res.log and "kernel.cu" in res.log


@needs_nvcc
def test_the_cpu_signature_is_a_compile_error_not_a_crash_at_run_time(tmp_path):
    """kscout_gpu.h declares the entry point with its stream argument: a definition without it conflicts."""
    wrong = AXPY_CUDA.replace("ks_tensor* out, ks_stream stream)", "ks_tensor* out)").replace(
        "0, stream>>>", "0, 0>>>")
    res = backends.get("cuda").compile(wrong, "kscout_forward", cfg_for(tmp_path, gpu_arch="sm_90"), 120)
    assert not res.ok and res.failure == FailureClass.compile_error
    assert "kscout_forward" in res.log


@needs_nvcc
def test_an_entry_point_that_is_not_exported_is_missing_entry_point(tmp_path):
    res = backends.get("cuda").compile(AXPY_CUDA, "kscout_forward_v2", cfg_for(tmp_path, gpu_arch="sm_90"), 120)
    assert not res.ok and res.failure == FailureClass.missing_entry_point
    assert "kscout_forward_v2" in res.log and "KS_EXPORT" in res.log


@needs_nvcc
@pytest.mark.skipif(gpu.detect() is not None, reason="checks the no-device message")
def test_without_a_device_or_gpu_arch_there_is_nothing_to_compile_for(tmp_path):
    res = backends.get("cuda").compile(AXPY_CUDA, "kscout_forward", cfg_for(tmp_path), 120)
    assert not res.ok and res.failure == FailureClass.unsupported_backend
    assert "no CUDA device" in res.log and "harness.gpu_arch" in res.log
    ok, why = backends.get("cuda").available()
    assert not ok and "no CUDA device" in why


def test_a_configured_nvcc_that_does_not_exist_is_named(tmp_path):
    res = backends.get("cuda").compile(AXPY_CUDA, "kscout_forward",
                                       cfg_for(tmp_path, nvcc=str(tmp_path / "nope" / "nvcc"), gpu_arch="sm_90"), 60)
    assert not res.ok and res.failure == FailureClass.unsupported_backend
    assert res.log.startswith("CUDA toolchain not found") and "harness.nvcc" in res.log and "nope" in res.log


# --- the whole attempt on this machine: compiled, then an honest verdict -------------------------

@pytest.fixture(scope="module")
def axpy_gpu_workload(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wl") / "axpy"
    d.mkdir()
    (d / "reference.py").write_text(TINY_REFERENCE)
    (d / "workload.toml").write_text(TINY_TOML.replace('backends = ["cpu_cpp"]',
                                                       'backends = ["cpu_cpp", "cuda", "hip"]')
                                     .replace("compile_s = 30", "compile_s = 120").replace("run_s = 4", "run_s = 60"))
    return d


@needs_nvcc
@pytest.mark.slow
@pytest.mark.skipif(gpu.detect() is not None, reason="checks the no-device verdict")
def test_a_cuda_attempt_without_a_device_compiles_then_says_it_cannot_run_here(axpy_gpu_workload, tmp_path):
    ev = Evaluator(workload.load(axpy_gpu_workload), cfg=cfg_for(tmp_path, gpu_arch="sm_90"))
    try:
        p = ev.evaluate(Candidate(source=AXPY_CUDA, backend="cuda", workload="axpy"))
    finally:
        ev.close()
    assert p.verdict == Verdict.rejected and p.failure_class == FailureClass.unsupported_backend
    assert p.compile.ok and "compiled, but cannot run here: no CUDA device" in p.failure_message
    assert p.verify is None and p.bench is None and p.environment.gpu is None
    assert "sm_90" in p.environment.compiler


# --- HIP: no ROCm here ---------------------------------------------------------------------------

@pytest.mark.skipif(backends.get("hip").find_compiler(HarnessConfig()) is not None, reason="hipcc is installed")
def test_hip_without_rocm_is_a_clear_toolchain_not_found_verdict(tmp_path):
    b = backends.get("hip")
    ok, why = b.available()
    assert not ok and why.startswith("HIP toolchain not found") and "/opt/rocm/bin/hipcc" in why
    res = b.compile(AXPY_CUDA, "kscout_forward", cfg_for(tmp_path, gpu_arch="gfx942"), 60)
    assert not res.ok and res.failure == FailureClass.unsupported_backend
    assert "HIP toolchain not found" in res.log and "ROCM_PATH" in res.log


STAND_IN_HIPCC = """#!/bin/sh
# A stand-in for hipcc: records its arguments, then builds the (host-only) source with g++.
if [ "$1" = "--version" ]; then echo "HIP version: 6.2.41133-stand-in"; exit 0; fi
echo "$@" >> "{log}"
out=""; src=""; prev=""
for a in "$@"; do
  case "$prev" in -o) out="$a";; esac
  case "$a" in *.hip) src="$a";; esac
  prev="$a"
done
exec g++ -shared -fPIC -x c++ "$src" -o "$out"
"""

HOST_ONLY = """
extern "C" __attribute__((visibility("default"))) int kscout_forward(const void*, int, void*, void*) { return 0; }
"""


def test_hip_builds_for_the_gfx_arch_with_hipccs_flags_and_caches(tmp_path):
    log = tmp_path / "hipcc-args.log"
    hipcc = tmp_path / "rocm" / "bin" / "hipcc"
    hipcc.parent.mkdir(parents=True)
    hipcc.write_text(STAND_IN_HIPCC.format(log=log))
    hipcc.chmod(hipcc.stat().st_mode | stat.S_IEXEC)
    b = backends.get("hip")
    cfg = cfg_for(tmp_path, hipcc=str(hipcc), gpu_arch="gfx942")
    res = b.compile(HOST_ONLY, "kscout_forward", cfg, 60)
    assert res.ok, res.log
    args = log.read_text().split()
    assert "--offload-arch=gfx942" in args and "-shared" in args and "-fPIC" in args and "kernel.hip" in args
    assert any(a.endswith("include") and a.startswith("-I") for a in args)
    assert b.toolchain(cfg).startswith("HIP version: 6.2") and "gfx942" in b.toolchain(cfg)
    assert b.compile(HOST_ONLY, "kscout_forward", cfg, 60).cached
    assert len(log.read_text().splitlines()) == 1          # the cache hit did not run hipcc
    assert b.compile(HOST_ONLY, "kscout_forward", cfg.model_copy(update={"gpu_arch": "gfx90a"}), 60).ok
    assert "--offload-arch=gfx90a" in log.read_text().splitlines()[-1]
    assert b.compile(HOST_ONLY.replace("kscout_forward", "other"), "kscout_forward", cfg, 60).failure == \
        FailureClass.missing_entry_point


def test_the_source_file_is_named_for_the_backend():
    assert [backends.source_file(n) for n in ("cpu_cpp", "triton", "cuda", "hip")] == \
        ["kernel.cpp", "kernel.py", "kernel.cu", "kernel.hip"]


def test_where_each_backend_runs_decides_where_baselines_are_measured():
    cfg = HarnessConfig()
    assert backends.get("cpu_cpp").device(cfg) == "cpu"
    assert backends.get("cuda").device(cfg) == backends.get("hip").device(cfg) == "cuda"
    assert backends.get("triton").device(HarnessConfig(triton_interpret=True)) == "cpu"
    # a cluster's driver may have no GPU while its workers do: "never interpret" means the GPU
    assert backends.get("triton").device(HarnessConfig(triton_interpret=False)) == "cuda"


def test_spec_sheet_fallback_names_the_part_it_used():
    from harness.roofline import known_gpu
    assert known_gpu("NVIDIA H100 80GB HBM3")[0] == "H100 SXM"
    assert known_gpu("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert known_gpu("AMD Instinct MI300X")[1] == 5300
    assert known_gpu("Tesla T4") is None


# --- on a GPU ------------------------------------------------------------------------------------

GPU_TIMING = TimingPolicy(warmup=2, min_repeats=5, max_repeats=20, min_time_s=0.05, max_time_s=1.0)


@pytest.fixture(scope="module")
def gpu_ev(axpy_gpu_workload, tmp_path_factory):
    """Baselines and roofline on the GPU, as kscout search's GPU workers have them."""
    e = Evaluator(workload.load(axpy_gpu_workload), cfg=HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"),
                                                                      timing=GPU_TIMING), device="cuda")
    e.measure_roofline()
    e.measure_eager()
    e.measure_compiled()
    yield e
    e.close()


def _native_backend() -> str:
    return "hip" if gpu.detect().vendor == "amd" else "cuda"


@pytest.mark.gpu
def test_cuda_kernel_verifies_and_is_ranked_against_gpu_baselines(gpu_ev):
    p = gpu_ev.evaluate(Candidate(source=AXPY_CUDA, backend=_native_backend(), workload="axpy"))
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("compile_log"))
    assert p.environment.gpu is not None and p.environment.gpu.warp_size in (32, 64)
    assert p.environment.gpu.arch in " ".join(p.compile.command)
    assert p.verify.ok and all(c.passed for c in p.verify.cases)
    assert p.correctness_only is None and p.speedup(EAGER) > 0
    assert gpu_ev.peaks.method.startswith("GPU measured") and p.bench.roofline.sol is not None
    assert p.bench.cache_flush_bytes > 0


@pytest.mark.gpu
def test_a_gpu_kernel_against_cpu_baselines_is_verified_but_not_ranked(axpy_gpu_workload, tmp_path):
    ev = Evaluator(workload.load(axpy_gpu_workload), cfg=HarnessConfig(cache_dir=tmp_path, timing=GPU_TIMING))
    try:
        ev.measure_eager()
        p = ev.evaluate(Candidate(source=AXPY_CUDA, backend=_native_backend(), workload="axpy"))
    finally:
        ev.close()
    assert p.verdict == Verdict.accepted and p.bench is None
    assert "timed on" in p.correctness_only and "measured on the cpu" in p.correctness_only


# --- the native loader's marshaling, on the CPU ----------------------------------------------------

# The kscout_gpu.h signature, compiled as host code: the same ctypes path as a CUDA library, with
# host pointers (the torch child keeps tensors on the CPU when `interpret` is set).
HOST_AXPY = r"""
#include <stdint.h>
typedef struct { void* data; int32_t dtype, ndim; const int64_t* shape; const int64_t* strides; } ks_tensor;
static int calls = 0;
extern "C" __attribute__((visibility("default")))
int kscout_forward(const ks_tensor* in, int32_t n_in, ks_tensor* out, void* stream) {
    if (n_in != 2 || stream != 0 || in[0].ndim != 2 || out->shape[1] != in[1].shape[1]) return 7;
    int64_t n = in[0].shape[0] * in[0].shape[1];
    const float* x = (const float*)in[0].data; const float* y = (const float*)in[1].data;
    float* o = (float*)out->data;
    for (int64_t i = 0; i < n; ++i) o[i] = 2.0f * x[i] + y[i];
    return ++calls > 1000 ? 9 : 0;
}
"""


@pytest.mark.slow
def test_the_native_loader_passes_pointers_shapes_and_return_codes(axpy_gpu_workload, tmp_path):
    import subprocess

    from harness.backends.torch_run import run_in_torch_child
    from harness.cases import build_cases
    from harness.verify import verify
    src, so = tmp_path / "k.cpp", tmp_path / "k.so"
    src.write_text(HOST_AXPY)
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    wl = workload.load(axpy_gpu_workload)
    cases = build_cases(wl, "float32", hidden=0)
    cfg = cfg_for(tmp_path)

    def run(library: str, entry: str = "kscout_forward"):
        return run_in_torch_child({"loader": "native", "library": library, "entry_point": entry}, cases, "verify",
                                  cfg, tmp_path / f"run-{entry}", 60, tmp_path / "stage", interpret=True, env={},
                                  sandbox=[], seccomp=False)

    out = run(str(so))
    assert out.exit.kind.value == "ok", out.exit.stderr[-2000:]
    res = verify(out, cases, wl.spec.tolerance["float32"], 60)
    assert res.ok, res.message
    assert len(out.outputs) == len(cases) and all(c.get("canary") is None for c in out.checks)

    # a non-zero return is the candidate's runtime_error, with the code in the message
    bad = tmp_path / "bad.so"
    src.write_text(HOST_AXPY.replace("if (n_in != 2 ||", "if (n_in != 99 ||"))
    subprocess.run(["g++", "-O2", "-shared", "-fPIC", str(src), "-o", str(bad)], check=True)
    failed = run(str(bad))
    assert failed.error_class == "runtime_error" and "kscout_forward returned 7" in failed.error


def test_availability_follows_the_run_config(tmp_path):
    """A configured compiler path, or a Triton run that must not interpret, decides what is usable."""
    ok, why = backends.get("cpu_cpp").available(HarnessConfig(cxx="no-such-c++"))
    assert not ok and "no-such-c++" in why and "harness.cxx" in why
    ok, why = backends.get("cuda").available(HarnessConfig(nvcc=str(tmp_path / "nvcc")))
    assert not ok and why.startswith("CUDA toolchain not found") and "harness.nvcc" in why
    if gpu.detect() is None:
        ok, why = backends.get("triton").available(HarnessConfig(triton_interpret=False))
        assert not ok and "needs a GPU" in why
        assert backends.get("triton").available(HarnessConfig())[0]
