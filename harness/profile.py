"""Nsight Compute (ncu) profiles of accepted GPU kernels: what the counters say, in the packet.

With `harness.profile = true` (`kscout search --profile`, `python -m harness bench --profile`) an
accepted kernel that was timed on an NVIDIA GPU is run once more, under ncu, on the bench shape:
the child (harness/torch_child.py, mode `profile`) calls it once outside the profiled range, so
Triton's JIT and first-touch allocations are not measured, then once between
cudaProfilerStart/Stop, and ncu (`--profile-from-start off`) collects a handful of metrics for
every kernel launched in that range. The packet keeps, per kernel, its duration, DRAM bytes and
achieved bandwidth, DRAM and SM throughput as a share of the device's sustained peak, achieved
occupancy and registers per thread; the proposer reads a one-line digest of the parent kernel's
profile (memory/context.py).

ncu replays each kernel several times to collect the counters, so a profiled call is slow; its
duration is the counter pass's, not the bench timing, and nothing is ranked by it. Clocks are left
alone (`--clock-control none`): the bench timing ran at the GPU's own clocks and so does this.

Where profiling is impossible (no ncu, a CPU or AMD backend, Triton's interpreter, a sandbox where
ncu cannot read the counters), the reason is kept in the packet (`profile_error`), never dropped.
Only the CSV layout of `ncu --csv` (one row per kernel and metric) is relied on; it has been stable
since Nsight Compute 2019.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

# metric -> field of KernelProfile. Chosen to answer "memory-bound or compute-bound, and how far
# from the device's peak": bytes moved, time, the two throughput shares, occupancy, registers.
METRICS = {
    "gpu__time_duration.sum": "duration_ns",
    "dram__bytes.sum": "dram_bytes",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram_pct",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "sm_pct",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "occupancy_pct",
    "launch__registers_per_thread": "registers",
}
# ncu prints units as it likes unless told `--print-units base`; both forms are read.
_TIME_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6,
            "second": 1e9, "s": 1e9}
_BYTES = {"byte": 1.0, "B": 1.0, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6, "MB": 1e6, "Gbyte": 1e9, "GB": 1e9,
          "Tbyte": 1e12, "KiB": 1024.0, "MiB": 1024.0**2, "GiB": 1024.0**3}


class ProfileUnavailable(RuntimeError):
    """This kernel cannot be profiled here; the message says why and what would fix it."""


class KernelProfile(BaseModel):
    """One kernel launch inside the profiled call, as ncu measured it."""

    name: str
    grid: str = ""                       # "(1024, 1, 1)"
    block: str = ""
    duration_ns: float | None = None
    dram_bytes: float | None = None
    dram_pct: float | None = None        # DRAM throughput, % of the device's sustained peak
    sm_pct: float | None = None          # SM throughput, % of peak
    occupancy_pct: float | None = None   # achieved occupancy: active warps / the SM's maximum
    registers: float | None = None       # per thread

    @property
    def achieved_gbps(self) -> float | None:
        if self.dram_bytes is None or not self.duration_ns:
            return None
        return self.dram_bytes / self.duration_ns     # bytes per ns = GB/s


class ProfileSummary(BaseModel):
    tool: str                            # "ncu 2025.3.1.0"
    command: list[str] = Field(default_factory=list)
    kernels: list[KernelProfile] = Field(default_factory=list)
    seconds: float = 0.0                 # wall time of the profiled child, counter replays included

    @property
    def duration_ns(self) -> float:
        return sum(k.duration_ns or 0.0 for k in self.kernels)

    @property
    def dram_gbps(self) -> float | None:
        moved = [k.dram_bytes for k in self.kernels if k.dram_bytes is not None]
        return sum(moved) / self.duration_ns if moved and self.duration_ns else None

    def digest(self) -> str:
        """One line for a proposer's prompt and the CLI: the launches, time, bandwidth and the
        throughput shares of the kernel that took longest."""
        if not self.kernels:
            return f"{self.tool}: no kernel was launched in the profiled call"
        top = max(self.kernels, key=lambda k: k.duration_ns or 0.0)
        parts = [f"{len(self.kernels)} kernel launch(es), {self.duration_ns / 1e3:.4g} us under ncu"]
        if self.dram_gbps is not None:
            parts.append(f"DRAM {self.dram_gbps:.4g} GB/s")
        name = top.name if len(top.name) <= 60 else top.name[:57] + "..."
        shares = [f"{label} {v:.0f}% of peak" for label, v in (("DRAM", top.dram_pct), ("SM", top.sm_pct))
                  if v is not None]
        if top.occupancy_pct is not None:
            shares.append(f"occupancy {top.occupancy_pct:.0f}%")
        if top.registers is not None:
            shares.append(f"{top.registers:.0f} registers/thread")
        if shares:
            parts.append(f"longest kernel {name}: " + ", ".join(shares))
        return f"Nsight Compute ({self.tool}): " + "; ".join(parts)


def _number(text: str) -> float | None:
    """ncu's numbers carry thousands separators ("1,215,000,000.00"); "n/a" and blanks are None."""
    t = text.strip().replace(",", "")
    try:
        return float(t)
    except ValueError:
        return None


