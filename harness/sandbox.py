"""Run a command in a process we can kill: new session, allowlisted env, resource limits, no network.

On timeout the whole process group gets SIGTERM, then SIGKILL after a grace period, so a
candidate that forks or spawns threads cannot outlive its limit (Ray task cancellation is not
relied on). Where the kernel allows unprivileged user namespaces, a candidate's process also gets
its own empty network namespace (no interfaces but a down loopback). The caller learns how the
process ended as a typed `ChildExit`. The seccomp filter is installed by the child itself
(harness/seccomp.py), because it must go on after Python starts and before the candidate loads.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import subprocess
import sys
import time
from enum import Enum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from harness.config import SandboxLimits

# Only these variables reach a candidate's process; API keys and the like never do.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
                 "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                 "TRITON_INTERPRET")


def python_argv(script: Path | str, *args: str) -> list[str]:
    """How a child Python starts: this interpreter, no user site-packages (-s), nothing prepended to
    sys.path from the script's folder or cwd (-P). Not -I: that also drops PYTHONPATH, and on a
    box whose kscout dependencies are only on PYTHONPATH (scripts/gpu_session.sh carries pydantic
    there) every candidate would fail to import the harness. The environment is allowlisted anyway
    (child_env), so PYTHONPATH is the only PYTHON* variable a child sees unless we set one."""
    return [sys.executable, "-s", "-P", str(script), *args]


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
    forked: bool = False     # forked from harness/forkserver.py's warm server, not a fresh interpreter


_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


def _unshare_network() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0


@lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether an unprivileged process may enter a fresh network namespace here (probed once)."""
    try:
        proc = subprocess.run(["true"], preexec_fn=lambda: None if _unshare_network() else os._exit(3),
                              timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def limit_resources(limits: SandboxLimits, cpu_s: int | None, isolate_network: bool):
    """What a candidate's process applies to itself before it runs anything (a preexec_fn, or
    the first thing a forked child does, harness/forkserver.py)."""
    def apply() -> None:
        gb = int(limits.address_space_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (gb, gb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        if cpu_s is not None:   # CPU seconds over all threads: SIGXCPU, then SIGKILL at the hard limit
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 2))
        if isolate_network and not _unshare_network():
            os._exit(121)   # promised isolation that is not there: refuse to run rather than run open
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


def child_env(extra_env: dict[str, str] | None) -> dict[str, str]:
    """A candidate's whole environment: the allowlisted variables of ours, then `extra_env`."""
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.update(extra_env or {})
    return env


def cpu_seconds(timeout_s: float, threads: int) -> int:
    """RLIMIT_CPU of a confined child: its wall-clock limit on every thread, with slack."""
    return math.ceil(timeout_s * max(threads, 1) * 1.5 + 5)


def classify_exit(rc: int, seconds: float, timed_out: bool, cpu_s: int | None, threads: int) -> tuple[ExitKind, str | None]:
    """How a child ended, from its return code (negative: the signal that killed it)."""
    if timed_out:
        return ExitKind.timeout, None
    if rc < 0 and -rc in (signal.SIGXCPU, signal.SIGKILL) and cpu_s is not None and seconds >= cpu_s / max(threads, 1) * 0.5:
        return ExitKind.timeout, signal.Signals(-rc).name   # its CPU-time limit, not a crash
    if rc < 0:
        return ExitKind.signal, signal.Signals(-rc).name
    return (ExitKind.ok if rc == 0 else ExitKind.nonzero), None


def run_child(argv: list[str], *, cwd: Path, timeout_s: float, limits: SandboxLimits,
              extra_env: dict[str, str] | None = None, max_output: int = 64_000,
              confine: bool = False, threads: int = 1) -> ChildExit:
    """Run argv to completion or its time limit. `confine` marks a candidate's process: it gets
    a CPU-time limit (timeout x threads, with slack) and, where possible, no network."""
    env = child_env(extra_env)
    cpu_s = cpu_seconds(timeout_s, threads) if confine else None
    netns = confine and limits.network_namespace and network_namespace_available()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=limit_resources(limits, cpu_s, netns), text=True, errors="replace")
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
    kind, sig = classify_exit(rc, seconds, timed_out, cpu_s, threads)
    return ChildExit(kind=kind, returncode=rc, signal_name=sig, seconds=seconds,
                     stdout=(out or "")[-max_output:], stderr=(err or "")[-max_output:])
