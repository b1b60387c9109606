"""Compile a Triton candidate for a GPU this machine does not have, and say whether it would launch.

Triton's CPU interpreter checks a kernel's arithmetic, not its fit: it neither allocates shared
memory nor allocates registers, so a tile that needs more shared memory than the part has (Triton
raises OutOfResources at the first launch) verifies here and fails on the GPU. Triton's compiler
itself runs without a GPU: with a stand-in driver that names the target, `JITFunction.run(...,
warmup=True)` lowers each kernel the candidate launches through TTIR, TTGIR, LLVM and PTX to a cubin
(ptxas is bundled with the triton wheel), or to AMDGCN and an hsaco, and never launches it. This
module does that in a child process, on the workload's bench shape (block sizes derived from the
shape, e.g. whole rows in registers, only show there), and reads each kernel's resources:

- NVIDIA: shared memory from Triton's metadata; registers and local memory (spills and local
  arrays) per thread from `cuobjdump --dump-resource-usage` on the cubin.
- AMD: shared memory (LDS) from Triton's metadata; VGPRs, SGPRs and their spill counts from the
  AMDGCN assembly's kernel metadata.

Against the target's limits (TARGETS: per-block shared memory, the register file a block may use)
each kernel gets `problems` (it will not launch there) and `notes` (it launches, slowly: spills).

    python -m harness gpu-compile kernel.py --workload softmax --target sm_90 --target gfx942

What this cannot tell: speed, or faults that only a launch shows (out-of-bounds accesses, races);
those need the GPU itself (`python -m harness bench` there).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from harness.config import HarnessConfig


class TargetLimits(BaseModel):
    """What one GPU architecture lets a single block (workgroup) use."""
    name: str                          # sm_90, gfx942
    vendor: Literal["nvidia", "amd"]
    arch: int | str                    # Triton's GPUTarget arch: 90, "gfx942"
    warp_size: int
    max_shared_bytes: int              # per block, with the opt-in carve-out Triton requests
    registers_per_block: int           # 32-bit registers a block may hold (NVIDIA: the SM's file)
    max_registers_per_thread: int
    parts: str                         # which products, for the report


# Per-block shared memory is the opt-in maximum from the vendors' tuning guides (CUDA C Programming
# Guide, "Compute capabilities" table; AMD CDNA ISA guides: 64 KiB LDS per workgroup on CDNA2/3,
# 160 KiB on CDNA4).
TARGETS: dict[str, TargetLimits] = {t.name: t for t in [
    TargetLimits(name="sm_80", vendor="nvidia", arch=80, warp_size=32, max_shared_bytes=166912,
                 registers_per_block=65536, max_registers_per_thread=255, parts="A100, A30"),
    TargetLimits(name="sm_86", vendor="nvidia", arch=86, warp_size=32, max_shared_bytes=101376,
                 registers_per_block=65536, max_registers_per_thread=255, parts="A10, A40, RTX 30xx"),
    TargetLimits(name="sm_89", vendor="nvidia", arch=89, warp_size=32, max_shared_bytes=101376,
                 registers_per_block=65536, max_registers_per_thread=255, parts="L4, L40S, RTX 40xx"),
    TargetLimits(name="sm_90", vendor="nvidia", arch=90, warp_size=32, max_shared_bytes=232448,
                 registers_per_block=65536, max_registers_per_thread=255, parts="H100, H200"),
    TargetLimits(name="sm_100", vendor="nvidia", arch=100, warp_size=32, max_shared_bytes=232448,
                 registers_per_block=65536, max_registers_per_thread=255, parts="B200, GB200"),
    TargetLimits(name="gfx90a", vendor="amd", arch="gfx90a", warp_size=64, max_shared_bytes=65536,
                 registers_per_block=0, max_registers_per_thread=512, parts="MI210, MI250X"),
    TargetLimits(name="gfx942", vendor="amd", arch="gfx942", warp_size=64, max_shared_bytes=65536,
                 registers_per_block=0, max_registers_per_thread=512, parts="MI300X, MI325X"),
    TargetLimits(name="gfx950", vendor="amd", arch="gfx950", warp_size=64, max_shared_bytes=163840,
                 registers_per_block=0, max_registers_per_thread=512, parts="MI350X, MI355X"),
]}


class KernelResources(BaseModel):
    kernel: str
    num_warps: int
    num_stages: int
    threads: int
    shared_bytes: int
    registers: int | None = None       # per thread (NVIDIA: REG; AMD: VGPRs incl. AGPRs)
    spilled: int = 0                   # NVIDIA: local-memory bytes per thread; AMD: spilled VGPRs + SGPRs
    problems: list[str] = Field(default_factory=list)   # it will not launch on the target
    notes: list[str] = Field(default_factory=list)      # it launches, but e.g. spills


class CompileCheck(BaseModel):
    target: str
    triton: str | None = None
    kernels: list[KernelResources] = Field(default_factory=list)
    error: str | None = None           # the candidate did not compile (or run its launcher) for the target

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.kernels) and not any(k.problems for k in self.kernels)

    def summary(self) -> str:
        if self.error:
            return f"{self.target}: does not compile: {self.error.strip().splitlines()[-1][:300]}"
        if not self.kernels:
            return f"{self.target}: the launcher launched no Triton kernel"
        parts = []
        for k in self.kernels:
            regs = f", {k.registers} regs" if k.registers is not None else ""
            s = f"{k.kernel}: {k.shared_bytes / 1024:.0f} KiB shared{regs}, {k.num_warps} warps x {k.num_stages} stages"
            parts.append(s + "".join(f"; {p}" for p in k.problems + k.notes))
        return f"{self.target}: " + " | ".join(parts)


def check_limits(k: KernelResources, t: TargetLimits) -> KernelResources:
    if k.shared_bytes > t.max_shared_bytes:
        k.problems.append(f"needs {k.shared_bytes} B of shared memory, {t.name} ({t.parts}) gives a block at most "
                          f"{t.max_shared_bytes} B: Triton raises OutOfResources at launch (smaller tiles, BLOCK_K "
                          f"or num_stages)")
    if k.registers is not None:
        if k.registers > t.max_registers_per_thread:
            k.problems.append(f"{k.registers} registers per thread, above {t.name}'s {t.max_registers_per_thread}")
        if t.registers_per_block and k.registers * k.threads > t.registers_per_block:
            k.problems.append(f"{k.registers} registers x {k.threads} threads = {k.registers * k.threads}, above the "
                              f"{t.registers_per_block} a block may use on {t.name}: the launch fails (fewer warps)")
    if k.spilled:
        unit = "bytes of local memory per thread" if t.vendor == "nvidia" else "registers spilled to scratch"
        k.notes.append(f"spills: {k.spilled} {unit}")
    return k


def _nvidia_usage(cubin: bytes) -> dict[str, dict[str, int]]:
    """cuobjdump --dump-resource-usage, per function: REG, SHARED, LOCAL, STACK."""
    tool = _cuobjdump()
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True, timeout=60).stdout
    finally:
        os.unlink(f.name)
    out: dict[str, dict[str, int]] = {}
    for fn, fields in re.findall(r"Function ([^\s:]+):\s*\n\s*(.*)", text):
        out[fn] = {k: int(v) for k, v in re.findall(r"(\w+):(\d+)", fields)}
    return out


def _cuobjdump() -> str:
    try:
        from triton import knobs               # triton >= 3.4 names its bundled tools here
        return knobs.nvidia.cuobjdump.path
    except (ImportError, AttributeError):
        import triton
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        found = str(bundled) if bundled.is_file() else shutil.which("cuobjdump")
        if not found:
            raise RuntimeError("cuobjdump not found (bundled with the triton wheel, or in the CUDA toolkit)")
        return found


def _amd_usage(amdgcn: str) -> dict[str, int]:
    def field(name: str) -> int:
        m = re.search(rf"\.{name}:\s+(\d+)", amdgcn)
        return int(m.group(1)) if m else 0
    return {"vgpr": field("vgpr_count") + field("agpr_count"), "spilled": field("vgpr_spill_count") +
            field("sgpr_spill_count")}


# ---- the child: runs the candidate's launcher with kernels compiled for the target, never launched ----

def _child(req: dict) -> dict:
    os.environ["TRITON_INTERPRET"] = "0"       # before triton is imported: @triton.jit must be the real JIT
    import importlib.util

    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime.errors import OutOfResources
    from triton.runtime.jit import JITFunction

    from harness import workload
    from harness.cases import build_case

    t = TARGETS[req["target"]]
    target = GPUTarget("cuda" if t.vendor == "nvidia" else "hip", t.arch, t.warp_size)

    class CompileOnlyDriver:
        """Names the target; there is no device, so nothing it returns may be launched on."""
        def get_current_target(self):
            return target

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

        def get_active_torch_device(self):
            return torch.device("cpu")

    driver.set_active(CompileOnlyDriver())
    compiled: list = []                  # (kernel name, compiled kernel, whether it fit the target)
    real_run = JITFunction.run

    def compile_only(self, *args, grid, warmup, **kwargs):
        kernel = real_run(self, *args, grid=grid, warmup=True, **kwargs)
        fits = kernel is None or kernel.metadata.shared <= t.max_shared_bytes
        compiled.append((self.fn.__name__, kernel, fits))
        if not fits:
            # What the first launch does on the device (CompiledKernel._init_handles), before
            # anything runs: a launcher may catch it and step down to a smaller tile, as
            # Triton's autotuner does; one that does not fails there, and is reported below.
            raise OutOfResources(kernel.metadata.shared, t.max_shared_bytes, "shared memory")
        return kernel
    JITFunction.run = compile_only

    wl = workload.load(req["workload"])
    dtype = req.get("dtype") or wl.spec.dtypes[0]
    shape = wl.spec.bench_shape
    case = build_case(wl, shape, wl.spec.inputs.seeds[0], (shape.distributions or wl.spec.inputs.distributions)[0],
                      dtype)
    spec = importlib.util.spec_from_file_location("kscout_candidate", req["module"])
    mod = importlib.util.module_from_spec(spec)
    res = CompileCheck(target=t.name, triton=triton.__version__)
    recovered = True
    try:
        spec.loader.exec_module(mod)
        getattr(mod, req["entry_point"])(*case.inputs, out=torch.empty_like(case.reference))
    except OutOfResources:                      # a kernel too big for the target, not caught: its report says so
        recovered = False
    except Exception as e:                      # a compile error, or the launcher failing around it
        import traceback
        res.error = "".join(traceback.format_exception_only(type(e), e))[-4000:]
        return res.model_dump()
    seen = set()
    # What the launcher stepped down from, per kernel: a note on the kernel that then launched.
    stepped: dict[str, list[str]] = {}
    for name, k, fits in compiled:
        if recovered and not fits:
            stepped.setdefault(name, []).append(f"{k.metadata.shared} B at {k.metadata.num_stages} stages")
    for name, k, fits in compiled:
        if k is None or id(k) in seen or (recovered and not fits):
            continue
        seen.add(id(k))
        md = k.metadata
        kr = KernelResources(kernel=name, num_warps=md.num_warps, num_stages=md.num_stages,
                             threads=md.num_warps * t.warp_size, shared_bytes=md.shared)
        if t.vendor == "nvidia":
            use = _nvidia_usage(k.asm["cubin"]).get(md.name, {})
            kr.registers, kr.spilled = use.get("REG"), use.get("LOCAL", 0)
        else:
            use = _amd_usage(k.asm["amdgcn"])
            kr.registers, kr.spilled = use["vgpr"], use["spilled"]
        if name in stepped:
            kr.notes.append(f"stepped down to fit {t.name}'s {t.max_shared_bytes} B of shared memory, from "
                            + ", ".join(stepped.pop(name)))
        res.kernels.append(check_limits(kr, t))
    return res.model_dump()


def check(module: Path, entry_point: str, workload_path: Path | str, target: str, *, dtype: str | None = None,
          cfg: "HarnessConfig | None" = None, timeout_s: float = 300.0) -> CompileCheck:
    """Compile the candidate module for `target` in a child process and report each kernel's resources.

    The child runs the candidate's code (its launcher computes grids and block sizes), so it is
    confined like a Triton child on a GPU: own process group, CPU-time limit, allow-listed
    environment, empty working directory; no seccomp filter, because Triton runs ptxas and writes
    its cache. Its report is advisory for the same reason: on a GPU the launch itself decides."""
    from harness.config import HarnessConfig
    if target not in TARGETS:
        raise ValueError(f"unknown GPU target '{target}': use one of {', '.join(TARGETS)}")
    cfg = cfg or HarnessConfig()
    # The same kernel, target and workload give the same report: keep it (a search re-proposes code).
    from harness import workload
    wl_dir = Path(workload_path)
    key = hashlib.sha256("\0".join([Path(module).read_text(), entry_point, target, str(dtype), Path(__file__).read_text(),
                                    workload.load(wl_dir).fingerprint()]).encode())
    cached = cfg.cache_dir / "gpu-compile" / f"{key.hexdigest()[:24]}.json"
    if cached.is_file():
        return CompileCheck.model_validate_json(cached.read_text())
    rep, settled = _run(module, entry_point, wl_dir, target, dtype, cfg, timeout_s)
    if settled:                                # the child finished; a timeout or crash may not recur
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(rep.model_dump_json())
    return rep


def _run(module: Path, entry_point: str, workload_path: Path, target: str, dtype: str | None, cfg: "HarnessConfig",
         timeout_s: float) -> tuple[CompileCheck, bool]:
    from harness import forkserver
    from harness.sandbox import ExitKind
    with tempfile.TemporaryDirectory(prefix="kscout-gpu-compile-") as d:
        req = Path(d) / "request.json"
        req.write_text(json.dumps({"module": str(Path(module).resolve()), "entry_point": entry_point,
                                   "workload": str(workload_path), "target": target, "dtype": dtype}))
        cwd = Path(d) / "cwd"
        cwd.mkdir()
        env = {"TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1", "OMP_NUM_THREADS": str(cfg.threads),
               # this checkout first (for `-m harness.gpu_compile`), then whatever carried our dependencies
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                           os.environ.get("PYTHONPATH", "")])),
               "PYTHONDONTWRITEBYTECODE": "1",
               "TRITON_CACHE_DIR": str(cfg.cache_dir / f"triton-{target}")}
        limits = cfg.limits.model_copy(update={"seccomp": False})
        ex = forkserver.run("gpu_compile", req, [sys.executable, "-m", "harness.gpu_compile", str(req)],
                            use_server=forkserver.enabled(cfg.fork_server, False), cwd=cwd, timeout_s=timeout_s,
                            limits=limits, extra_env=env, confine=True, threads=cfg.threads)
        out = Path(d) / "result.json"
        if ex.kind == ExitKind.timeout:
            return CompileCheck(target=target, error=f"compiling for {target} took longer than {timeout_s:.0f} s"), False
        if ex.kind != ExitKind.ok or not out.is_file():
            why = ex.signal_name or f"status {ex.returncode}"
            return CompileCheck(target=target, error=f"the compile child ended with {why}:\n"
                                f"{(ex.stdout + ex.stderr)[-4000:]}"), False
        return CompileCheck.model_validate_json(out.read_text()), True


def child_main(request_path: str) -> int:
    """The child's main: read the request, compile, write result.json next to it."""
    request = json.loads(Path(request_path).read_text())
    (Path(request_path).parent / "result.json").write_text(json.dumps(_child(request)))
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
