"""CPU backend: C/C++ source with the kscout.h ABI, built with the system compiler, called via ctypes.

Build: one `g++ -O3 -march=native -fopenmp -shared` per distinct (source, flags, compiler),
cached on disk by that hash, so a repeated candidate costs nothing. Run: a stdlib-only child
process (harness/cpu_child.py) loads the object and calls it on inputs the parent wrote to disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import torch

from harness.backends import register
from harness.backends.base import RunOutput
from harness.cases import DTYPE_CODES, Case
from harness.config import HarnessConfig
from harness.evidence import CompileResult, FailureClass
from harness.sandbox import ExitKind, run_child

INCLUDE_DIR = Path(__file__).resolve().parent.parent / "include"
CHILD = Path(__file__).resolve().parent.parent / "cpu_child.py"


@lru_cache(maxsize=8)
def compiler_version(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else cxx
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"


def _exported(so: Path, symbol: str) -> bool:
    # Read the dynamic symbol table without loading the object (loading runs its constructors).
    out = subprocess.run(["nm", "-D", "--defined-only", str(so)], capture_output=True, text=True, timeout=30)
    return any(line.split()[-1] == symbol for line in out.stdout.splitlines() if line.strip())


@register
class CpuCppBackend:
    name: ClassVar[str] = "cpu_cpp"
    language: ClassVar[str] = "c++"

    def available(self) -> tuple[bool, str]:
        cxx = shutil.which("g++")
        return (cxx is not None, f"g++ at {cxx}" if cxx else "no C++ compiler (g++) on PATH")

    def toolchain(self, cfg: HarnessConfig) -> str:
        return compiler_version(cfg.cxx)

    def compile(self, source: str, entry_point: str, cfg: HarnessConfig, timeout_s: float) -> CompileResult:
        flags = list(cfg.cxxflags)
        key = hashlib.sha256("\0".join([source, *flags, compiler_version(cfg.cxx)]).encode()).hexdigest()
        build = cfg.cache_dir / key[:2] / key[:24]
        so = build / "kernel.so"
        cmd = [cfg.cxx, *flags, f"-I{INCLUDE_DIR}", "kernel.cpp", "-o", "kernel.so"]
        t0 = time.monotonic()
        if so.is_file():
            res = CompileResult(ok=True, command=cmd, cached=True, artifact=str(so), source_hash=key,
                                log=(build / "compile.log").read_text() if (build / "compile.log").exists() else "")
        else:
            build.mkdir(parents=True, exist_ok=True)
            (build / "kernel.cpp").write_text(source)
            ex = run_child(cmd, cwd=build, timeout_s=timeout_s, limits=cfg.limits)
            log = (ex.stdout + ex.stderr)[-20_000:]
            (build / "compile.log").write_text(log)
            if ex.kind == ExitKind.timeout:
                return CompileResult(ok=False, failure=FailureClass.compile_timeout, command=cmd, log=log,
                                     seconds=time.monotonic() - t0, source_hash=key)
            if ex.kind != ExitKind.ok or not (build / "kernel.so").is_file():
                return CompileResult(ok=False, failure=FailureClass.compile_error, command=cmd, log=log,
                                     seconds=time.monotonic() - t0, source_hash=key)
            res = CompileResult(ok=True, command=cmd, log=log, artifact=str(so), source_hash=key)
        if not _exported(so, entry_point):
            res.ok, res.failure = False, FailureClass.missing_entry_point
            res.log += f"\nentry point `{entry_point}` is not exported (declare it KS_EXPORT / extern \"C\")"
        res.seconds = time.monotonic() - t0
        return res

    def run(self, artifact: str, entry_point: str, cases: list[Case], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float) -> RunOutput:
        workdir.mkdir(parents=True, exist_ok=True)
        manifest = {"library": artifact, "entry_point": entry_point, "mode": mode,
                    "timing": cfg.timing.model_dump(), "cases": []}
        for i, case in enumerate(cases):
            ins = []
            for j, t in enumerate(case.inputs):
                f = f"case{i}_in{j}.bin"
                (workdir / f).write_bytes(t.numpy().tobytes() if t.dtype != torch.bfloat16
                                          else t.view(torch.int16).numpy().tobytes())
                ins.append(_describe(t, f))
            manifest["cases"].append({"inputs": ins, "output": _describe(case.reference, f"case{i}_out.bin")})
        (workdir / "manifest.json").write_text(json.dumps(manifest))
        env = {"OMP_NUM_THREADS": str(cfg.threads), "OMP_PROC_BIND": "false"}
        ex = run_child([sys.executable, str(CHILD), str(workdir / "manifest.json")], cwd=workdir,
                       timeout_s=timeout_s, limits=cfg.limits, extra_env=env)
        rcs, outputs, crashed = _collect(workdir, cases)
        times = None
        if ex.kind == ExitKind.ok and (workdir / "result.json").is_file():
            times = json.loads((workdir / "result.json").read_text()).get("times")
        return RunOutput(exit=ex, return_codes=rcs, outputs=outputs, crashed_case=crashed, times=times)


def _describe(t: torch.Tensor, file: str) -> dict:
    return {"file": file, "dtype_code": DTYPE_CODES[t.dtype], "shape": list(t.shape),
            "strides": list(t.stride()), "nbytes": t.numel() * t.element_size()}


def _collect(workdir: Path, cases: list[Case]) -> tuple[list[int], list[torch.Tensor], int | None]:
    """Read back what the child finished, even if it died part-way."""
    rcs: list[int] = []
    started: int | None = None
    log = workdir / "events.log"
    for line in (log.read_text().splitlines() if log.exists() else []):
        parts = line.split()
        if parts[0] == "start":
            started = int(parts[1])
        elif parts[0] == "end":
            rcs.append(int(parts[2]))
            started = None
    outputs = []
    for i in range(len(rcs)):
        f = workdir / f"case{i}_out.bin"
        if not f.exists():
            break
        ref = cases[i].reference
        raw = bytearray(f.read_bytes())
        outputs.append(torch.frombuffer(raw, dtype=ref.dtype).reshape(ref.shape) if raw else ref.new_empty(ref.shape))
    return rcs, outputs, started
