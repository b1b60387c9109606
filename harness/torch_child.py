"""Child process for the Triton, CUDA and HIP backends: load one candidate, call it, report what it did.

Run as `python -I harness/torch_child.py MANIFEST.json`, or forked from harness/forkserver.py,
which imported this module (so torch and triton) once and calls `run(MANIFEST)` in each child;
TRITON_INTERPRET then comes from the server's environment and must match the manifest's
`interpret`. The manifest's `loader` says what the
candidate is: `python` (a module with `kscout_forward(*inputs, out)`, the Triton backend) or
`native` (a shared library built by nvcc/hipcc with the kscout_gpu.h ABI, called through ctypes
with the tensors' device pointers and the current stream). Its `mode` is

- `check`: import the module (its top-level code runs here, sandboxed) and look for the entry
  point. Exit 0: found; 3: the import raised (traceback on stderr); 4: no callable entry point.
- `verify` / `bench`: call `kscout_forward(*inputs, out)` on the staged cases, like cpu_child.
- `profile` (GPU only, run under Nsight Compute by harness/profile.py): call once on the first
  case, then once more between cudaProfilerStart and Stop, the only call ncu measures.

`interpret` in the manifest says where kernels run. True: `TRITON_INTERPRET=1` is set before
triton is imported and every tensor is on the CPU (Triton's numpy interpreter: results are real,
times are not, so bench mode calls each rotation set once and reports no times). False: tensors
live on `cuda:0` (NVIDIA or ROCm torch) and bench mode times each call with CUDA events on the
current stream (after a device-wide synchronisation, inputs rotated, L2 flushed in between).

What it checks around every call, the same as cpu_child does for C++:

- the output is poisoned (0xFF bytes) before each call and sits between canary bytes (4 KiB each
  side, in one allocation), so leftovers and near overruns are caught;
- the output is copied once the current stream is synchronised, then compared again after a
  device-wide synchronisation and `settle_s`: work left on another stream or thread is caught;
- inputs are compared bitwise with what was staged; reruns overwrite inputs in place.

A candidate's exception is caught, its traceback kept for the parent (`error` in result.json) and
the call recorded with status 1: it is the candidate's failure, never a harness error. A Triton
CompilationError at the first launch is reported as a compile error.

Interpreter mode installs the seccomp filter (after torch and triton are imported, before the
candidate is) and the no-exec-memory lock after the candidate is loaded. GPU mode cannot: Triton's
JIT runs ptxas/ld.lld as subprocesses and writes its kernel cache at the first launch of each
specialisation, so there the sandbox is rlimits, the environment allowlist and an empty cwd only.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path

if __name__ == "__main__":
    # Before triton is imported anywhere: the interpreter is chosen at import time. (Forked from
    # harness/forkserver.py instead, this module was imported with TRITON_INTERPRET already set.)
    os.environ["TRITON_INTERPRET"] = "1" if json.loads(Path(sys.argv[1]).read_text())["interpret"] else "0"
    sys.dont_write_bytecode = True    # importing may not write .pyc files (the sandbox forbids writes)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ctypes  # noqa: E402
import importlib.util  # noqa: E402

import torch  # noqa: E402

try:   # imported before the sandbox closes (the candidate imports it too); a native candidate needs none
    import triton  # noqa: E402,F401
except Exception:  # noqa: BLE001  (absent or broken: a Triton candidate's own import then says why)
    pass

from harness import seccomp  # noqa: E402
from harness.timing import cuda_event_clock, first_seen, next_set, time_calls  # noqa: E402

SECCOMP_UNAVAILABLE = 122
IMPORT_FAILED, NO_ENTRY = 3, 4
HARNESS_MISMATCH = 123
PAD = 4096
POISON, CANARY = 0xFF, 0x5A
# Matches harness.cases.DTYPE_CODES (kept here so this process needs torch only).
DTYPES = {0: torch.float32, 1: torch.float64, 2: torch.float16, 3: torch.bfloat16, 4: torch.int32,
          5: torch.int64, 6: torch.int8, 7: torch.uint8}
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = torch.device("cpu") if INTERPRET else torch.device("cuda", 0)


def _sync(device_wide: bool = False) -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize() if device_wide else torch.cuda.current_stream().synchronize()


def _host_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    return t.view(torch.uint8).numpy().tobytes()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("kscout_candidate", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # from its file, so @triton.jit can read the kernels' source
    return module


class KsTensor(ctypes.Structure):
    """ks_tensor from include/kscout.h."""
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64))]


class NativeReturnCode(RuntimeError):
    pass


def load_library(path: str, entry_point: str):
    """The kscout_gpu.h entry point as a Python callable taking (*inputs, out) tensors."""
    fn = getattr(ctypes.CDLL(path), entry_point)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(KsTensor), ctypes.c_int32, ctypes.POINTER(KsTensor), ctypes.c_void_p]
    codes = {v: k for k, v in DTYPES.items()}
    # The argument structs for a set of tensors, built once: a timed call then costs one ctypes
    # call, not a Python loop building structs (tens of microseconds next to a 30 us kernel).
    built: dict[tuple, tuple] = {}

    def args_for(tensors) -> tuple:
        key = tuple((t.data_ptr(), tuple(t.shape), t.dtype) for t in tensors)
        if key not in built:
            keep = []                     # the shape/stride arrays must live as long as the structs

            def ks(t: torch.Tensor) -> KsTensor:
                shape, strides = (ctypes.c_int64 * t.dim())(*t.shape), (ctypes.c_int64 * t.dim())(*t.stride())
                keep.append((shape, strides))
                return KsTensor(t.data_ptr(), codes[t.dtype], t.dim(), shape, strides)

            *ins, out = tensors
            arr = (KsTensor * max(len(ins), 1))(*[ks(t) for t in ins])
            built[key] = (arr, len(ins), ks(out), keep)
        return built[key]

    def forward(*tensors):
        arr, n_in, o, _ = args_for(tensors)
        # On the CPU (tests of this loader with a host-code library) there is no stream: NULL.
        stream = torch.cuda.current_stream().cuda_stream if DEVICE.type == "cuda" else 0
        rc = fn(arr, n_in, ctypes.byref(o), ctypes.c_void_p(stream))
        if rc != 0:
            raise NativeReturnCode(f"{entry_point} returned {rc}")

    return forward


class Output:
    """One uint8 allocation: [canary PAD][output, poisoned before each call][canary PAD]."""

    def __init__(self, desc: dict):
        self.n = desc["nbytes"]
        self.buf = torch.full((self.n + 2 * PAD,), CANARY, dtype=torch.uint8, device=DEVICE)
        self.tensor = self.buf[PAD:PAD + self.n].view(DTYPES[desc["dtype_code"]]).view(desc["shape"])

    def poison(self) -> None:
        self.buf[PAD:PAD + self.n].fill_(POISON)

    def snapshot(self) -> bytes:
        return _host_bytes(self.buf[PAD:PAD + self.n])

    def canary_ok(self):
        if not bool((self.buf[:PAD] == CANARY).all()):
            return "before"
        if not bool((self.buf[PAD + self.n:] == CANARY).all()):
            return "after"
        return None


class Inputs:
    def __init__(self, descs: list[dict]):
        self.tensors = [torch.empty(d["shape"], dtype=DTYPES[d["dtype_code"]], device=DEVICE) for d in descs]
        self.expected: list[torch.Tensor] = []
        self.load(descs)

    def load(self, descs: list[dict]) -> None:
        """(Re)write the inputs in place: same storage, new contents."""
        self.expected = []
        for t, d in zip(self.tensors, descs):
            raw = bytearray(Path(d["path"]).read_bytes())
            host = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
            t.view(torch.uint8).view(-1).copy_(host.to(DEVICE))
            self.expected.append(t.view(torch.uint8).clone())
        _sync(True)

    def mutated(self) -> list[int]:
        return [i for i, (t, e) in enumerate(zip(self.tensors, self.expected)) if not torch.equal(t.view(torch.uint8), e)]


class CandidateFailed(Exception):
    def __init__(self, label: str, tb: str, cls: str):
        super().__init__(tb)
        self.label, self.tb, self.cls = label, tb, cls


def _failure_class(e: BaseException) -> str:
    names = {c.__name__ for c in type(e).__mro__}
    return "compile_error" if "CompilationError" in names else "runtime_error"


class Child:
    def __init__(self, m: dict, workdir: Path):
        self.m = m
        self.events = open(workdir / "events.log", "a", buffering=1)
        self.out_fds = {f: os.open(workdir / f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                        for f in m["output_files"]}
        self.result_fd = os.open(workdir / "result.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if m["sandbox"]["seccomp"]:
            try:
                seccomp.confine()
            except seccomp.SeccompUnavailable as e:
                sys.stderr.write(f"kscout-harness: seccomp unavailable: {e}\n")
                sys.exit(SECCOMP_UNAVAILABLE)
        self.fn = load_library(m["library"], m["entry_point"]) if m.get("loader") == "native" else \
            getattr(load_module(m["module"]), m["entry_point"])
        if m["sandbox"]["seccomp"]:
            seccomp.lock_exec()
        self.settle = m["timing"]["settle_s"]

    def call(self, ins: Inputs, out: Output, label: str) -> None:
        try:
            ret = self.fn(*ins.tensors, out.tensor)
        except Exception as e:  # the candidate's failure, reported as such
            raise CandidateFailed(label, traceback.format_exc(), _failure_class(e)) from None
        if ret is not None and ret is not out.tensor:
            raise CandidateFailed(label, f"{self.m['entry_point']} returned a {type(ret).__name__}: it must write "
                                  "into `out` (its last argument) and return None", "runtime_error")

    def checked_call(self, label: str, ins: Inputs, out: Output, out_file: str) -> dict:
        out.poison()
        _sync(True)
        self.events.write(f"start {label}\n")
        self.call(ins, out, label)
        _sync()                               # the current stream: what the caller would wait for
        snap = out.snapshot()
        self.events.write(f"end {label} 0\n")
        _sync(True)                           # every stream: work hidden on a side stream shows now
        if self.settle:
            time.sleep(self.settle)
        _write_all(self.out_fds[out_file], snap)
        return {"rc": 0, "async": out.snapshot() != snap, "canary": out.canary_ok(), "mutated": ins.mutated()}

    def verify(self) -> dict:
        checks: list[dict] = []
        live: dict[int, tuple[Inputs, Output]] = {}
        for i, case in enumerate(self.m["cases"]):
            if case.get("rerun_of") is not None:
                ins, out = live[case["rerun_of"]]
                ins.load(case["inputs"])
            else:
                live.clear()
                ins, out = Inputs(case["inputs"]), Output(case["output"])
                live[i] = (ins, out)
            checks.append(self.checked_call(str(i), ins, out, case["output"]["file"]))
        return {"checks": checks}

    def bench(self) -> dict:
        sets = [(Inputs(c["inputs"]), Output(c["output"])) for c in self.m["cases"]]
        files = [c["output"]["file"] for c in self.m["cases"]]
        if INTERPRET:
            # Times from the interpreter measure numpy, not a kernel: each set is called once, so
            # its output can be re-checked, and no time is reported.
            checks = [self.checked_call(str(k), ins, out, files[k]) for k, (ins, out) in enumerate(sets)]
            return {"checks": checks, "times": None, "fresh": [], "interpreted": True}
        flush = torch.empty(self.m["flush_bytes"] // 4, dtype=torch.float32, device=DEVICE) \
            if self.m["flush_bytes"] else None
        order: list[int] = []
        state = {"k": 0}

        def before(warmup: bool) -> None:
            k = 0 if warmup else next_set(len(order), len(sets), self.m["timing"].get("schedule"))
            if not warmup:
                order.append(k)
            state["k"] = k
            sets[k][1].poison()
            if flush is not None:
                flush.fill_(float(len(order)))   # evicts L2 between timed calls
            _sync(True)

        def timed() -> None:
            self.call(sets[state["k"]][0], sets[state["k"]][1], "bench")

        self.events.write("start bench\n")
        # Device events around each call on the current stream: the same clock times the torch
        # baselines on the GPU (harness/benchmark.py).
        times = time_calls(timed, self.m["timing"], before, clock=cuda_event_clock())
        self.events.write("end bench 0\n")
        checks = []
        for k, (ins, out) in enumerate(sets):
            if k not in order:
                out.poison()
                self.call(ins, out, str(k))
            _sync()
            snap = out.snapshot()
            _sync(True)
            if self.settle:
                time.sleep(self.settle)
            _write_all(self.out_fds[files[k]], snap)
            checks.append({"rc": 0, "async": out.snapshot() != snap, "canary": out.canary_ok(),
                           "mutated": ins.mutated()})
        return {"checks": checks, "times": times, "fresh": first_seen(order)}

    def profile(self) -> dict:
        """One checked call outside the profiled range (Triton's JIT compiles at the first launch,
        allocations are first touched), then one between cudaProfilerStart and Stop: with
        `ncu --profile-from-start off`, only the kernels of that call are profiled."""
        if DEVICE.type != "cuda":
            raise RuntimeError("profile mode needs a GPU (the interpreter has no kernels to profile)")
        case = self.m["cases"][0]
        ins, out = Inputs(case["inputs"]), Output(case["output"])
        check = self.checked_call("0", ins, out, case["output"]["file"])
        out.poison()
        _sync(True)
        torch.cuda.profiler.start()
        try:
            self.call(ins, out, "profile")
            _sync(True)
        finally:
            torch.cuda.profiler.stop()
        return {"checks": [check], "profiled": True}

    def main(self) -> int:
        try:
            mode = self.m["mode"]
            result = self.verify() if mode == "verify" else self.profile() if mode == "profile" else self.bench()
        except CandidateFailed as e:
            self.events.write(f"end {e.label} 1\n")
            result = {"checks": [], "error": e.tb, "error_class": e.cls}
        _write_all(self.result_fd, json.dumps(result).encode())
        return 0


def check(m: dict) -> int:
    """Import the candidate and look for its entry point (the backend's compile step)."""
    if m["sandbox"]["seccomp"]:
        try:
            seccomp.confine()
        except seccomp.SeccompUnavailable as e:
            sys.stderr.write(f"kscout-harness: seccomp unavailable: {e}\n")
            return SECCOMP_UNAVAILABLE
    try:
        module = load_module(m["module"])
    except BaseException:  # SyntaxError, ImportError, anything its top-level code raises
        sys.stderr.write(traceback.format_exc())
        return IMPORT_FAILED
    if not callable(getattr(module, m["entry_point"], None)):
        sys.stderr.write(f"the module defines no callable `{m['entry_point']}`; define "
                         f"def {m['entry_point']}(*inputs, out) that launches the kernels and writes into out\n")
        return NO_ENTRY
    return 0


def run(manifest_path: str) -> int:
    m = json.loads(Path(manifest_path).read_text())
    if bool(m["interpret"]) != INTERPRET:
        sys.stderr.write(f"kscout-harness: the manifest asks for interpret={m['interpret']}, but this process "
                         f"imported triton with TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')}\n")
        return HARNESS_MISMATCH
    return check(m) if m["mode"] == "check" else Child(m, Path(manifest_path).parent).main()


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
