"""Triton backend: a Python module with @triton.jit kernels and a launch function.

The candidate ABI (the Python twin of include/kscout.h):

    def kscout_forward(*inputs, out) -> None

`inputs` are the reference Model's forward arguments, then its state_dict tensors (parameters,
buffers) in state_dict order: contiguous, in the dtype under test, on one device. `out` is the
last positional argument: a preallocated contiguous tensor with the reference output's shape and
dtype, poisoned with 0xFF bytes and fenced by canaries. The function launches the kernels that
write `out` and returns None (returning `out` itself is tolerated; any other return value is a
runtime_error). A preallocated output keeps every check the C++ backend has: unwritten elements
stay poison (output_not_written), near overruns hit a canary (out_of_bounds_write), and a result
left over from an earlier call cannot come back from torch's caching allocator.

Build ("compile"): the source is written to the build cache keyed by its hash and the triton
version, then imported in a sandboxed child (harness/torch_child.py, `check` mode, forked from
harness/forkserver.py under the interpreter, see harness.fork_server): a syntax or
import error is compile_error with the traceback as the log; no callable entry point is
missing_entry_point. Triton itself compiles each kernel at its first launch; a CompilationError
raised there is reported as compile_error too.

Run: in a child process, like cpu_cpp. Where kernels run is typed configuration
(HarnessConfig.triton_interpret): by default Triton's CPU interpreter exactly when torch sees no
GPU. Under the interpreter results are real and times are not: bench mode calls each rotation set
once (so the outputs are re-checked after repeated calls) and reports `timing_meaningful=False`;
the Evaluator then records the attempt as accepted-for-correctness with no BenchResult, so it has
no speedup and is never ranked. With a GPU (CUDA or ROCm torch), tensors live on cuda:0 and bench
mode times calls with CUDA events, inputs rotated and L2 flushed in between
(harness/backends/torch_run.py, shared with the CUDA and HIP backends); they are ranked against
torch baselines and a roofline measured on the same GPU (an Evaluator with device="cuda"), and only
noted, never ranked, against CPU ones. The GPU path has not been run on a GPU yet: its tests carry
the `gpu` marker.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from harness import forkserver, gpu
from harness.backends import register
from harness.backends.base import BackendUnavailable, RunOutput
from harness.backends.torch_run import (CHILD, device_limits, profile_in_torch_child, run_in_torch_child,
                                       sandbox_features)
from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import CompileResult, FailureClass
from harness.profile import ProfileSummary, ProfileUnavailable
from harness.sandbox import ExitKind, python_argv

IMPORT_FAILED, NO_ENTRY, SECCOMP_UNAVAILABLE, HARNESS_MISMATCH = 3, 4, 122, 123
INTERPRETER_NOTE = ("Triton CPU interpreter (TRITON_INTERPRET=1): verified for correctness only; its times "
                    "measure numpy emulation, not a kernel, so none are recorded and the attempt is never ranked")


@lru_cache(maxsize=1)
def triton_version() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def gpu_name() -> str | None:
    """The device Triton would compile for (cuda:0 on a CUDA or ROCm torch), or None."""
    info = gpu.detect()
    return None if info is None else f"{info.name} ({'ROCm' if info.vendor == 'amd' else 'CUDA'})"


# A loop over a runtime bound, the smallest thing every tiled kernel does (matmul's K loop).
_LOOP_PROBE = """
import triton
import triton.language as tl

@triton.jit
def _loop(n, BLOCK: tl.constexpr):
    for _ in range(0, tl.cdiv(n, BLOCK)):
        pass

_loop[(1,)](10, BLOCK=4)
"""


@lru_cache(maxsize=1)
def interpreter_problem() -> str | None:
    """Why Triton's CPU interpreter cannot run kernels here, or None; checked once per process by
    running a loop over a runtime bound in it (a fresh interpreter: TRITON_INTERPRET is read when
    kernels are defined). Triton 3.6's interpreter turns such a bound into a 1-element array and
    int() of one is an error from NumPy 2.4 on, so every kernel with a loop would be rejected as
    if the fault were its own."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    try:
        proc = subprocess.run([sys.executable, "-c", _LOOP_PROBE], env=env, capture_output=True, text=True,
                              timeout=180)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"Triton's CPU interpreter could not be checked here: {e}"
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
    np = importlib.metadata.version("numpy") if importlib.util.find_spec("numpy") else "(not installed)"
    return (f"Triton {triton_version()}'s CPU interpreter cannot run a loop over a runtime bound here "
            f"(numpy {np}): {last}. Triton 3.6's interpreter calls int() on 1-element arrays, an error from "
            "NumPy 2.4 on: install numpy<2.4, or a newer Triton (3.9 works with NumPy 2.4)")


