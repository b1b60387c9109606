"""Which GPU torch sees, described once for the evidence packet and the GPU backends.

NVIDIA and AMD both appear to torch as `cuda:0` (a ROCm build of torch keeps the CUDA API names);
`torch.version.hip` tells them apart. The warp size differs (32 on NVIDIA, 64 on AMD CDNA) and a
kernel tuned for one is wrong or slow on the other, so every packet from a GPU backend records it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel


class GpuInfo(BaseModel):
    vendor: Literal["nvidia", "amd"]
    name: str                      # e.g. "NVIDIA H100 80GB HBM3"
    arch: str                      # what the compiler targets: "sm_90", "gfx942"
    warp_size: int                 # 32 (NVIDIA), 64 (AMD CDNA) or 32 (AMD RDNA in wave32)
    memory_gb: float
    multiprocessors: int
    l2_bytes: int
    runtime: str                   # the CUDA or HIP version torch was built with


@lru_cache(maxsize=1)
def detect() -> GpuInfo | None:
    """The device at cuda:0, or None where torch sees no GPU (a CPU build, no driver, no device)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    hip = getattr(torch.version, "hip", None)
    if hip:
        # gcnArchName carries feature flags ("gfx942:sramecc+:xnack-"); hipcc wants the first part.
        arch = str(getattr(p, "gcnArchName", "") or "gfx").split(":")[0]
        warp = int(getattr(p, "warp_size", 0) or 64)
        vendor, runtime = "amd", f"HIP {hip}"
    else:
        arch = f"sm_{p.major}{p.minor}"
        warp = int(getattr(p, "warp_size", 0) or 32)
        vendor, runtime = "nvidia", f"CUDA {torch.version.cuda}"
    return GpuInfo(vendor=vendor, name=p.name, arch=arch, warp_size=warp, memory_gb=p.total_memory / 2**30,
                   multiprocessors=p.multi_processor_count, l2_bytes=int(getattr(p, "L2_cache_size", 0) or 0),
                   runtime=runtime)
