"""CUDA and HIP backends: C++ with the kscout_gpu.h ABI, built into a shared library by nvcc or hipcc.

Build: one `nvcc -shared -Xcompiler -fPIC -arch=sm_XX` (or `hipcc -shared -fPIC --offload-arch=gfxNNN`)
per distinct (source, flags, compiler version, architecture), cached on disk by that hash, with the
compile log kept beside the library and in the packet. The entry point must be exported (checked
with `nm`, without loading the library). The architecture is the device's own (harness/gpu.py), or
`harness.gpu_arch` to compile for a device that is not here.

Run: harness/torch_child.py loads the library with ctypes and calls `kscout_forward` with the
tensors' device pointers and torch's current stream; the checks and the timing are the ones the
Triton backend has on a GPU (poisoned, canary-fenced output; side-stream work caught after a
device-wide synchronisation; inputs rotated, L2 flushed between timed calls).

Where the toolchain or the device is missing, nothing pretends: compile returns an
`unsupported_backend` verdict naming what is missing and where it was looked for ("CUDA toolchain
not found: ..."), and run raises BackendUnavailable, which the Evaluator records the same way.
Times on a GPU are kept in the packet's note but not ranked until the torch baselines and the
roofline are measured on the GPU as well (see GPU_NOTE).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

from harness import gpu
from harness.backends import register
from harness.backends.base import BackendUnavailable, RunOutput
from harness.backends.cpu_cpp import INCLUDE_DIR, _exported
from harness.backends.torch_run import device_limits, profile_in_torch_child, run_in_torch_child, sandbox_features
from harness.cases import Case
from harness.config import HarnessConfig
from harness.evidence import CompileResult, FailureClass
from harness.profile import ProfileSummary, ProfileUnavailable
from harness.sandbox import ExitKind, run_child

# nvcc runs cicc and ptxas, hipcc runs clang with its device libraries: both reserve more virtual
# memory than a candidate's process may, so the compiler's own limit is at least this.
COMPILER_ADDRESS_SPACE_GB = 32.0


@lru_cache(maxsize=8)
def compiler_version(path: str) -> str:
    """The line of `--version` that names the release: 'Cuda compilation tools, release 12.4, V12.4.131',
    'HIP version: 6.1.40091-a8dbc0c19'."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{Path(path).name} (version unknown: {e})"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"release \d|HIP version", ln):
            return ln
    return lines[-1] if lines else f"{Path(path).name} (no version output)"


