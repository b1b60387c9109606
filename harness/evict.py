"""Cache eviction between timed CPU calls: clflushopt over the next call's working set.

Each timed call of a candidate or a torch baseline must do its whole job from memory. The
harness evicts the call's inputs (parameters included) and its output, which it has just
poisoned, with clflushopt (clflush on CPUs without it) from a small library it builds itself
(harness/include/ks_evict.cpp), so the cost is proportional to the bytes evicted. Where that
library cannot be built or cannot evict (no compiler, not x86), the caller falls back to
writing twice the last-level cache (cpu_cpp.cache_flush), which evicts anything but costs
2 x LLC of writes per call.

What stays cached across calls either way: nothing of the inputs or output. What the fallback
also evicted and eviction does not: a kernel's own static workspace and the baselines' internal
temporaries (both sides keep theirs).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "include" / "ks_evict.cpp"


@lru_cache(maxsize=4)
def library(cxx: str, cache_dir: Path) -> tuple[str, str] | None:
    """(path of the built library, its method: 'clflushopt' or 'clflush'); None where eviction is
    unavailable (then the caller writes 2 x LLC instead). Built once per compiler and cache."""
    from harness.backends.cpu_cpp import compiler_version
    src = SOURCE.read_text()
    flags = ["-O2", "-shared", "-fPIC", "-std=c++17"]
    key = hashlib.sha256("\0".join([src, *flags, compiler_version(cxx)]).encode()).hexdigest()[:24]
    so = Path(cache_dir) / "evict" / key / "libks_evict.so"
    if not so.is_file():
        so.parent.mkdir(parents=True, exist_ok=True)
        # Built beside its final name, then renamed: workers building at once never load half a file.
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=so.parent)
        os.close(fd)
        try:
            proc = subprocess.run([cxx, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                return None
            os.replace(tmp, so)
        except (OSError, subprocess.TimeoutExpired):
            return None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    try:
        method = load(str(so))[1]
    except OSError:
        return None
    return (str(so), method) if method else None


def load(path: str):
    """(ks_evict as a ctypes function, the method name) from a built library."""
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    lib.ks_evict_method.restype = ctypes.c_char_p
    fn = lib.ks_evict
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn, lib.ks_evict_method().decode()
