"""Winners as git branches: the top-k kernels of a run, each with the lineage that found it.

Branch `kscout/<workload>/<run-id>/<rank>` (rank 1 is the best) is a chain of commits, one per
ancestor attempt in the strategy tree, root first: `git log` tells how the kernel was reached,
each message stating the strategy, the verdict, the speedups and the SOL score. The tip holds:

- `kernel.cpp`, the candidate source;
- `evidence.json`, its packet;
- a `README.md` with the numbers and the exact replay command;
- `model_new.py`, a drop-in PyTorch module in KernelBench's `ModelNew` shape, which builds and
  calls the kernel, plus `reference.py` and `include/kscout.h`, which it needs.

`git diff kscout/w/r/1 kscout/w/r/2` shows what differs between two ranks. Branches are
rewritten whenever the ranking changes during a run (they follow the ranking), and git plumbing
never touches a working tree, index or HEAD.
"""

from __future__ import annotations

from pathlib import Path

from harness import backends
from harness.backends.cpu_cpp import INCLUDE_DIR
from harness.evidence import EvidencePacket
from memory.gitexport import export_lineage
from memory.store import Store

MODEL_NEW = '''"""Drop-in PyTorch module for the kernel in kernel.cpp (KernelBench's ModelNew shape).

    from model_new import ModelNew, Model, get_inputs, get_init_inputs
    model = ModelNew(*get_init_inputs())
    out = model(*get_inputs())          # same result as Model(...)(...), computed by kernel.cpp

The kernel is built once with the system C++ compiler (flags as kscout used them) into
~/.cache/kscout/model_new/, and called through its C ABI (include/kscout.h). Parameters and
buffers come from the reference Model, in state_dict order, after the forward arguments, exactly
as during the search. CPU tensors of the dtypes in DTYPES only.
"""

import copy
import ctypes
import hashlib
import pathlib
import subprocess

import torch

from reference import Model, get_init_inputs, get_inputs  # noqa: F401  (re-exported)

HERE = pathlib.Path(__file__).resolve().parent
FLAGS = {flags!r}
DTYPES = {{torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3, torch.int32: 4, torch.int64: 5}}


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("dtype", ctypes.c_int32), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64))]


def _build():
    src = (HERE / "kernel.cpp").read_text()
    key = hashlib.sha256((src + " ".join(FLAGS)).encode()).hexdigest()[:16]
    out = pathlib.Path.home() / ".cache" / "kscout" / "model_new" / f"{{key}}.so"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["g++", *FLAGS, f"-I{{HERE / 'include'}}", str(HERE / "kernel.cpp"), "-o", str(out)],
                       check=True)
    lib = ctypes.CDLL(str(out))
    fn = lib.kscout_forward
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.POINTER(_Tensor), ctypes.c_int32, ctypes.POINTER(_Tensor)]
    return fn


def _describe(t, keep):
    shape = (ctypes.c_int64 * t.dim())(*t.shape)
    strides = (ctypes.c_int64 * t.dim())(*t.stride())
    keep += [shape, strides]
    return _Tensor(t.data_ptr(), DTYPES[t.dtype], t.dim(), shape, strides)


class ModelNew(torch.nn.Module):
    def __init__(self, *init_inputs):
        super().__init__()
        self.ref = Model(*init_inputs)
        self._fn = _build()

    def forward(self, *args):
        tensors = [a.contiguous() for a in args if torch.is_tensor(a)]
        tensors += [p.detach().contiguous() for p in self.ref.state_dict().values()]
        with torch.no_grad():   # the output's shape and dtype, from the reference on meta tensors
            meta = copy.deepcopy(self.ref).to("meta")(*[a.to("meta") if torch.is_tensor(a) else a for a in args])
        out = torch.empty(meta.shape, dtype=meta.dtype)
        keep = []
        ins = (_Tensor * max(len(tensors), 1))(*[_describe(t, keep) for t in tensors])
        rc = self._fn(ins, len(tensors), ctypes.byref(_describe(out, keep)))
        if rc != 0:
            raise RuntimeError(f"kscout_forward returned {{rc}}")
        return out
'''


