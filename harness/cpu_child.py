"""Child process for the cpu_cpp backend: load one shared object, call it, report what it did.

Run as `python harness/cpu_child.py MANIFEST.json`. Standard library only, so it starts in tens of
milliseconds (no torch). The parent staged every input as a raw file and keeps the reference
outputs to itself; this process never sees them. Progress goes to `events.log` line by line, so
a crash is attributed to the call that was running.

What it checks around every call, because a kernel is assumed hostile:

- the output is poisoned (0xFF bytes) before each call, so leftovers never pass for results;
- the output sits between canary bytes and an inaccessible guard page: small overruns change a
  canary (reported), large ones fault;
- the output is copied the moment the call returns, then compared again after `settle_s`: a
  kernel whose threads keep writing after it returned is caught;
- inputs are compared with what was staged: a kernel that writes its inputs is caught;
- reruns overwrite a case's inputs *in place* (same pointers) before calling again, and bench
  calls cycle through several input sets, each output poisoned, and that call's inputs and output
  evicted from the caches (harness/evict.py) before it, so it reads them from memory.

All files it writes are opened before the seccomp filter goes on; after that it cannot open a
file for writing, start a process or open a socket, and neither can the candidate.
"""

import ctypes
import json
import mmap
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import evict, seccomp  # noqa: E402
from harness.timing import first_seen, next_set, time_calls  # noqa: E402

SECCOMP_UNAVAILABLE = 122   # exit status the parent maps to harness_error
PAGE = mmap.PAGESIZE
POISON = 0xFF
CANARY = 0x5A
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class KsTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64))]


def _addr(buf: mmap.mmap, keep: list) -> int:
    anchor = ctypes.c_char.from_buffer(buf)
    keep.append(anchor)
    return ctypes.addressof(anchor)


def _tensor(desc: dict, addr: int, keep: list) -> KsTensor:
    shape = (ctypes.c_int64 * len(desc["shape"]))(*desc["shape"])
    strides = (ctypes.c_int64 * len(desc["strides"]))(*desc["strides"])
    keep.extend([shape, strides])
    return KsTensor(addr, desc["dtype_code"], len(desc["shape"]), shape, strides)