def interpreted(cfg: HarnessConfig) -> bool:
    """Whether kernels run in the interpreter under this config; raises when a GPU is required but
    absent, or when the interpreter they would run in is broken here (interpreter_problem)."""
    if cfg.triton_interpret is not True:
        if gpu_name() is not None:
            return False
        if cfg.triton_interpret is False:
            raise BackendUnavailable("harness.triton_interpret = false needs a GPU, and torch sees none "
                                     "(torch.cuda.is_available() is False); unset it to verify in the interpreter")
    problem = interpreter_problem()
    if problem:
        raise BackendUnavailable(problem)
    return True


@register
class TritonBackend:
    name: ClassVar[str] = "triton"
    language: ClassVar[str] = "python"
    source_file: ClassVar[str] = "kernel.py"

    def available(self, cfg: HarnessConfig | None = None) -> tuple[bool, str]:
        v = triton_version()
        if v is None:
            return False, "triton is not installed (pip install triton; the interpreter needs numpy too)"
        try:
            interpret = interpreted(cfg or HarnessConfig())
        except BackendUnavailable as e:   # triton_interpret = false and no GPU here, or a broken interpreter
            return False, f"triton {v}; {e}"
        where = "no GPU: kernels run in the CPU interpreter, correctness only" if interpret else gpu_name()
        return True, f"triton {v}; {where}"

    def toolchain(self, cfg: HarnessConfig) -> str:
        v = triton_version()
        if v is None:
            return "triton: not installed"
        try:
            return f"triton {v} " + ("(interpreter, TRITON_INTERPRET=1, CPU)" if interpreted(cfg) else f"on {gpu_name()}")
        except BackendUnavailable as e:
            return f"triton {v} (unusable here: {e})"

    def _env(self, cfg: HarnessConfig, interpret: bool) -> dict[str, str]:
        # FMA contraction pinned on: Triton 3.9 warns that its default flips to off in 3.10, and
        # a kernel's rounding (so its precision verdict) must not change with the Triton version.
        env = {"OMP_NUM_THREADS": str(cfg.threads), "TRITON_INTERPRET": "1" if interpret else "0",
               "PYTHONDONTWRITEBYTECODE": "1", "TRITON_DEFAULT_FP_FUSION": "1"}
        if not interpret:
            env["TRITON_CACHE_DIR"] = str(cfg.cache_dir / "triton-jit")
        return env

    def device(self, cfg: HarnessConfig) -> Literal["cpu", "cuda"]:
        # harness.triton_interpret = false says "on a GPU" even where this process sees none
        try:
            return "cpu" if interpreted(cfg) else "cuda"
        except BackendUnavailable:
            return "cuda"

    def device_info(self, cfg: HarnessConfig) -> gpu.GpuInfo | None:
        try:
            return None if interpreted(cfg) else gpu.detect()
        except BackendUnavailable:
            return None

    def compile(self, source: str, entry_point: str, cfg: HarnessConfig, timeout_s: float) -> CompileResult:
        t0 = time.monotonic()
        version = triton_version()
        if version is None:
            return CompileResult(ok=False, failure=FailureClass.unsupported_backend, seconds=0.0,
                                 log="triton is not installed here: pip install triton (and numpy for the interpreter)")
        try:
            interpret = interpreted(cfg)
        except BackendUnavailable as e:
            return CompileResult(ok=False, failure=FailureClass.unsupported_backend, log=str(e))
        key = hashlib.sha256("\0".join([source, "triton", version, entry_point]).encode()).hexdigest()
        build = cfg.cache_dir / key[:2] / key[:24]
        module = build / "kernel.py"
        cmd = python_argv(CHILD, "check.json")
        if (build / "checked").is_file():
            return CompileResult(ok=True, command=cmd, cached=True, artifact=str(module), source_hash=key,
                                 log=(build / "compile.log").read_text() if (build / "compile.log").exists() else "",
                                 seconds=time.monotonic() - t0)
        build.mkdir(parents=True, exist_ok=True)
        module.write_text(source)
        (build / "check.json").write_text(json.dumps({
            "mode": "check", "module": str(module), "entry_point": entry_point, "interpret": interpret,
            "sandbox": {"seccomp": cfg.limits.seccomp and interpret}}))
        cwd = build / "cwd"
        cwd.mkdir(exist_ok=True)
        ex = forkserver.run("torch_child", build / "check.json", cmd[:-1] + [str(build / "check.json")],
                            use_server=forkserver.enabled(cfg.fork_server, not interpret), cwd=cwd,
                            timeout_s=timeout_s, limits=device_limits(cfg, not interpret),
                            extra_env=self._env(cfg, interpret), confine=True, threads=cfg.threads)
        log = (ex.stdout + ex.stderr)[-20_000:]
        (build / "compile.log").write_text(log)
        res = CompileResult(ok=False, command=cmd, log=log, source_hash=key, seconds=time.monotonic() - t0)
        if ex.kind == ExitKind.timeout:
            res.failure = FailureClass.compile_timeout
            res.log += f"\nimporting the module took longer than {timeout_s:.0f} s (its top-level code must only define)"
        elif ex.kind == ExitKind.signal and ex.signal_name == "SIGSYS":
            res.failure = FailureClass.sandbox_violation
            res.log += ("\nthe module's top-level code made a system call the sandbox forbids (network, processes, "
                        "writing files)")
        elif ex.kind == ExitKind.nonzero and ex.returncode == NO_ENTRY:
            res.failure = FailureClass.missing_entry_point
        elif ex.kind == ExitKind.nonzero and ex.returncode == SECCOMP_UNAVAILABLE:
            res.failure = FailureClass.harness_error
            res.log += "\nset harness.limits.seccomp = false to run candidates without a system-call filter"
        elif ex.kind == ExitKind.nonzero and ex.returncode == HARNESS_MISMATCH:
            res.failure = FailureClass.harness_error
        elif ex.kind != ExitKind.ok:
            res.failure = FailureClass.compile_error
            if ex.returncode != IMPORT_FAILED:
                res.log += f"\nimporting the module ended with {ex.signal_name or f'status {ex.returncode}'}"
        else:
            (build / "checked").write_text("")
            res.ok, res.artifact = True, str(module)
        return res

    def run(self, artifact: str, entry_point: str, cases: list[Case], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float, stage_dir: Path) -> RunOutput:
        interpret = interpreted(cfg)
        seccomp = cfg.limits.seccomp and interpret
        return run_in_torch_child(
            {"loader": "python", "module": artifact, "entry_point": entry_point}, cases, mode, cfg, workdir,
            timeout_s * (cfg.triton_interpret_time_factor if interpret else 1), stage_dir, interpret=interpret,
            env=self._env(cfg, interpret), seccomp=seccomp, interpreter_note=INTERPRETER_NOTE,
            sandbox=sandbox_features(cfg, not interpret, "Triton's JIT runs ptxas and writes its cache at first launch"))

    def profile(self, artifact: str, entry_point: str, case: Case, cfg: HarnessConfig, workdir: Path,
                stage_dir: Path) -> ProfileSummary:
        if interpreted(cfg):
            raise ProfileUnavailable("Triton's CPU interpreter runs numpy, not GPU kernels: there is nothing for "
                                     "Nsight Compute to profile")
        info = gpu.detect()
        if info is None or info.vendor != "nvidia":
            raise ProfileUnavailable(f"Nsight Compute profiles NVIDIA GPUs; this one is {info.name if info else 'absent'}"
                                     " (ROCm's rocprof is not wired in)")
        return profile_in_torch_child({"loader": "python", "module": artifact, "entry_point": entry_point}, case,
                                      cfg, workdir, stage_dir, env=self._env(cfg, False))