def lineage(store: Store, run_id: str, attempt_id: str) -> list[EvidencePacket]:
    """The attempt and the attempts it was refined from, root first: at each step, the best
    (else latest) attempt of the parent strategy node."""
    chain = [store.packet(attempt_id)]
    nodes = {n.id: n for n in store.nodes(run_id)}
    node = nodes.get(chain[0].candidate.node_id or "")
    while node is not None and node.parent_id in nodes:
        parent = nodes[node.parent_id]
        best = store.node_stats(run_id, parent.id).best_attempt_id
        if best is None:
            rows = store.attempts(run_id, parent.id)
            best = rows[-1].id if rows else None
        if best is None:
            break
        chain.append(store.packet(best))
        node = parent
    return list(reversed(chain))


def _numbers(p: EvidencePacket) -> str:
    if not p.bench:
        return f"{p.verdict.value} ({p.failure_class.value if p.failure_class else ''})"
    sp = ", ".join(f"{v:.2f}x over {k}" for k, v in p.bench.speedup.items())
    sol = f"; SOL {p.bench.roofline.sol:.2f}" if p.bench.roofline and p.bench.roofline.sol is not None else ""
    return f"{p.verdict.value}: {p.bench.candidate.median_s * 1e3:.4g} ms, {sp}{sol}"


def _message(p: EvidencePacket, rank: int | None = None) -> str:
    head = (f"rank {rank}: " if rank else "") + (p.candidate.strategy.split(" [refine:")[0] or "kernel")
    return (f"{head[:200]}\n\n{_numbers(p)}\nattempt {p.id}, node {p.candidate.node_id}, "
            f"params {p.candidate.params}\nreplay: kscout replay evidence.json\n")


def _readme(p: EvidencePacket, workload: str, run_id: str, rank: int) -> str:
    lines = [f"# {workload}: rank {rank} kernel of run {run_id}", "", f"Strategy: {p.candidate.strategy}", ""]
    if p.bench:
        lines += [f"Median {p.bench.candidate.median_s * 1e3:.4g} ms (IQR {p.bench.candidate.iqr_rel * 100:.1f}% of the "
                  f"median) on shape {p.bench.shape} {p.bench.dims}:", ""]
        lines += [f"- {v:.2f}x over {k}" for k, v in p.bench.speedup.items()]
        if p.bench.roofline and p.bench.roofline.sol is not None:
            lines += [f"- {p.bench.roofline.sol:.2f} of this machine's roofline bound "
                      f"({p.bench.roofline.achieved_gbps:.1f} GB/s, {p.bench.roofline.achieved_gflops:.1f} GFLOP/s achieved)"]
        lines.append("")
    lines += ["Replay (re-verifies on every shape, hidden ones included, and re-times on this machine):", "",
              "    kscout replay evidence.json", "",
              "Use from Python (builds kernel.cpp with g++ on first use):", "",
              "    from model_new import ModelNew, get_inputs, get_init_inputs",
              "    out = ModelNew(*get_init_inputs())(*get_inputs())", "",
              "`git log` on this branch is the kernel's lineage in the strategy tree, one commit per attempt.", ""]
    if p.compile:
        lines += [f"Compiled with `{' '.join(p.compile.command)}`.", ""]
    return "\n".join(lines)


def export_top(store: Store, run_id: str, workload: str, reference: Path, repo: Path, k: int) -> list[str]:
    """Write the run's top-k branches; returns their names, best first."""
    branches = []
    for rank, a in enumerate(store.top_attempts(run_id, k), start=1):
        chain = lineage(store, run_id, a.id)
        steps = []
        for i, p in enumerate(chain):
            files = {backends.source_file(p.candidate.backend): p.candidate.source,
                     "evidence.json": p.model_dump_json(indent=2)}
            last = i == len(chain) - 1
            if last:
                files["README.md"] = _readme(p, workload, run_id, rank)
                if p.candidate.backend == "cpu_cpp" and p.compile:
                    flags = [f for f in p.compile.command[1:] if f.startswith("-") and not f.startswith("-I")
                             and f != "-o"]
                    files["model_new.py"] = MODEL_NEW.format(flags=flags)
                    files["reference.py"] = reference.read_text()
                    files["include/kscout.h"] = (INCLUDE_DIR / "kscout.h").read_text()
            steps.append((files, _message(p, rank if last else None)))
        branch = f"kscout/{workload}/{run_id}/{rank}"
        export_lineage(repo, branch, steps)
        branches.append(branch)
    return branches