class NativeGpuBackend:
    name: ClassVar[str]
    language: ClassVar[str]
    vendor: ClassVar[Literal["nvidia", "amd"]]
    toolkit: ClassVar[str]            # "CUDA", "HIP": for messages
    compiler: ClassVar[str]           # "nvcc", "hipcc"
    install_hint: ClassVar[str]

    # --- what is here ---------------------------------------------------------------------

    def _search_path(self, cfg: HarnessConfig) -> list[str]:
        raise NotImplementedError

    def _configured(self, cfg: HarnessConfig) -> str | None:
        raise NotImplementedError

    def find_compiler(self, cfg: HarnessConfig) -> str | None:
        """The configured compiler, else the first of the toolkit's usual places that exists."""
        configured = self._configured(cfg)
        if configured:
            return shutil.which(configured)
        for candidate in self._search_path(cfg):
            found = shutil.which(candidate)
            if found:
                return found
        return None

    def toolchain_missing(self, cfg: HarnessConfig) -> str:
        configured = self._configured(cfg)
        where = f"harness.{self.compiler} = '{configured}' is not an executable" if configured else \
            "looked for " + ", ".join(self._search_path(cfg))
        return f"{self.toolkit} toolchain not found: no {self.compiler} ({where}). {self.install_hint}"

    def _gpu(self) -> gpu.GpuInfo | None:
        """This machine's GPU, if it is this backend's vendor."""
        info = gpu.detect()
        return info if info is not None and info.vendor == self.vendor else None

    def device_missing(self) -> str:
        info = gpu.detect()
        if info is not None:
            return (f"no {self.toolkit} device: torch sees {info.name} ({info.vendor}, {info.runtime}); "
                    f"the {self.name} backend needs an {self.vendor.upper()} GPU")
        try:
            import torch
            build = f"torch {torch.__version__} sees no GPU (torch.cuda.is_available() is False)"
        except ImportError:
            build = "torch is not installed"
        return f"no {self.toolkit} device: {build}"

    def arch(self, cfg: HarnessConfig) -> str | None:
        if cfg.gpu_arch:
            return cfg.gpu_arch
        info = self._gpu()
        return info.arch if info else None

    def available(self, cfg: HarnessConfig | None = None) -> tuple[bool, str]:
        cfg = cfg or HarnessConfig()
        cc = self.find_compiler(cfg)
        if cc is None:
            return False, self.toolchain_missing(cfg)
        info = self._gpu()
        if info is None:
            return False, f"{compiler_version(cc)} at {cc}; but {self.device_missing()}"
        return True, f"{compiler_version(cc)}; {info.name} ({info.arch}, warp {info.warp_size})"

    def device(self, cfg: HarnessConfig) -> Literal["cpu", "cuda"]:
        return "cuda"

    def device_info(self, cfg: HarnessConfig) -> gpu.GpuInfo | None:
        return self._gpu()

    def toolchain(self, cfg: HarnessConfig) -> str:
        cc = self.find_compiler(cfg)
        return f"{self.compiler}: not found" if cc is None else f"{compiler_version(cc)} for {self.arch(cfg) or '?'}"

    # --- build ----------------------------------------------------------------------------

    def flags(self, cfg: HarnessConfig, arch: str) -> list[str]:
        raise NotImplementedError

    def command(self, compiler: str, cfg: HarnessConfig, arch: str) -> list[str]:
        return [compiler, *self.flags(cfg, arch), f"-I{INCLUDE_DIR}", self.source_file, "-o", "kernel.so"]

    def compile(self, source: str, entry_point: str, cfg: HarnessConfig, timeout_s: float) -> CompileResult:
        t0 = time.monotonic()
        cc = self.find_compiler(cfg)
        if cc is None:
            return CompileResult(ok=False, failure=FailureClass.unsupported_backend, log=self.toolchain_missing(cfg))
        arch = self.arch(cfg)
        if arch is None:
            return CompileResult(ok=False, failure=FailureClass.unsupported_backend,
                                 log=f"nothing to compile for: {self.device_missing()}; set harness.gpu_arch "
                                     f"(e.g. '{'sm_90' if self.vendor == 'nvidia' else 'gfx942'}') to compile for "
                                     "a device that is not here")
        version = compiler_version(cc)
        cmd = self.command(cc, cfg, arch)
        key = hashlib.sha256("\0".join([source, *cmd[1:], version]).encode()).hexdigest()
        build = cfg.cache_dir / key[:2] / key[:24]
        so = build / "kernel.so"
        if so.is_file():
            res = CompileResult(ok=True, command=cmd, cached=True, artifact=str(so), source_hash=key,
                                log=(build / "compile.log").read_text() if (build / "compile.log").exists() else "")
        else:
            build.mkdir(parents=True, exist_ok=True)
            (build / self.source_file).write_text(source)
            limits = cfg.limits.model_copy(update={
                "address_space_gb": max(cfg.limits.address_space_gb, COMPILER_ADDRESS_SPACE_GB)})
            # The compilers find their own pieces (cicc, ptxas, clang, device libraries) through
            # PATH and the toolkit's root: pass those, nothing else, through the allowlist.
            env = {k: os.environ[k] for k in ("CUDA_HOME", "CUDA_PATH", "ROCM_PATH", "HIP_PATH") if k in os.environ}
            env["PATH"] = os.pathsep.join([str(Path(cc).parent), os.environ.get("PATH", "/usr/bin:/bin")])
            ex = run_child(cmd, cwd=build, timeout_s=timeout_s, limits=limits, extra_env=env)
            log = (ex.stdout + ex.stderr)[-20_000:]
            (build / "compile.log").write_text(log)
            if ex.kind == ExitKind.timeout:
                return CompileResult(ok=False, failure=FailureClass.compile_timeout, command=cmd, source_hash=key,
                                     log=log + f"\n{self.compiler} took longer than {timeout_s:.0f} s",
                                     seconds=time.monotonic() - t0)
            if ex.kind != ExitKind.ok or not so.is_file():
                return CompileResult(ok=False, failure=FailureClass.compile_error, command=cmd, log=log,
                                     seconds=time.monotonic() - t0, source_hash=key)
            res = CompileResult(ok=True, command=cmd, log=log, artifact=str(so), source_hash=key)
        if not _exported(so, entry_point):
            res.ok, res.failure = False, FailureClass.missing_entry_point
            res.log += (f"\nentry point `{entry_point}` is not exported: define it KS_EXPORT (extern \"C\") with "
                        "the signature in kscout_gpu.h")
        res.seconds = time.monotonic() - t0
        return res

    # --- run ------------------------------------------------------------------------------

    def run(self, artifact: str, entry_point: str, cases: list[Case], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float, stage_dir: Path) -> RunOutput:
        if self._gpu() is None:
            raise BackendUnavailable(f"compiled, but cannot run here: {self.device_missing()}")
        return run_in_torch_child(
            {"loader": "native", "library": artifact, "entry_point": entry_point}, cases, mode, cfg, workdir,
            timeout_s, stage_dir, interpret=False, env={"OMP_NUM_THREADS": str(cfg.threads)}, seccomp=False,
            sandbox=sandbox_features(cfg, True, "the driver maps device memory and spawns threads at init"))

    def profile(self, artifact: str, entry_point: str, case: Case, cfg: HarnessConfig, workdir: Path,
                stage_dir: Path) -> ProfileSummary:
        if self.vendor != "nvidia":
            raise ProfileUnavailable(f"Nsight Compute profiles NVIDIA GPUs; the {self.name} backend runs on "
                                     f"{self.vendor.upper()} ones (ROCm's rocprof is not wired in)")
        if self._gpu() is None:
            raise ProfileUnavailable(f"nothing to profile on: {self.device_missing()}")
        return profile_in_torch_child({"loader": "native", "library": artifact, "entry_point": entry_point}, case,
                                      cfg, workdir, stage_dir, env={"OMP_NUM_THREADS": str(cfg.threads)})


