"""Harness settings: how candidates are built, sandboxed and timed."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator


class TimingPolicy(BaseModel):
    warmup: int = Field(3, ge=0, description="untimed calls before timing")
    min_repeats: int = Field(7, ge=1, description="timed calls at least")
    max_repeats: int = Field(50, ge=1, description="timed calls at most")
    min_time_s: float = Field(0.4, gt=0, description="keep repeating until this much time was timed")
    max_time_s: float = Field(3.0, gt=0, description="stop repeating after this much time")
    target_iqr: float = Field(0.05, gt=0, description="stop early once IQR/median is below this (after min_repeats)")
    rotation_sets: int = Field(3, ge=1, description="distinct input sets cycled through the timed calls")
    flush_cache: bool | None = Field(None, description="evict caches between timed calls; None: when the "
                                     "bench working set fits in twice the last-level cache; false: warm caches, "
                                     "and the roofline (memory's bound) no longer rejects a kernel faster than it")
    schedule: list[int] | None = Field(None, description="input set of each timed call, cycled (None: 1, 2, "
                                       "..., 0, 1, ...); the memoization recheck spreads first-seen sets "
                                       "through its run with it")
    evict: bool = Field(True, description="CPU: start timed calls cold by evicting their inputs and output "
                        "(clflushopt, cost in proportion to them) rather than writing twice the last-level cache")
    settle_s: float = Field(0.01, ge=0, description="after a verify call returns, wait this long and check "
                            "that the output no longer changes")
    caching_ratio: float = Field(3.0, gt=1, description="reject when calls on first-seen inputs are this many "
                                 "times slower than on repeated ones (the kernel memoizes)")


class SandboxLimits(BaseModel):
    address_space_gb: float = Field(8.0, gt=0, description="RLIMIT_AS of a candidate's process")
    open_files: int = Field(256, gt=16, description="RLIMIT_NOFILE")
    kill_grace_s: float = Field(1.0, ge=0, description="SIGTERM, then SIGKILL after this long")
    seccomp: bool = Field(True, description="system-call filter in the candidate's process (Linux)")
    network_namespace: bool = Field(True, description="an empty network namespace, where the OS allows it")
    static_scan: bool = Field(True, description="reject objects importing forbidden functions / instructions")


class HarnessConfig(BaseModel):
    threads: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)),
                         description="cores of the bench slot: OMP_NUM_THREADS and torch threads")
    cache_dir: Path = Field(Path.home() / ".cache" / "kscout" / "build",
                            description="compiled objects, keyed by source + flags + compiler")
    work_dir: Path | None = Field(None, description="scratch for candidate runs (default: a temp dir)")
    cxx: str = Field("g++", description="C++ compiler for the cpu_cpp backend")
    cxxflags: list[str] = Field(default_factory=lambda: ["-O3", "-march=native", "-fopenmp", "-std=c++17",
                                                          "-fPIC", "-shared", "-fno-math-errno"])
    nvcc: str | None = Field(None, description="CUDA compiler for the cuda backend; None: $CUDA_HOME/bin/nvcc, "
                             "then nvcc on PATH, then torch's CUDA_HOME")
    nvccflags: list[str] = Field(default_factory=lambda: ["-O3", "-std=c++17", "-lineinfo"],
                                 description="nvcc flags before the harness's own (-shared -Xcompiler -fPIC, "
                                 "-arch for the device at hand); no --use_fast_math: a kernel that wants the "
                                 "fast intrinsics (__expf) calls them, and the precision check judges it")
    hipcc: str | None = Field(None, description="HIP compiler for the hip backend; None: $ROCM_PATH/bin/hipcc "
                              "(default /opt/rocm), then hipcc on PATH")
    hipccflags: list[str] = Field(default_factory=lambda: ["-O3", "-std=c++17"],
                                  description="hipcc flags before the harness's own (-shared -fPIC, "
                                  "--offload-arch for the device at hand)")
    gpu_arch: str | None = Field(None, description="compile for this architecture (sm_90, gfx942) instead of the "
                                 "device's own; lets a machine without the device compile-check candidates")
    compiled_baseline: bool = Field(True, description="also time the reference under torch.compile")
    interleave_baselines: bool = Field(True, description="re-time the baselines right after each candidate "
                                       "and compute speedups against that (drift shows in the packet)")
    hidden_shapes: int = Field(1, ge=0, description="extra shapes, drawn at random per worker, that the "
                               "candidate was never told about")
    precision_factor: float = Field(64.0, gt=1, description="reject a kernel whose error against a float64 "
                                    "reference exceeds this many times the dtype reference's own error")
    triton_interpret: bool | None = Field(None, description="Triton backend: run kernels in Triton's CPU "
                                          "interpreter (correctness only, never timed). None: the interpreter "
                                          "exactly when torch sees no GPU; True: always; False: never (a GPU is "
                                          "then required)")
    triton_interpret_time_factor: float = Field(4.0, ge=1, description="under Triton's interpreter, a child "
                                                "run may take this many times the workload's run_s (each program "
                                                "instance runs as Python; tests and GPU runs are unaffected)")
    device_startup_s: float = Field(20.0, ge=0, description="GPU backends: added to a child run's time limit for "
                                    "importing torch and creating the device context (seconds on a cold driver)")
    profile: bool = Field(False, description="profile each accepted GPU kernel once with Nsight Compute (ncu) on "
                          "the bench shape; the packet keeps bandwidth, SM throughput and occupancy per kernel")
    ncu: str | None = Field(None, description="the ncu executable; None: ncu on PATH, under $CUDA_HOME/bin, then "
                            "/opt/nvidia/nsight-compute/*/ncu")
    profile_timeout_s: float = Field(300.0, gt=0, description="time limit of one profiled run (ncu replays each "
                                     "kernel once per counter pass, so it is far slower than a timed call)")
    triton_targets: list[str] = Field(default_factory=lambda: ["sm_90"], description="Triton under the "
                                      "interpreter: compile each verified kernel for these GPUs too (no GPU needed, "
                                      "harness.gpu_compile) and reject one that would not launch there (shared "
                                      "memory, registers per block); [] turns it off. On a GPU the launch decides")
    fork_server: bool | None = Field(None, description="fork Triton/CUDA/HIP candidate processes from a server "
                                     "that imported torch and triton once (harness/forkserver.py; saves ~3 s per "
                                     "process on a 2-core machine) instead of starting a fresh interpreter for each. "
                                     "None: for children that use no GPU (Triton's interpreter, the GPU-target compile "
                                     "check), not yet for those on a GPU (unmeasured there); True: for all; False: none")
    pin_threads: bool = Field(True, description="OMP_PROC_BIND=close, OMP_PLACES=cores in the candidate")
    timing: TimingPolicy = Field(default_factory=TimingPolicy)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)

    @field_validator("triton_targets")
    @classmethod
    def _known_targets(cls, targets: list[str]) -> list[str]:
        from harness.gpu_compile import TARGETS
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown GPU target {unknown[0]!r}: use some of {', '.join(TARGETS)}")
        return targets

    @field_validator("cache_dir", "work_dir")
    @classmethod
    def _expand(cls, p: Path | None) -> Path | None:
        return p.expanduser() if p is not None else None
