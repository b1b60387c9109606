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


class Backend(Protocol):
    name: ClassVar[str]
    language: ClassVar[str]

    def available(self) -> tuple[bool, str]:
        """Whether the toolchain is here, and a sentence saying what was found or missing."""

    def toolchain(self, cfg: HarnessConfig) -> str:
        """The compiler (and version) this backend builds with, for the evidence packet."""

    def compile(self, source: str, entry_point: str, cfg: HarnessConfig, timeout_s: float) -> CompileResult: ...

    def run(self, artifact: str, entry_point: str, cases: list["Case"], mode: Literal["verify", "bench"],
            cfg: HarnessConfig, workdir: Path, timeout_s: float) -> RunOutput: ...
