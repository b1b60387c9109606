"""Static checks on a built CPU object: what it imports and what instructions it contains.

A kernel reads its inputs and writes its output. It has no business starting programs, touching
files or sockets, loading libraries, calling into the Python interpreter that hosts it (that is
how a candidate would monkeypatch the timer), reading clocks, installing signal handlers or
making raw system calls. Such an object is rejected as `forbidden_symbol` before it ever runs;
the seccomp filter (harness/seccomp.py) stops at run time what a static scan cannot see.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

# Undefined (imported) symbols, grouped by why they are forbidden.
FORBIDDEN = {
    "starts processes": {"fork", "vfork", "system", "popen", "execv", "execve", "execvp", "execvpe", "execl",
                         "execle", "execlp", "posix_spawn", "posix_spawnp", "clone", "daemon", "_Fork"},
    "uses files": {"fopen", "fopen64", "freopen", "freopen64", "open", "open64", "openat", "openat64", "creat",
                   "creat64", "remove", "unlink", "unlinkat", "rename", "renameat", "mkdir", "rmdir", "opendir",
                   "truncate", "ftruncate", "symlink", "link", "chmod", "chown", "__open_2", "__open64_2",
                   "__openat_2", "fdopen", "tmpfile", "mkstemp", "mkostemp"},
    "uses the network": {"socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "getaddrinfo",
                         "gethostbyname", "sendto", "recvfrom", "send", "recv"},
    "loads code": {"dlopen", "dlmopen", "dlsym", "dlvsym", "mprotect", "pkey_mprotect", "memfd_create"},
    "makes raw system calls": {"syscall"},
    "reads clocks": {"clock_gettime", "gettimeofday", "time", "clock", "timespec_get", "times", "getrusage"},
    "handles signals": {"signal", "sigaction", "sigsetjmp", "__sigsetjmp", "setjmp", "_setjmp", "longjmp",
                        "siglongjmp", "raise", "kill", "alarm", "setitimer"},
    "changes its limits": {"setrlimit", "setrlimit64", "prlimit", "prlimit64", "prctl", "ptrace", "unshare",
                           "setns", "chroot"},
    "talks to other processes": {"shm_open", "mmap64_file", "process_vm_readv", "process_vm_writev", "pipe",
                                 "pipe2", "getppid"},
}
# Calls into the host interpreter (Py*, _Py*) or torch's libraries.
FORBIDDEN_PREFIXES = {"calls into the Python interpreter": ("Py", "_Py"),
                      "calls into torch": ("_ZN2at", "_ZN3c10", "_ZN5torch")}
# Instructions a kernel never needs: system calls, and reading the cycle counter.
FORBIDDEN_INSN = re.compile(r"\t(syscall|sysenter|int\s+\$0x80|rdtsc|rdtscp|rdpid|svc\s)\b")


def _undefined(so: Path) -> list[str]:
    out = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True, timeout=30)
    # "                 U fopen@GLIBC_2.2.5" -> "fopen"
    return [line.split()[-1].split("@")[0] for line in out.stdout.splitlines() if line.strip()]


def scan(so: Path) -> str | None:
    """A sentence naming what is forbidden in this object, or None if it is clean."""
    found: list[str] = []
    for sym in _undefined(so):
        why = next((w for w, names in FORBIDDEN.items() if sym in names), None)
        if why is None:
            why = next((w for w, pre in FORBIDDEN_PREFIXES.items() if sym.startswith(pre)), None)
        if why:
            found.append(f"{sym} ({why})")
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(so)], capture_output=True, text=True,
                         timeout=60).stdout
    insns = sorted({m.group(1).split()[0] for m in FORBIDDEN_INSN.finditer(dis)})
    found += [f"`{i}` instruction ({'reads the cycle counter' if i.startswith('rd') else 'raw system call'})"
              for i in insns]
    if not found:
        return None
    return "the object uses what a kernel must not: " + ", ".join(found[:12]) + (" ..." if len(found) > 12 else "")
