"""Run a command in a process we can kill: new session, allowlisted env, resource limits.

On timeout the whole process group gets SIGTERM, then SIGKILL after a grace period, so a
candidate that forks or spawns threads cannot outlive its limit (Ray task cancellation is not
relied on). The caller learns how the process ended as a typed `ChildExit`.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from enum import Enum
from pathlib import Path

from pydantic import BaseModel

from harness.config import SandboxLimits

# Only these variables reach a candidate's process; API keys and the like never do.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                 "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "TRITON_INTERPRET")


class ExitKind(str, Enum):
    ok = "ok"
    nonzero = "nonzero"      # exited with a non-zero status
    signal = "signal"        # killed by a signal it did not ask for (SIGSEGV, SIGABRT, ...)
    timeout = "timeout"      # we killed it at its time limit


class ChildExit(BaseModel):
    kind: ExitKind
    returncode: int
    signal_name: str | None = None
    seconds: float
    stdout: str = ""
    stderr: str = ""


def _limit_resources(limits: SandboxLimits):
    def apply() -> None:
        gb = int(limits.address_space_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (gb, gb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    return apply


def _kill_group(proc: subprocess.Popen, grace_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def run_child(argv: list[str], *, cwd: Path, timeout_s: float, limits: SandboxLimits,
              extra_env: dict[str, str] | None = None, max_output: int = 64_000) -> ChildExit:
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.update(extra_env or {})
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_limit_resources(limits), text=True, errors="replace")
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc, limits.kill_grace_s)
        out, err = proc.communicate()
    else:
        # The child exited; anything it left behind in its group goes too.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    seconds = time.monotonic() - t0
    rc = proc.returncode
    if timed_out:
        kind, sig = ExitKind.timeout, None
    elif rc < 0:
        kind, sig = ExitKind.signal, signal.Signals(-rc).name
    else:
        kind, sig = (ExitKind.ok if rc == 0 else ExitKind.nonzero), None
    return ChildExit(kind=kind, returncode=rc, signal_name=sig, seconds=seconds,
                     stdout=(out or "")[-max_output:], stderr=(err or "")[-max_output:])
