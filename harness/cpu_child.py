"""Child process for the cpu_cpp backend: load one shared object, call it, write outputs.

Run as `python harness/cpu_child.py MANIFEST.json`. Standard library only, so it starts in tens of
milliseconds (no torch). The parent prepared every input as a raw file and keeps the reference
outputs to itself; this process never sees them. Progress goes to `events.log` line by line, so
a crash is attributed to the case that was running.
"""

import ctypes
import json
import mmap
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.timing import time_calls  # noqa: E402


class KsTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64))]


def _buffer(nbytes: int) -> mmap.mmap:
    # Anonymous mappings are page-aligned, like a real allocator's large blocks.
    return mmap.mmap(-1, max(nbytes, 1))


def _tensor(desc: dict, buf: mmap.mmap, keep: list) -> KsTensor:
    shape = (ctypes.c_int64 * len(desc["shape"]))(*desc["shape"])
    strides = (ctypes.c_int64 * len(desc["strides"]))(*desc["strides"])
    anchor = ctypes.c_char.from_buffer(buf)
    keep.extend([shape, strides, anchor])
    return KsTensor(ctypes.addressof(anchor), desc["dtype_code"], len(desc["shape"]), shape, strides)


def _load_case(case: dict, workdir: Path, keep: list):
    ins = []
    for d in case["inputs"]:
        buf = _buffer(d["nbytes"])
        buf.write((workdir / d["file"]).read_bytes())
        keep.append(buf)
        ins.append(_tensor(d, buf, keep))
    out_buf = _buffer(case["output"]["nbytes"])
    keep.append(out_buf)
    out = _tensor(case["output"], out_buf, keep)
    arr = (KsTensor * max(len(ins), 1))(*ins)
    return arr, len(ins), out, out_buf


def _poison(buf: mmap.mmap) -> None:
    ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(buf)), 0xFF, len(buf))


def main() -> int:
    manifest_path = Path(sys.argv[1])
    m = json.loads(manifest_path.read_text())
    workdir = manifest_path.parent
    events = open(workdir / "events.log", "a", buffering=1)
    lib = ctypes.CDLL(m["library"], mode=ctypes.RTLD_LOCAL)
    fn = getattr(lib, m["entry_point"])
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(KsTensor), ctypes.c_int32, ctypes.POINTER(KsTensor)]
    result = {"cases": [], "times": None}
    for i, case in enumerate(m["cases"]):
        keep: list = []
        arr, n, out, out_buf = _load_case(case, workdir, keep)
        nbytes = case["output"]["nbytes"]
        _poison(out_buf)
        events.write(f"start {i}\n")
        rc = fn(arr, n, ctypes.byref(out))
        events.write(f"end {i} {rc}\n")
        entry = {"rc": rc}
        if rc == 0 and m["mode"] == "bench":
            result["times"] = time_calls(lambda: fn(arr, n, ctypes.byref(out)), m["timing"])
            events.write(f"timed {i}\n")
        (workdir / case["output"]["file"]).write_bytes(out_buf[:nbytes])
        result["cases"].append(entry)
        del arr, out, keep, out_buf
    (workdir / "result.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
