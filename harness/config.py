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


class SandboxLimits(BaseModel):
    address_space_gb: float = Field(16.0, gt=0, description="RLIMIT_AS of a candidate's process")
    open_files: int = Field(256, gt=16, description="RLIMIT_NOFILE")
    kill_grace_s: float = Field(1.0, ge=0, description="SIGTERM, then SIGKILL after this long")


class HarnessConfig(BaseModel):
    threads: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)),
                         description="cores of the bench slot: OMP_NUM_THREADS and torch threads")
    cache_dir: Path = Field(Path.home() / ".cache" / "kscout" / "build",
                            description="compiled objects, keyed by source + flags + compiler")
    work_dir: Path | None = Field(None, description="scratch for candidate runs (default: a temp dir)")
    cxx: str = Field("g++", description="C++ compiler for the cpu_cpp backend")
    cxxflags: list[str] = Field(default_factory=lambda: ["-O3", "-march=native", "-fopenmp", "-std=c++17",
                                                          "-fPIC", "-shared", "-fno-math-errno"])
    compiled_baseline: bool = Field(True, description="also time the reference under torch.compile")
    timing: TimingPolicy = Field(default_factory=TimingPolicy)
    limits: SandboxLimits = Field(default_factory=SandboxLimits)

    @field_validator("cache_dir", "work_dir")
    @classmethod
    def _expand(cls, p: Path | None) -> Path | None:
        return p.expanduser() if p is not None else None
