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
version, then imported in a sandboxed child (harness/triton_child.py, `check` mode): a syntax or
import error is compile_error with the traceback as the log; no callable entry point is
missing_entry_point. Triton itself compiles each kernel at its first launch; a CompilationError
raised there is reported as compile_error too.

Run: in a child process, like cpu_cpp. Where kernels run is typed configuration
(HarnessConfig.triton_interpret): by default Triton's CPU interpreter exactly when torch sees no
GPU. Under the interpreter results are real and times are not: bench mode calls each rotation set
once (so the outputs are re-checked after repeated calls) and reports `timing_meaningful=False`;
the Evaluator then records the attempt as accepted-for-correctness with no BenchResult, so it has
no speedup and is never ranked. With a GPU (CUDA or ROCm torch), tensors live on cuda:0 and bench
mode times calls with a stream synchronisation, inputs rotated and L2 flushed in between; those
times are kept in the packet's note but not ranked yet either, because the torch baselines and the
roofline peaks are still CPU measurements (a GPU kernel against CPU eager is no speedup). The GPU
path has not been run on a GPU yet: its tests carry the `gpu` marker.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from harness.backends import register
from harness.backends.base import BackendUnavailable, RunOutput
from harness.backends.cpu_cpp import _describe, _events, _outputs, stage_inputs
from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import CompileResult, FailureClass
from harness.sandbox import ExitKind, network_namespace_available, run_child

CHILD = Path(__file__).resolve().parent.parent / "triton_child.py"
IMPORT_FAILED, NO_ENTRY, SECCOMP_UNAVAILABLE = 3, 4, 122
INTERPRETER_NOTE = ("Triton CPU interpreter (TRITON_INTERPRET=1): verified for correctness only; its times "
                    "measure numpy emulation, not a kernel, so none are recorded and the attempt is never ranked")
GPU_NOTE = ("timed on {device}: median {median_ms:.4g} ms over {n} calls, but not ranked: the harness's torch "
            "baselines (eager, torch.compile) and roofline peaks are still measured on the CPU, so a speedup would "
            "compare a GPU kernel with CPU torch (GPU baselines are the next step of issue 6)")


@lru_cache(maxsize=1)
def triton_version() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def gpu_name() -> str | None:
    """The device Triton would compile for (cuda:0 on a CUDA or ROCm torch), or None."""
    import torch
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    vendor = "ROCm" if getattr(torch.version, "hip", None) else "CUDA"
    return f"{name} ({vendor})"


def interpreted(cfg: HarnessConfig) -> bool:
    """Whether kernels run in the interpreter under this config; raises when a GPU is required but absent."""
    if cfg.triton_interpret is True:
        return True
    if gpu_name() is None:
        if cfg.triton_interpret is False:
            raise BackendUnavailable("harness.triton_interpret = false needs a GPU, and torch sees none "
                                     "(torch.cuda.is_available() is False); unset it to verify in the interpreter")
        return True
    return False


