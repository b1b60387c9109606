"""A seccomp-BPF system-call filter for candidate processes, built with ctypes (no libseccomp).

Standard library only: the CPU child installs it before it loads a candidate, so nothing the
candidate runs (its constructors, its kernel, threads it starts) can open a socket, start a
program, fork a process, open a file for writing, delete or rename files, signal another process,
or leave its namespaces. A forbidden call kills the whole process with SIGSYS, which the parent
names `sandbox_violation`. Threads (clone with CLONE_THREAD) stay allowed: OpenMP needs them.

A second, stricter filter (`lock_exec`) is stacked after the candidate's object is loaded: from
then on no memory may become executable, so a kernel cannot patch code (the timer, the harness)
in its own process. Filters only ever add restrictions; none can be removed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp constants (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2

_CLONE_THREAD = 0x00010000
_O_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000   # O_WRONLY O_RDWR O_CREAT O_TRUNC O_APPEND
_PROT_EXEC = 0x4

# Per architecture: audit arch, and the syscall numbers the filter refers to.
_ARCH = {
    "x86_64": (0xC000003E, {
        "socket": 41, "socketpair": 53, "connect": 42, "bind": 49, "listen": 50, "accept": 43, "accept4": 288,
        "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
        "kill": 62, "tkill": 200, "tgkill": 234,
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "chroot": 161, "pivot_root": 155,
        "open": 2, "openat": 257, "creat": 85, "openat2": 437, "open_by_handle_at": 304,
        "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316,
        "mkdir": 83, "mkdirat": 258, "rmdir": 84, "truncate": 76, "link": 86, "linkat": 265,
        "symlink": 88, "symlinkat": 266, "chmod": 90, "fchmodat": 268, "chown": 92, "fchownat": 260,
        "mprotect": 10, "pkey_mprotect": 329, "mmap": 9, "memfd_create": 319,
    }),
    "aarch64": (0xC00000B7, {
        "socket": 198, "socketpair": 199, "connect": 203, "bind": 200, "listen": 201, "accept": 202,
        "accept4": 242, "execve": 221, "execveat": 281, "clone": 220, "clone3": 435,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
        "kill": 129, "tkill": 130, "tgkill": 131,
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "chroot": 51, "pivot_root": 41,
        "openat": 56, "openat2": 437, "open_by_handle_at": 265,
        "unlinkat": 35, "renameat": 38, "renameat2": 276, "mkdirat": 34, "truncate": 45, "linkat": 37,
        "symlinkat": 36, "fchmodat": 53, "fchownat": 54,
        "mprotect": 226, "pkey_mprotect": 288, "mmap": 222, "memfd_create": 279,
    }),
}

DENIED = ("socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "execve", "execveat",
          "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev", "tkill", "unshare", "setns",
          "mount", "umount2", "chroot", "pivot_root", "open_by_handle_at", "unlink", "unlinkat", "rename",
          "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "truncate", "link", "linkat", "symlink",
          "symlinkat", "chmod", "fchmodat", "chown", "fchownat", "memfd_create")


class SeccompUnavailable(RuntimeError):
    pass


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("HBBI", code, 0, 0, k & 0xFFFFFFFF)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _arg_lo(i: int) -> int:
    # struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }: low word of args[i] (little endian)
    return 16 + 8 * i


class _Prog:
    """Straight-line BPF: each rule is 'if nr == X: <check>', falling through to ALLOW."""

    def __init__(self, arch: str):
        self.audit, self.nr = _ARCH[arch]
        self.ins: list[bytes] = [
            _stmt(_LD_W_ABS, 4), _jump(_JEQ_K, self.audit, 1, 0), _stmt(_RET_K, _RET_KILL_PROCESS),
            _stmt(_LD_W_ABS, 0),
            # x32 syscalls on x86_64 (nr >= 0x40000000) would bypass the numbers below
            _jump(_JSET_K, 0x40000000, 0, 1), _stmt(_RET_K, _RET_KILL_PROCESS),
        ]

    def deny(self, name: str, action: int = _RET_KILL_PROCESS) -> None:
        if name in self.nr:
            self.ins += [_jump(_JEQ_K, self.nr[name], 0, 1), _stmt(_RET_K, action)]

    def deny_if_flags(self, name: str, arg: int, mask: int, *, inverted: bool = False) -> None:
        """Kill on `name` when args[arg] & mask is set (or, inverted, when it is not set)."""
        if name not in self.nr:
            return
        on_set, on_clear = (0, 1) if not inverted else (1, 0)
        self.ins += [_jump(_JEQ_K, self.nr[name], 0, 4), _stmt(_LD_W_ABS, _arg_lo(arg)),
                     _jump(_JSET_K, mask, on_set, on_clear), _stmt(_RET_K, _RET_KILL_PROCESS),
                     _stmt(_LD_W_ABS, 0)]

    def deny_unless_arg(self, name: str, arg: int, value: int) -> None:
        """Kill on `name` unless args[arg] == value (e.g. signals to our own pid only)."""
        if name not in self.nr:
            return
        self.ins += [_jump(_JEQ_K, self.nr[name], 0, 4), _stmt(_LD_W_ABS, _arg_lo(arg)),
                     _jump(_JEQ_K, value, 1, 0), _stmt(_RET_K, _RET_KILL_PROCESS), _stmt(_LD_W_ABS, 0)]

    def install(self) -> None:
        self.ins.append(_stmt(_RET_K, _RET_ALLOW))
        code = b"".join(self.ins)
        buf = ctypes.create_string_buffer(code, len(code))

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        prog = SockFprog(len(self.ins), ctypes.addressof(buf))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SeccompUnavailable(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
            raise SeccompUnavailable(f"prctl(SECCOMP_MODE_FILTER): {os.strerror(ctypes.get_errno())}")


def _arch() -> str:
    arch = platform.machine()
    if arch not in _ARCH:
        raise SeccompUnavailable(f"no syscall table for architecture {arch}")
    return arch


def confine() -> None:
    """Install the base filter on the calling process (inherited by every thread it starts)."""
    p = _Prog(_arch())
    for name in DENIED:
        p.deny(name)
    p.deny_if_flags("clone", 0, _CLONE_THREAD, inverted=True)        # a thread is fine, a process is not
    p.deny("clone3", _RET_ERRNO | errno.ENOSYS)                        # glibc then falls back to clone
    p.deny("openat2", _RET_ERRNO | errno.ENOSYS)
    p.deny_if_flags("open", 1, _O_WRITE_FLAGS)                         # reading is allowed, writing is not
    p.deny_if_flags("openat", 2, _O_WRITE_FLAGS)
    p.deny("creat")                                                    # creat always writes
    pid = os.getpid()
    p.deny_unless_arg("kill", 0, pid)                                  # abort() signals itself
    p.deny_unless_arg("tgkill", 0, pid)
    p.install()


def lock_exec() -> None:
    """Stack a filter that forbids making memory executable (after the candidate is loaded)."""
    p = _Prog(_arch())
    p.deny_if_flags("mprotect", 2, _PROT_EXEC)
    p.deny_if_flags("pkey_mprotect", 2, _PROT_EXEC)
    p.deny_if_flags("mmap", 2, _PROT_EXEC)
    p.install()