@register
class CudaBackend(NativeGpuBackend):
    name: ClassVar[str] = "cuda"
    language: ClassVar[str] = "cuda"
    vendor: ClassVar[Literal["nvidia", "amd"]] = "nvidia"
    toolkit: ClassVar[str] = "CUDA"
    compiler: ClassVar[str] = "nvcc"
    source_file: ClassVar[str] = "kernel.cu"
    install_hint: ClassVar[str] = ("Install the CUDA toolkit (its nvcc must support your GPU) and set CUDA_HOME, "
                                   "or set harness.nvcc to its path.")

    def _configured(self, cfg: HarnessConfig) -> str | None:
        return cfg.nvcc

    def _search_path(self, cfg: HarnessConfig) -> list[str]:
        roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
        try:  # torch knows where the toolkit it was built against usually lives
            from torch.utils.cpp_extension import CUDA_HOME as torch_cuda_home
            roots.append(torch_cuda_home)
        except Exception:  # noqa: BLE001  (a CPU-only torch may fail to import cpp_extension bits)
            pass
        roots.append("/usr/local/cuda")
        seen, out = set(), []
        for p in [*(str(Path(r) / "bin" / "nvcc") for r in roots if r), "nvcc"]:
            if p not in seen:
                seen.add(p)
                out.append(p)
        return out

    def flags(self, cfg: HarnessConfig, arch: str) -> list[str]:
        return [*cfg.nvccflags, "-shared", "-Xcompiler", "-fPIC", f"-arch={arch}"]


@register
class HipBackend(NativeGpuBackend):
    name: ClassVar[str] = "hip"
    language: ClassVar[str] = "hip"
    vendor: ClassVar[Literal["nvidia", "amd"]] = "amd"
    toolkit: ClassVar[str] = "HIP"
    compiler: ClassVar[str] = "hipcc"
    source_file: ClassVar[str] = "kernel.hip"
    install_hint: ClassVar[str] = ("Install ROCm (hipcc, and a ROCm build of torch) and set ROCM_PATH, or set "
                                   "harness.hipcc to its path.")

    def _configured(self, cfg: HarnessConfig) -> str | None:
        return cfg.hipcc

    def _search_path(self, cfg: HarnessConfig) -> list[str]:
        roots = [os.environ.get("ROCM_PATH"), os.environ.get("HIP_PATH"), "/opt/rocm"]
        return [*(str(Path(r) / "bin" / "hipcc") for r in roots if r), "hipcc"]

    def flags(self, cfg: HarnessConfig, arch: str) -> list[str]:
        return [*cfg.hipccflags, "-shared", "-fPIC", f"--offload-arch={arch}"]