@register
class TritonBackend:
    name: ClassVar[str] = "triton"
    language: ClassVar[str] = "python"

    def available(self) -> tuple[bool, str]:
        v = triton_version()
        if v is None:
            return False, "triton is not installed (pip install triton; the interpreter needs numpy too)"
        where = gpu_name() or "no GPU: kernels run in the CPU interpreter, correctness only"
        return True, f"triton {v}; {where}"

    def toolchain(self, cfg: HarnessConfig) -> str:
        v = triton_version()
        if v is None:
            return "triton: not installed"
        try:
            return f"triton {v} " + ("(interpreter, TRITON_INTERPRET=1, CPU)" if interpreted(cfg) else f"on {gpu_name()}")
        except BackendUnavailable as e:
            return f"triton {v} (unusable here: {e})"

    def _limits(self, cfg: HarnessConfig, interpret: bool):
        if interpret:
            return cfg.limits
        # The CUDA driver reserves tens of GB of virtual memory at init, and a user namespace can
        # hide the device files: on a GPU the address-space limit and network namespace are off.
        return cfg.limits.model_copy(update={"address_space_gb": 1 << 20, "network_namespace": False})

    def _env(self, cfg: HarnessConfig, interpret: bool) -> dict[str, str]:
        env = {"OMP_NUM_THREADS": str(cfg.threads), "TRITON_INTERPRET": "1" if interpret else "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        if not interpret:
            env["TRITON_CACHE_DIR"] = str(cfg.cache_dir / "triton-jit")
        return env

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
        cmd = [sys.executable, "-I", str(CHILD), "check.json"]
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
        ex = run_child([sys.executable, "-I", str(CHILD), str(build / "check.json")], cwd=cwd, timeout_s=timeout_s,
                       limits=self._limits(cfg, interpret), extra_env=self._env(cfg, interpret), confine=True,
                       threads=cfg.threads)
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
        workdir.mkdir(parents=True, exist_ok=True)
        cwd = workdir / "cwd"
        cwd.mkdir(exist_ok=True)
        manifest = {"module": artifact, "entry_point": entry_point, "mode": mode, "interpret": interpret,
                    "timing": cfg.timing.model_dump(),
                    "flush_bytes": l2_flush_bytes() if mode == "bench" and not interpret else 0,
                    "sandbox": {"seccomp": cfg.limits.seccomp and interpret}, "cases": [], "output_files": []}
        for i, case in enumerate(cases):
            out = f"case{i}_out.bin"
            manifest["cases"].append({"inputs": stage_inputs(case, stage_dir), "rerun_of": case.rerun_of,
                                      "output": _describe(case.reference, out)})
            manifest["output_files"].append(out)
        (workdir / "manifest.json").write_text(json.dumps(manifest))
        if interpret:
            timeout_s *= cfg.triton_interpret_time_factor
        ex = run_child([sys.executable, "-I", str(CHILD), str(workdir / "manifest.json")], cwd=cwd,
                       timeout_s=timeout_s, limits=self._limits(cfg, interpret), extra_env=self._env(cfg, interpret),
                       confine=True, threads=cfg.threads)
        rcs, crashed = _events(workdir)
        res_file = workdir / "result.json"
        result = json.loads(res_file.read_text()) if ex.kind == ExitKind.ok and res_file.is_file() and \
            res_file.stat().st_size else {}
        error = result.get("error", "")
        if error and not any(rcs):
            rcs = rcs + [1]                     # the failing call was the timed loop (no per-case label)
        elif mode == "bench" and result and not error:
            rcs = [0] * len(cases)
        outputs = _outputs(workdir, cases, len(result.get("checks", [])) if result else 0)
        times = result.get("times")
        note = INTERPRETER_NOTE if interpret else ""
        if not interpret and times:
            import statistics
            note = GPU_NOTE.format(device=gpu_name(), median_ms=statistics.median(times) * 1e3, n=len(times))
        return RunOutput(exit=ex, return_codes=rcs, outputs=outputs, crashed_case=crashed,
                         times=times, checks=result.get("checks", []), fresh=result.get("fresh", []),
                         sandbox=sandbox_features(cfg, interpret), flush_bytes=manifest["flush_bytes"],
                         error=error, error_class=result.get("error_class"),
                         timing_meaningful=False, timing_note=note)


def sandbox_features(cfg: HarnessConfig, interpret: bool) -> list[str]:
    feats = ["process-group-kill", "env-allowlist", "empty-cwd", "poisoned-output", "canaries(4KiB each side)"]
    if interpret:
        feats.insert(0, f"rlimits(as={cfg.limits.address_space_gb:g}G,nofile={cfg.limits.open_files},cpu)")
        if cfg.limits.seccomp:
            feats.append("seccomp(no-net,no-exec,no-fork,no-write-open,no-exec-memory)")
        if cfg.limits.network_namespace and network_namespace_available():
            feats.append("network-namespace")
    else:
        feats.insert(0, f"rlimits(nofile={cfg.limits.open_files},cpu)")
        feats.append("no seccomp on GPU (Triton's JIT runs ptxas and writes its cache at first launch)")
    return feats


@lru_cache(maxsize=1)
def l2_flush_bytes() -> int:
    """Twice the GPU's L2 cache: written between timed calls so each starts cold."""
    import torch
    props = torch.cuda.get_device_properties(0)
    return 2 * int(getattr(props, "L2_cache_size", 0) or (64 << 20))