class Output:
    """[canary page][output, page-aligned][canary to the next page + one page][guard page]."""

    def __init__(self, desc: dict, keep: list):
        self.n = desc["nbytes"]
        body = -(-max(self.n, 1) // PAGE) * PAGE
        self.total = PAGE + body + 2 * PAGE
        self.map = mmap.mmap(-1, self.total)
        keep.append(self.map)
        base = _addr(self.map, keep)
        self.start, self.end = PAGE, PAGE + self.n
        self.map[:self.start] = bytes([CANARY]) * self.start
        self.map[self.end:self.total - PAGE] = bytes([CANARY]) * (self.total - PAGE - self.end)
        if _libc.mprotect(base + self.total - PAGE, PAGE, 0) != 0:
            raise OSError(ctypes.get_errno(), "mprotect guard page")
        self.tensor = _tensor(desc, base + PAGE, keep)
        self._canary_before = bytes([CANARY]) * self.start
        self._canary_after = bytes([CANARY]) * (self.total - PAGE - self.end)

    def poison(self) -> None:
        ctypes.memset(self.tensor.data, POISON, self.n)

    def snapshot(self) -> bytes:
        return self.map[self.start:self.end]

    def canary_ok(self) -> str | None:
        if self.map[:self.start] != self._canary_before:
            return "before"
        if self.map[self.end:self.total - PAGE] != self._canary_after:
            return "after"
        return None


class Inputs:
    """Input tensors in fresh page-aligned mappings, filled from staged files."""

    def __init__(self, descs: list[dict], keep: list):
        self.maps, self.tensors, self.expected = [], [], []
        for d in descs:
            m = mmap.mmap(-1, max(d["nbytes"], 1))
            keep.append(m)
            self.maps.append(m)
            self.tensors.append(_tensor(d, _addr(m, keep), keep))
            self.expected.append(b"")
        self.array = (KsTensor * max(len(self.tensors), 1))(*self.tensors)
        self.load(descs)

    def load(self, descs: list[dict]) -> None:
        """(Re)write the inputs in place: same addresses, new contents."""
        for i, d in enumerate(descs):
            data = Path(d["path"]).read_bytes()
            self.maps[i][:len(data)] = data
            self.expected[i] = data

    def mutated(self) -> list[int]:
        return [i for i, m in enumerate(self.maps) if m[:len(self.expected[i])] != self.expected[i]]

    def regions(self) -> list[tuple[int, int]]:
        """(address, bytes) of every input."""
        return [(t.data, len(m)) for t, m in zip(self.tensors, self.maps)]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Child:
    def __init__(self, manifest: dict, workdir: Path):
        self.m = manifest
        self.events = open(workdir / "events.log", "a", buffering=1)
        # Every file this process will write is opened now, before the sandbox forbids it.
        self.out_fds = {f: os.open(workdir / f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                        for f in manifest["output_files"]}
        self.result_fd = os.open(workdir / "result.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if manifest["sandbox"]["seccomp"]:
            try:
                seccomp.confine()
            except seccomp.SeccompUnavailable as e:   # never run a candidate less confined than promised
                sys.stderr.write(f"kscout-harness: seccomp unavailable: {e}\n")
                sys.exit(SECCOMP_UNAVAILABLE)
        # The harness's own eviction routine, loaded before the candidate (which cannot replace it).
        self.evict = evict.load(manifest["evict_library"])[0] if manifest.get("evict_library") else None
        lib = ctypes.CDLL(manifest["library"], mode=ctypes.RTLD_LOCAL)
        if manifest["sandbox"]["seccomp"]:
            seccomp.lock_exec()       # the candidate is loaded; no memory may become executable now
        self.fn = getattr(lib, manifest["entry_point"])
        self.fn.restype = ctypes.c_int
        self.fn.argtypes = [ctypes.POINTER(KsTensor), ctypes.c_int32, ctypes.POINTER(KsTensor)]
        self.settle = manifest["timing"]["settle_s"]

    def call(self, ins: Inputs, out: Output) -> int:
        return self.fn(ins.array, len(ins.tensors), ctypes.byref(out.tensor))

    def checked_call(self, label: str, ins: Inputs, out: Output, out_file: str) -> dict:
        """Poison, call, snapshot at return; then wait and look for late writes, canaries, inputs."""
        out.poison()
        self.events.write(f"start {label}\n")
        rc = self.call(ins, out)
        snap = out.snapshot()
        self.events.write(f"end {label} {rc}\n")
        if self.settle:
            time.sleep(self.settle)
        _write_all(self.out_fds[out_file], snap)
        return {"rc": rc, "async": out.snapshot() != snap, "canary": out.canary_ok(), "mutated": ins.mutated()}

    def verify(self) -> dict:
        checks: list[dict] = []
        live: dict[int, tuple[Inputs, Output, list]] = {}
        for i, case in enumerate(self.m["cases"]):
            if case.get("rerun_of") is not None:
                ins, out, _ = live[case["rerun_of"]]
                ins.load(case["inputs"])          # same buffers, some elements changed
            else:
                live.clear()                      # a case's buffers live until its reruns are done
                keep: list = []
                ins, out = Inputs(case["inputs"], keep), Output(case["output"], keep)
                live[i] = (ins, out, keep)
            checks.append(self.checked_call(str(i), ins, out, case["output"]["file"]))
        return {"checks": checks}

    def bench(self) -> dict:
        keep: list = []
        sets = [(Inputs(c["inputs"], keep), Output(c["output"], keep)) for c in self.m["cases"]]
        flush = mmap.mmap(-1, self.m["flush_bytes"]) if self.m["flush_bytes"] else None
        flush_addr = _addr(flush, keep) if flush else 0
        order: list[int] = []
        state = {"k": 0, "evicted": 0}

        def before(warmup: bool) -> None:
            # warmup always uses set 0; timed calls go 1, 2, ..., R-1, 0, 1, ... (or timing.schedule):
            # each of sets 1..R-1 is first seen by a timed call, which is what the memoization check compares
            k = 0 if warmup else next_set(len(order), len(sets), self.m["timing"].get("schedule"))
            if not warmup:
                order.append(k)
            state["k"] = k
            ins, out = sets[k]
            out.poison()
            if self.evict is not None:     # this call's working set, straight from memory
                for addr, n in [*ins.regions(), (out.tensor.data, out.n)]:
                    self.evict(addr, n)
                    state["evicted"] += n
            elif flush:
                ctypes.memset(flush_addr, len(order) & 0xFF, len(flush))

        self.events.write("start bench\n")
        times = time_calls(lambda: self.call(*sets[state["k"]]), self.m["timing"], before)
        self.events.write("end bench 0\n")
        checks = []
        for k, (ins, out) in enumerate(sets):
            if k not in order:             # never timed (too few repeats): one call so it can be judged
                out.poison()
                self.call(ins, out)
            snap = out.snapshot()
            if self.settle:
                time.sleep(self.settle)
            _write_all(self.out_fds[self.m["cases"][k]["output"]["file"]], snap)
            checks.append({"rc": 0, "async": out.snapshot() != snap, "canary": out.canary_ok(),
                           "mutated": ins.mutated()})
        return {"checks": checks, "times": times, "fresh": first_seen(order), "evicted_bytes": state["evicted"]}

    def main(self) -> int:
        result = self.verify() if self.m["mode"] == "verify" else self.bench()
        _write_all(self.result_fd, json.dumps(result).encode())
        return 0


if __name__ == "__main__":
    manifest_path = Path(sys.argv[1])
    sys.exit(Child(json.loads(manifest_path.read_text()), manifest_path.parent).main())