def _scaled(field: str, value: float, unit: str) -> float:
    unit = unit.strip()
    if field == "duration_ns":
        if unit and unit not in _TIME_NS:
            raise ValueError(f"ncu reported gpu__time_duration in unknown unit '{unit}'")
        return value * _TIME_NS.get(unit, 1.0)
    if field == "dram_bytes":
        base = unit.split("/")[0] if unit else "byte"
        if base not in _BYTES:
            raise ValueError(f"ncu reported dram__bytes in unknown unit '{unit}'")
        return value * _BYTES[base]
    return value


def parse_csv(text: str) -> list[KernelProfile]:
    """Kernels, in launch order, from `ncu --csv` output (one row per kernel launch and metric;
    `==PROF==` lines and the program's own output around it are skipped)."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID"')), None)
    if start is None:
        raise ValueError("no CSV header (a line starting with \"ID\") in ncu's output")
    rows = csv.DictReader(io.StringIO("\n".join(ln for ln in lines[start:] if ln.startswith('"'))))
    need = {"ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value"}
    if not need <= set(rows.fieldnames or []):
        raise ValueError(f"ncu's CSV lacks columns {sorted(need - set(rows.fieldnames or []))}")
    kernels: dict[str, KernelProfile] = {}
    for r in rows:
        k = kernels.setdefault(r["ID"], KernelProfile(name=r["Kernel Name"], grid=r.get("Grid Size") or "",
                                                      block=r.get("Block Size") or ""))
        field = METRICS.get(r["Metric Name"])
        value = _number(r["Metric Value"] or "")
        if field and value is not None:
            setattr(k, field, _scaled(field, value, r["Metric Unit"] or ""))
    return list(kernels.values())


def find_ncu(configured: str | None = None) -> str | None:
    """`harness.ncu` if set, else ncu on PATH, under $CUDA_HOME, or in the usual install folders."""
    if configured:
        return configured if shutil.which(configured) else None
    found = shutil.which("ncu")
    if found:
        return found
    cands = [os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "ncu")]
    cands += sorted(glob.glob("/opt/nvidia/nsight-compute/*/ncu"), reverse=True)
    cands += sorted(glob.glob("/usr/local/cuda*/nsight-compute*/ncu"), reverse=True)
    return next((c for c in cands if os.access(c, os.X_OK)), None)


@lru_cache(maxsize=4)
def ncu_version(ncu: str) -> str:
    try:
        out = subprocess.run([ncu, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "ncu (version unknown)"
    line = next((ln for ln in out.splitlines() if ln.strip().lower().startswith("version")), "")
    return "ncu " + line.split()[1] if len(line.split()) > 1 else "ncu (version unknown)"


def ncu_command(ncu: str, log_file: Path) -> list[str]:
    """The ncu prefix for a child command: the listed metrics of every kernel launched between
    cudaProfilerStart and Stop, as CSV in base units, into `log_file` (the child's own stdout stays
    its own), clocks left as they are."""
    return [ncu, "--csv", "--print-units", "base", "--profile-from-start", "off", "--clock-control", "none",
            "--metrics", ",".join(METRICS), "--log-file", str(log_file)]


def require_ncu(configured: str | None) -> str:
    ncu = find_ncu(configured)
    if ncu is None:
        where = f"harness.ncu = '{configured}' is not an executable" if configured else \
            "ncu (Nsight Compute) is not on PATH, under $CUDA_HOME/bin or /opt/nvidia/nsight-compute"
        raise ProfileUnavailable(f"{where}; install Nsight Compute or set harness.ncu to its path, "
                                 "or run without --profile")
    return ncu
