"""The interface every backend implements: build a candidate, then run it on prepared cases."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from harness.config import HarnessConfig
from harness.evidence import CompileResult
from harness.sandbox import ChildExit

if TYPE_CHECKING:
    from harness.cases import Case
    from harness.gpu import GpuInfo


class BackendUnavailable(RuntimeError):
    """The backend cannot run on this machine (toolchain missing, no device)."""


class RunOutput(BaseModel):
    """What one child run produced: per-case return codes and outputs, timings in bench mode."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    exit: ChildExit
    return_codes: list[int]          # one per case that finished
    outputs: list[object]            # torch tensors, one per case that finished
    crashed_case: int | None = None  # index of the case running when the child died
    times: list[float] | None = None
    # Per output, what the child saw around the call: {"async": bool, "canary": None|"before"|"after",
    # "mutated": [input indices]}; `fresh` marks timed calls on first-seen inputs (bench mode).
    checks: list[dict] = []
    fresh: list[bool] = []
    sandbox: list[str] = []          # defences that were active in the child
    flush_bytes: int = 0             # bytes written between timed calls to evict caches
    cache_eviction: str = ""         # how timed calls started cold (CPU: clflushopt of the working set)
    evicted_bytes: int = 0           # bytes the child evicted before its calls, warmup included
    # Python backends: what the candidate raised (traceback) on the call whose return code is
    # non-zero, and the failure class it maps to (runtime_error, or compile_error for a Triton
    # kernel that failed to compile at its first launch).
    error: str = ""
    error_class: str | None = None
    # False: the times (if any) say nothing about the hardware (Triton's CPU interpreter); the
    # Evaluator then never builds a BenchResult, so no speedup exists to rank. `timing_note` says why.
    timing_meaningful: bool = True
    timing_note: str = ""


class Backend(Protocol):
    name: ClassVar[str]
    language: ClassVar[str]
    source_file: ClassVar[str]        # what a candidate's source is called on disk and in a branch

    def available(self, cfg: HarnessConfig | None = None) -> tuple[bool, str]:
        """Whether the toolchain (as `cfg` names it) and device are here, and a sentence saying what
        was found or missing."""

    def toolchain(self, cfg: HarnessConfig) -> str:
        """The compiler (and version) this backend builds with, for the evidence packet."""

    def device(self, cfg: HarnessConfig) -> Literal["cpu", "cuda"]:
        """Where candidates run under `cfg`, so where the baselines must be measured: "cuda" is
        cuda:0 of a CUDA or ROCm torch. Decided by the backend and config, not by what this
        machine has (a cluster's driver may have no GPU while its workers do)."""

    def device_info(self, cfg: HarnessConfig) -> "GpuInfo | None":
        """The GPU this backend runs candidates on under `cfg` (recorded in the packet); None on the CPU."""

    def compile(self, source: str, entry_point: str, cfg: HarnessConfig, timeout_s: float) -> CompileResult: ...

    def run(self, artifact: str, entry_point: str, cases: list["Case"], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float, stage_dir: Path) -> RunOutput:
        """Verify mode: call once per case (reruns reuse their base case's buffers). Bench mode:
        `cases` are the rotation sets, cycled through the timed calls. Inputs are staged once per
        evaluator under `stage_dir` and shared by every candidate."""

    # Optional (the GPU backends have it; the Evaluator records "no profiler" for those without):
    # def profile(self, artifact, entry_point, case, cfg, workdir, stage_dir) -> ProfileSummary
    #     One more run of an accepted kernel on `case` under a profiler (harness/profile.py);
    #     raises ProfileUnavailable saying why where that is impossible.
