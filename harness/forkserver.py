"""Start torch/triton candidate processes by forking a server that imported them once.

`import torch, triton` costs ~3 s on the 2-core CI machine, and a Triton candidate runs up to four
children (the import check, the target-GPU compile check, verify, bench): a fresh interpreter for
each spends ~12 s per candidate before any kernel runs. A fork server imports them once per
environment and forks one child per request (~30 ms), the way torch's DataLoader forks workers.

The child is confined as `sandbox.run_child` confines a fresh process: its own session and process
group, the same rlimits (address space, CPU seconds, open files, no core file) and network
namespace (both set by `sandbox.limit_resources`, in the child, after the fork), an empty cwd,
stdin on /dev/null, stdout and stderr to files, every other descriptor closed, and the
allow-listed environment (the server is started with exactly the environment `run_child` would
give; the server key is that environment). What it inherits beyond a fresh process: modules that
trusted code imported. The server never runs a tensor op (so no thread pool or CUDA context
exists to be forked; it refuses to fork if CUDA was initialised), and each request gets a fresh
fork, so nothing one candidate does reaches the next.

Protocol (stdin/stdout of the server, one JSON object per line): a request names the entry
("torch_child" or "gpu_compile"), its argument (a manifest path), cwd, the files for stdout and
stderr, the limits; the server answers {"pid": N} once forked and {"status": S} (os.waitpid's
status) once the child is reaped. One request at a time per server; the client keeps a pool.

    python -s -P harness/forkserver.py   # started by `run`, never by hand
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path

if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config import SandboxLimits  # noqa: E402
from harness.sandbox import (ChildExit, child_env, classify_exit, cpu_seconds, limit_resources,  # noqa: E402
                             network_namespace_available, python_argv, run_child)

SCRIPT = Path(__file__).resolve()
STARTUP_TIMEOUT_S = 300.0        # importing torch and triton on a loaded machine, before the first fork


# ---- the server -------------------------------------------------------------------------------

def _entries() -> dict:
    """Import what every child needs (torch, triton, the child modules) and name their mains."""
    from harness import gpu_compile, torch_child
    return {"torch_child": torch_child.run, "gpu_compile": gpu_compile.child_main}


def _become_child(req: dict, entries: dict) -> None:
    """In the forked process: confine it like a fresh one, run the entry, never return."""
    rc = 1
    try:
        os.setsid()
        fds = [os.open(os.devnull, os.O_RDONLY),
               os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
               os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 65536)              # the server's pipes and anything else it held
        os.chdir(req["cwd"])
        limit_resources(SandboxLimits.model_validate(req["limits"]), req["cpu_s"], req["netns"])()
        sys.argv = [req["entry"], req["arg"]]
        rc = entries[req["entry"]](req["arg"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            sys.stderr.write(f"{e.code}\n")
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc if isinstance(rc, int) else 1)


def serve() -> None:
    entries = _entries()
    import torch
    replies = sys.stdout

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    for line in sys.stdin:
        req = json.loads(line)
        if torch.cuda.is_initialized():       # a forked CUDA context is unusable: refuse rather than fork it
            reply({"error": "CUDA was initialised in the fork server; it cannot fork"})
            continue
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_child(req, entries)
        reply({"pid": pid})
        _, status = os.waitpid(pid, 0)
        reply({"status": status})


# ---- the client -------------------------------------------------------------------------------

class ServerFailed(RuntimeError):
    """The fork server died or answered nonsense: the caller runs the child the slow way."""


class _Server:
    def __init__(self, env: dict[str, str]):
        self.dir = Path(tempfile.mkdtemp(prefix="kscout-forkserver-"))
        self.log = open(self.dir / "server.log", "w+")
        self.proc = subprocess.Popen(python_argv(SCRIPT), cwd=self.dir, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True)
        self.buf = b""
        self.started = False

    def _line(self, deadline: float) -> dict | None:
        """The next reply, or None at the deadline; ServerFailed if the server is gone."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with selectors.DefaultSelector() as sel:
                sel.register(fd, selectors.EVENT_READ)
                if not sel.select(left):
                    continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.log.seek(0)
                raise ServerFailed(f"the fork server exited ({self.proc.poll()}): {self.log.read()[-2000:]}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise ServerFailed(f"the fork server answered {line[:200]!r}") from None

    def run(self, entry: str, arg: str, *, cwd: Path, timeout_s: float, limits: SandboxLimits, cpu_s: int | None,
            netns: bool, threads: int, max_output: int) -> ChildExit:
        out, err = self.dir / "child.out", self.dir / "child.err"
        req = {"entry": entry, "arg": arg, "cwd": str(cwd), "stdout": str(out), "stderr": str(err),
               "limits": limits.model_dump(), "cpu_s": cpu_s, "netns": netns}
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except OSError as e:
            raise ServerFailed(f"the fork server is gone: {e}") from None
        # The first request waits for the server's imports: that is not the candidate's time.
        first = self._line(time.monotonic() + (STARTUP_TIMEOUT_S if not self.started else 30.0))
        if first is None or "pid" not in first:
            raise ServerFailed(f"the fork server did not fork: {first or 'no answer'}")
        self.started = True
        pid, t0 = first["pid"], time.monotonic()
        done = self._line(t0 + timeout_s)
        timed_out = done is None
        if timed_out:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                _killpg(pid, sig)
                done = self._line(time.monotonic() + (limits.kill_grace_s if sig == signal.SIGTERM else 30.0))
                if done is not None:
                    break
            if done is None:
                raise ServerFailed(f"the fork server did not reap child {pid} after SIGKILL")
        _killpg(pid, signal.SIGKILL)         # the child exited; anything it left in its group goes too
        seconds = time.monotonic() - t0
        status = done["status"]
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        kind, sig = classify_exit(rc, seconds, timed_out, cpu_s, threads)
        stdout, stderr = (p.read_text(errors="replace")[-max_output:] if p.is_file() else "" for p in (out, err))
        return ChildExit(kind=kind, returncode=rc, signal_name=sig, seconds=seconds, stdout=stdout, stderr=stderr,
                         forked=True)

    def close(self) -> None:
        try:
            self.proc.stdin.close()          # the server's loop ends at EOF
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        for p in self.dir.iterdir():
            p.unlink()
        self.dir.rmdir()


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def enabled(fork_server: bool | None, on_device: bool) -> bool:
    """harness.fork_server for a child that uses a GPU (`on_device`) or not. By default only those
    that do not: forking before CUDA initialises is the pattern torch's DataLoader relies on, but
    it has not run on a GPU here yet, and a broken fork would look like the candidate's failure."""
    return (not on_device) if fork_server is None else fork_server


# Idle servers by environment, least recently used first. Each holds ~300 MB (torch and triton
# imported); a worker needs one or two (the interpreter's, the compile check's), but every new
# cache dir or target is a new environment, so beyond MAX_IDLE the least recently used is closed.
MAX_IDLE = 3
_idle: OrderedDict[tuple, list[_Server]] = OrderedDict()
_lock = threading.Lock()
_broken: set[tuple] = set()


def _release(key: tuple, server: _Server) -> None:
    with _lock:
        _idle.setdefault(key, []).append(server)
        _idle.move_to_end(key)
        surplus = []
        while sum(len(v) for v in _idle.values()) > MAX_IDLE:
            old_key = next(iter(_idle))
            surplus.append(_idle[old_key].pop(0))
            if not _idle[old_key]:
                del _idle[old_key]
    for s in surplus:
        s.close()


def _close_all() -> None:
    with _lock:
        servers = [s for pool in _idle.values() for s in pool]
        _idle.clear()
    for s in servers:
        s.close()


atexit.register(_close_all)


def run(entry: str, arg: Path, exec_argv: list[str], *, use_server: bool, cwd: Path, timeout_s: float,
        limits: SandboxLimits, extra_env: dict[str, str] | None = None, confine: bool = False, threads: int = 1,
        max_output: int = 64_000) -> ChildExit:
    """Run one child: forked from a warm server when `use_server`, else (or when the server for
    this environment failed) as `exec_argv` in a fresh interpreter. Same ChildExit either way."""
    fresh = lambda: run_child(exec_argv, cwd=cwd, timeout_s=timeout_s, limits=limits, extra_env=extra_env,  # noqa: E731
                              confine=confine, threads=threads, max_output=max_output)
    if not use_server:
        return fresh()
    env = child_env(extra_env)
    key = tuple(sorted(env.items()))
    with _lock:
        if key in _broken:
            return fresh()
        server = _idle[key].pop() if _idle.get(key) else None
        if key in _idle and not _idle[key]:
            del _idle[key]
    server = server or _Server(env)
    cpu_s = cpu_seconds(timeout_s, threads) if confine else None
    netns = confine and limits.network_namespace and network_namespace_available()
    try:
        result = server.run(entry, str(arg), cwd=cwd, timeout_s=timeout_s, limits=limits, cpu_s=cpu_s, netns=netns,
                            threads=threads, max_output=max_output)
    except ServerFailed as e:
        server.close()
        if not server.started:               # it never forked: a new one would fail the same way
            with _lock:
                _broken.add(key)
        sys.stderr.write(f"kscout-harness: {e}; running this child in a fresh interpreter"
                         f"{'' if server.started else ', and every later one with this environment'}\n")
        return fresh()
    _release(key, server)
    return result


if __name__ == "__main__":
    serve()
