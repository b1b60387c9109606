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
import time
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import torch

from harness.backends import register
from harness.backends.base import RunOutput
from harness.cases import DTYPE_CODES, Case
from harness.config import HarnessConfig
from harness.evidence import CompileResult, FailureClass
from harness import evict, objscan
from harness.sandbox import ExitKind, python_argv, run_child

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
    source_file: ClassVar[str] = "kernel.cpp"

    def available(self, cfg: HarnessConfig | None = None) -> tuple[bool, str]:
        name = (cfg or HarnessConfig()).cxx
        cxx = shutil.which(name)
        return (cxx is not None, f"{name} at {cxx}" if cxx else f"no C++ compiler ({name}) on PATH; set harness.cxx")

    def toolchain(self, cfg: HarnessConfig) -> str:
        return compiler_version(cfg.cxx)

    def device(self, cfg: HarnessConfig) -> Literal["cpu", "cuda"]:
        return "cpu"

    def device_info(self, cfg: HarnessConfig) -> None:
        return None

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
        elif cfg.limits.static_scan:
            problem = objscan.scan(so)
            if problem:
                res.ok, res.failure = False, FailureClass.forbidden_symbol
                res.log += f"\n{problem}"
        res.seconds = time.monotonic() - t0
        return res

    def run(self, artifact: str, entry_point: str, cases: list[Case], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float, stage_dir: Path) -> RunOutput:
        workdir.mkdir(parents=True, exist_ok=True)
        cwd = workdir / "cwd"          # the candidate's working directory: empty
        cwd.mkdir(exist_ok=True)
        flush = cache_flush(cfg, cases) if mode == "bench" else CacheFlush()
        manifest = write_manifest(workdir, cases, stage_dir, {
            "library": artifact, "entry_point": entry_point, "mode": mode, "timing": cfg.timing.model_dump(),
            "flush_bytes": flush.bytes, "evict_library": flush.library, "sandbox": {"seccomp": cfg.limits.seccomp}})
        env = {"OMP_NUM_THREADS": str(cfg.threads)}
        env.update({"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"} if cfg.pin_threads else {"OMP_PROC_BIND": "false"})
        ex = run_child(python_argv(CHILD, str(workdir / "manifest.json")), cwd=cwd,
                       timeout_s=timeout_s, limits=cfg.limits, extra_env=env, confine=True, threads=cfg.threads)
        rcs, crashed = _events(workdir)
        result = json.loads((workdir / "result.json").read_text()) if ex.kind == ExitKind.ok and \
            (workdir / "result.json").is_file() and (workdir / "result.json").stat().st_size else {}
        if mode == "bench":
            rcs = [0] * len(cases) if result else []
        outputs = _outputs(workdir, cases, len(result.get("checks", [])) if result else len(rcs))
        return RunOutput(exit=ex, return_codes=rcs, outputs=outputs, crashed_case=crashed,
                         times=result.get("times"), checks=result.get("checks", []), fresh=result.get("fresh", []),
                         sandbox=sandbox_features(cfg), flush_bytes=flush.bytes, cache_eviction=flush.method,
                         evicted_bytes=result.get("evicted_bytes", 0))


def sandbox_features(cfg: HarnessConfig) -> list[str]:
    from harness.sandbox import network_namespace_available
    feats = [f"rlimits(as={cfg.limits.address_space_gb:g}G,nofile={cfg.limits.open_files},cpu)", "process-group-kill",
             "env-allowlist", "empty-cwd", "poisoned-output", "canaries+guard-page"]
    if cfg.limits.seccomp:
        feats.append("seccomp(no-net,no-exec,no-fork,no-write-open,no-exec-memory)")
    if cfg.limits.network_namespace and network_namespace_available():
        feats.append("network-namespace")
    if cfg.limits.static_scan:
        feats.append("static-symbol-scan")
    return feats


class CacheFlush(NamedTuple):
    """How timed CPU calls start cold: the eviction library (harness/evict.py), or failing that
    the bytes to write (2 x LLC) before each call; empty when the working set is too large to
    stay cached (or flush_cache is off)."""
    library: str | None = None
    method: str = ""
    bytes: int = 0


def cache_flush(cfg: HarnessConfig, cases: list[Case]) -> CacheFlush:
    """Timed calls need cold caches when the bench working set would otherwise stay cached (it is
    under twice the last-level cache): evict each call's inputs and output where the harness's
    eviction library builds, else write twice the LLC."""
    llc = last_level_cache_bytes()
    working = sum(t.numel() * t.element_size() for t in cases[0].inputs) + cases[0].reference.numel() * \
        cases[0].reference.element_size()
    if not (cfg.timing.flush_cache if cfg.timing.flush_cache is not None else working < 2 * llc):
        return CacheFlush()
    lib = evict.library(cfg.cxx, cfg.cache_dir) if cfg.timing.evict else None
    if lib is not None:
        return CacheFlush(library=lib[0], method=f"{lib[1]} of each call's inputs and output")
    return CacheFlush(method=f"wrote {2 * llc} bytes (2x the last-level cache) before each call", bytes=2 * llc)


@lru_cache(maxsize=1)
def last_level_cache_bytes() -> int:
    best = 0
    for f in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        txt = f.read_text().strip()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(txt[-1:], 1)
        try:
            best = max(best, int(txt.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or (32 << 20)


def write_manifest(workdir: Path, cases: list[Case], stage_dir: Path, fields: dict) -> dict:
    """A child's manifest.json: `fields` plus each case's staged inputs and output description."""
    manifest = {**fields, "cases": [], "output_files": []}
    for i, case in enumerate(cases):
        out = f"case{i}_out.bin"
        manifest["cases"].append({"inputs": stage_inputs(case, stage_dir), "rerun_of": case.rerun_of,
                                  "output": _describe(case.reference, out)})
        manifest["output_files"].append(out)
    (workdir / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def stage_inputs(case: Case, stage_dir: Path) -> list[dict]:
    """Write a case's inputs once (files named by the case's key); later runs reuse them."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    descs = []
    for j, t in enumerate(case.inputs):
        path = stage_dir / f"{case.key}_in{j}.bin"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
            tmp.rename(path)
        descs.append(_describe(t, str(path)) | {"path": str(path)})
    return descs


def _describe(t: torch.Tensor, file: str) -> dict:
    return {"file": file, "dtype_code": DTYPE_CODES[t.dtype], "shape": list(t.shape),
            "strides": list(t.stride()), "nbytes": t.numel() * t.element_size()}


def _events(workdir: Path) -> tuple[list[int], int | None]:
    """Return codes of the calls that finished, and the call running when the child died."""
    rcs: list[int] = []
    started: int | None = None
    log = workdir / "events.log"
    for line in (log.read_text().splitlines() if log.exists() else []):
        parts = line.split()
        if parts[0] == "start":
            started = int(parts[1]) if parts[1].isdigit() else 0
        elif parts[0] == "end":
            if parts[1].isdigit():
                rcs.append(int(parts[2]))
            started = None
    return rcs, started


def _outputs(workdir: Path, cases: list[Case], n: int) -> list[torch.Tensor]:
    outputs = []
    for i in range(min(n, len(cases))):
        f = workdir / f"case{i}_out.bin"
        ref = cases[i].reference
        raw = bytearray(f.read_bytes()) if f.exists() else bytearray()
        if len(raw) != ref.numel() * ref.element_size():
            break
        outputs.append(torch.frombuffer(raw, dtype=ref.dtype).reshape(ref.shape) if raw else ref.new_empty(ref.shape))
    return outputs
