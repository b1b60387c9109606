"""What machine and software an attempt ran on, for the evidence packet."""

from __future__ import annotations

import os
import platform
import socket
from functools import lru_cache

from harness import HARNESS_VERSION
from harness.evidence import Environment


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo names them (avx2, fma, avx512f, ...): what the
    kernels `-march=native` builds here may use. Empty where /proc/cpuinfo has no flags line
    (not Linux, or not x86): callers treat that as "unknown", not as "none"."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def environment(threads: int, compiler: str | None = None, tolerances: dict | None = None) -> Environment:
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:  # the harness can describe a machine without torch
        torch_version = None
    return Environment(hostname=socket.gethostname(), platform=platform.platform(), cpu=cpu_model(),
                       cores=os.cpu_count() or 1, threads=threads, python=platform.python_version(),
                       torch=torch_version, compiler=compiler, harness=HARNESS_VERSION,
                       niceness=os.getpriority(os.PRIO_PROCESS, 0), tolerances=tolerances or {})
