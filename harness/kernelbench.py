"""Import a KernelBench-format problem file unchanged: infer its workload contract.

A KernelBench file defines `class Model(nn.Module)`, `get_inputs()`, `get_init_inputs()` and its
problem sizes as module-level integers (`batch_size = 16`, `dim = 16384`). Nothing else is
declared, so the importer works the rest out by running the file (never at full size):

- sizes: every module-level integer assignment. Sizes below 8 are taken as structural (a
  reduction axis, a kernel size, a stride): never scaled, never varied by hidden shapes.
- fit: the given sizes are sized on meta tensors (no memory). When the working set (inputs,
  parameters, output) exceeds the memory budget or the FLOP count the time budget, the largest
  scalable size is halved until it fits; a size whose halving breaks the problem (a reshape that
  needs divisibility) is left alone. Every change is reported.
- shape suite: the fitted sizes are the timed (bench) shape; a mid and a tiny variant with odd
  sizes (tails) are added when the problem accepts them.
- hidden shapes: a size whose ±1 change breaks the problem is pinned (`verify.fixed_dims`).
- tolerance: the reference is run in float32 and float64 on a real shape; atol/rtol are 32x
  the float32 reference's own error there (floors 1e-6 / 1e-5).
- input distributions: normal, uniform, large, negative, outliers — minus any for which the
  reference itself is not finite.
- cost: FLOPs from torch's FLOP counter (matmul/conv/attention; one FLOP per output element
  when it counts nothing, i.e. memory-bound ops), bytes = every tensor read once plus the
  output written once; both written as expressions over the sizes when they are monomials in
  them (checked on every shape), else as the bench shape's constant.
- family: the shipped workloads whose templates compute the same function. Each shipped
  reference is called with this problem's kernel inputs (its parameters swapped for this
  problem's by torch.func.functional_call) on two shapes; equal outputs on both mean the shipped
  family's templates apply. No match gives family "generic": the offline proposer has no
  templates for it, an LLM proposer (`--model`) does the writing.

Only torch and pydantic: this runs wherever the harness does.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from pydantic import BaseModel, Field

from harness import workload as wl
from harness.cases import fill

STRUCTURAL_BELOW = 8            # sizes under this are axes, kernel sizes, strides: kept as given
MAX_BYTES = 128 * 2**20         # working set of the timed shape (inputs + parameters + output)
MAX_FLOPS = 2e10                # ~0.1-0.2 s of eager fp32 on a 2-core AVX2 machine
CANDIDATE_DISTRIBUTIONS = ["normal", "uniform", "large", "negative", "outliers"]
GENERIC_FAMILY = "generic"


class ImportProblem(ValueError):
    """A KernelBench file that cannot be imported; the message names the file and the fix."""


class Footprint(BaseModel):
    bytes: int                   # inputs + parameters + output, each once
    flops: float                 # as the offline cost model counts them (see module doc)
    tensors: list[int]           # numel of each input, parameter and the output, in ABI order + output
    elem_sizes: list[int]


class Imported(BaseModel):
    """What the importer inferred, and why: written into workload.toml as comments."""

    source: Path
    name: str
    given: dict[str, int]
    shapes: list[wl.ShapeCase]
    fixed_dims: list[str] = Field(default_factory=list)
    hidden_shapes: bool = True
    family: str
    tolerance: wl.Tolerance
    distributions: list[str]
    flops: str
    bytes: str
    notes: list[str] = Field(default_factory=list)   # everything worth telling the user

    def toml(self) -> str:
        lines = [f"# Imported from {self.source.name} by `kscout import` (KernelBench format, reference.py is",
                 "# the file unchanged). What was inferred and why:"]
        lines += [f"#   - {n}" for n in self.notes]
        lines += ["", f'name = "{self.name}"', f'family = "{self.family}"',
                  f'description = "KernelBench problem {self.source.stem}"', 'backends = ["cpu_cpp"]',
                  'dtypes = ["float32"]', ""]
        for s in self.shapes:
            dims = ", ".join(f"{k} = {v}" for k, v in s.dims.items())
            lines += ["[[shapes]]", f'name = "{s.name}"', f"dims = {{ {dims} }}"]
            if s.bench:
                lines += ["bench = true", f'distributions = ["{self.distributions[0]}"]']
            lines.append("")
        lines += ["[tolerance.float32]", f"atol = {self.tolerance.atol:g}", f"rtol = {self.tolerance.rtol:g}", "",
                  "[inputs]", "distributions = [" + ", ".join(f'"{d}"' for d in self.distributions) + "]",
                  "seeds = [0, 1]", "", "[cost]", f'flops = "{self.flops}"', f'bytes = "{self.bytes}"', "",
                  "[limits]", "compile_s = 60", "run_s = 120", "", "[verify]",
                  "fixed_dims = [" + ", ".join(f'"{d}"' for d in self.fixed_dims) + "]",
                  f"hidden_shapes = {'true' if self.hidden_shapes else 'false'}", ""]
        return "\n".join(lines)


# --- reading the file ---------------------------------------------------------------------------

def module_sizes(path: Path) -> dict[str, int]:
    """Module-level `NAME = <integer expression>` assignments, in order (earlier names usable)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as e:
        raise ImportProblem(f"{path}: not valid Python ({e.msg}, line {e.lineno})") from e
    sizes: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = wl._eval_expr(ast.unparse(node.value), sizes)
            except (ValueError, wl.WorkloadError, ZeroDivisionError):
                continue   # not plain integer arithmetic (eps = 1e-5 passes this, and is dropped below)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                sizes[node.targets[0].id] = value
    return sizes


def _load(path: Path, dims: dict[str, int]) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"kscout_kb_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}",
                                                  path)
    if spec is None or spec.loader is None:
        raise ImportProblem(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's file: say what it raised
        raise ImportProblem(f"{path}: importing it raised {type(e).__name__}: {e}") from e
    for attr in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, attr):
            raise ImportProblem(f"{path}: missing `{attr}` — a KernelBench problem defines class Model(nn.Module), "
                                "get_inputs() and get_init_inputs()")
    for k, v in dims.items():
        setattr(module, k, v)
    return module


@dataclass
class _Run:
    args: list[Any]
    params: list[torch.Tensor]
    out: torch.Tensor

    def abi_inputs(self) -> list[torch.Tensor]:
        return [a for a in self.args if torch.is_tensor(a)] + self.params


def _execute(path: Path, dims: dict[str, int], device: str, seed: int = 0, distribution: str | None = None,
             dtype: torch.dtype = torch.float32, count_flops: bool = False) -> tuple[_Run, float]:
    """Build the model and inputs at `dims` on `device` ('meta': shapes only) and run forward."""
    from torch.utils.flop_counter import FlopCounterMode
    module = _load(path, dims)
    torch.manual_seed(seed)
    with torch.device(device):
        model = module.Model(*module.get_init_inputs()).eval()
        args = list(module.get_inputs())
    model = model.to(dtype)
    args = [a.to(dtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
    if distribution is not None:
        gen = torch.Generator().manual_seed(seed)
        for a in args:
            if torch.is_tensor(a):
                fill(a, distribution, gen)
    flops = 0.0
    with torch.no_grad():
        if count_flops:
            with FlopCounterMode(display=False) as counter:
                out = model(*args)
            flops = float(counter.get_total_flops())
        else:
            out = model(*args)
    if not torch.is_tensor(out):
        raise ImportProblem(f"{path}: Model.forward returns {type(out).__name__}; kscout needs one tensor")
    return _Run(args=args, params=[t.detach() for t in model.state_dict().values()], out=out), flops


def footprint(path: Path, dims: dict[str, int]) -> Footprint:
    """Bytes and FLOPs of one call at `dims`, on meta tensors (nothing is allocated)."""
    run, counted = _execute(path, dims, "meta", count_flops=True)
    tensors = run.abi_inputs() + [run.out]
    numels = [t.numel() for t in tensors]
    sizes = [t.element_size() for t in tensors]
    return Footprint(bytes=sum(n * s for n, s in zip(numels, sizes)), flops=counted or float(run.out.numel()),
                     tensors=numels, elem_sizes=sizes)


def _fits(path: Path, dims: dict[str, int]) -> Footprint | None:
    try:
        return footprint(path, dims)
    except ImportProblem:
        raise
    except Exception:  # the problem rejects these sizes (shape mismatch, divisibility): not a legal point
        return None


# --- inference steps ----------------------------------------------------------------------------

def fit_to_budget(path: Path, given: dict[str, int], max_bytes: int, max_flops: float,
                  notes: list[str]) -> tuple[dict[str, int], Footprint]:
    fp = _fits(path, given)
    if fp is None:
        raise ImportProblem(f"{path}: Model cannot run at its own module-level sizes {given} (even on meta "
                            "tensors); check get_inputs() and get_init_inputs() against Model.forward")
    dims = dict(given)
    frozen = {k for k, v in dims.items() if v < 2 * STRUCTURAL_BELOW}
    while fp.bytes > max_bytes or fp.flops > max_flops:
        scalable = [k for k in dims if k not in frozen]
        if not scalable:
            raise ImportProblem(
                f"{path}: needs {fp.bytes / 2**20:.0f} MiB and {fp.flops:.3g} FLOP per call, over the budget "
                f"({max_bytes / 2**20:.0f} MiB, {max_flops:.3g} FLOP), and no size can be halved without breaking "
                "the problem; edit the sizes in the file or raise --max-mib / --max-gflop")
        k = max(scalable, key=lambda n: dims[n])
        trial = dict(dims, **{k: dims[k] // 2})
        smaller = _fits(path, trial)
        if smaller is None or dims[k] // 2 < STRUCTURAL_BELOW:
            frozen.add(k)
            continue
        dims, fp = trial, smaller
    changed = {k: (given[k], v) for k, v in dims.items() if v != given[k]}
    if changed:
        full = footprint(path, given)
        notes.append("scaled down to fit this machine's budget (" + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in
                     changed.items()) + f"): as given it moves {full.bytes / 2**20:.0f} MiB and {full.flops:.3g} FLOP "
                     f"per call; budget {max_bytes / 2**20:.0f} MiB, {max_flops:.3g} FLOP; now "
                     f"{fp.bytes / 2**20:.1f} MiB, {fp.flops:.3g} FLOP")
    return dims, fp


def shape_suite(path: Path, bench: dict[str, int], notes: list[str]) -> list[wl.ShapeCase]:
    """The bench shape plus a mid and a tiny variant (odd sizes where the problem takes them)."""
    scalable = [k for k, v in bench.items() if v >= STRUCTURAL_BELOW]
    shapes = [wl.ShapeCase(name="bench", dims=bench, bench=True)]
    seen = {tuple(bench.items())}
    for name, divisor, cap in (("mid", 4, 1 << 30), ("tiny-odd", 1 << 30, 17)):
        for odd in (True, False):
            dims = {k: (_shrink(v, divisor, cap, odd) if k in scalable else v) for k, v in bench.items()}
            if tuple(dims.items()) not in seen and _fits(path, dims) is not None:
                seen.add(tuple(dims.items()))
                shapes.append(wl.ShapeCase(name=name, dims=dims))
                break
    if len(shapes) < 2:
        raise ImportProblem(f"{path}: no smaller shape than {bench} runs (tried quartering and shrinking the sizes "
                            f"{scalable}); kscout verifies on at least two shapes")
    notes.append("shapes: " + "; ".join(f"{s.name} {s.dims}" for s in shapes))
    return shapes


def _shrink(v: int, divisor: int, cap: int, odd: bool) -> int:
    s = max(STRUCTURAL_BELOW, min(v // divisor, cap))
    if odd and s % 2 == 0:
        s += 1     # an odd size exercises the tails of vectorized loops
    return min(s, v)


def pinned_dims(path: Path, shapes: list[wl.ShapeCase], notes: list[str]) -> tuple[list[str], bool]:
    """Sizes hidden shapes must keep: structural ones, and any whose ±1 change breaks the problem."""
    base = min(shapes, key=lambda s: math.prod(s.dims.values())).dims
    fixed = [k for k, v in base.items() if v < STRUCTURAL_BELOW]
    for k, v in base.items():
        if k not in fixed and any(_fits(path, dict(base, **{k: v + d})) is None for d in (-1, 1) if v + d > 0):
            fixed.append(k)
    if fixed:
        notes.append(f"hidden shapes keep {fixed} as given (structural, or the problem breaks when they change by 1)")
    return fixed, len(fixed) < len(base)


def infer_tolerance(path: Path, shapes: list[wl.ShapeCase], notes: list[str]) -> wl.Tolerance:
    """32x the float32 reference's own error against float64, on the largest shape under 64 MiB."""
    small = [s for s in shapes if footprint(path, s.dims).bytes <= 64 * 2**20] or [min(
        shapes, key=lambda s: math.prod(s.dims.values()))]
    shape = max(small, key=lambda s: math.prod(s.dims.values()))
    abs_err, rel_err = 0.0, 0.0
    for seed in (0, 1):
        r32, _ = _execute(path, shape.dims, "cpu", seed, "normal", torch.float32)
        r64, _ = _execute(path, shape.dims, "cpu", seed, "normal", torch.float64)
        if not r32.out.is_floating_point():
            notes.append("tolerance: the output is not floating point, so it must match exactly")
            return wl.Tolerance(atol=0.0, rtol=0.0)
        diff = (r32.out.double() - r64.out).abs()
        abs_err = max(abs_err, float(diff.max()))
        rel_err = max(rel_err, float((diff / (r64.out.abs() + r64.out.abs().mean() + 1e-30)).max()))
    tol = wl.Tolerance(atol=_round_up(max(1e-6, 32 * abs_err)), rtol=_round_up(max(1e-5, 32 * rel_err)))
    notes.append(f"tolerance: float32 reference vs float64 on {shape.name} {shape.dims}: max abs error {abs_err:.2g}, "
                 f"relative {rel_err:.2g}; atol/rtol = 32x that (floors 1e-6/1e-5): {tol.atol:g}/{tol.rtol:g}")
    return tol


def _round_up(x: float) -> float:
    """Up to one significant digit: 3.2e-6 -> 4e-6."""
    e = math.floor(math.log10(x))
    return float(f"{math.ceil(x / 10**e)}e{e}")


def usable_distributions(path: Path, shape: wl.ShapeCase, notes: list[str]) -> list[str]:
    keep, dropped = [], []
    for d in CANDIDATE_DISTRIBUTIONS:
        run, _ = _execute(path, shape.dims, "cpu", 0, d)
        (keep if not run.out.is_floating_point() or bool(torch.isfinite(run.out).all()) else dropped).append(d)
    if not keep:
        raise ImportProblem(f"{path}: the reference output is not finite for any input distribution "
                            f"({CANDIDATE_DISTRIBUTIONS}) on {shape.dims}")
    notes.append(f"input distributions {keep}" + (f"; dropped {dropped} (the reference itself is not finite "
                                                   "on them)" if dropped else ""))
    return keep


def cost_expressions(path: Path, shapes: list[wl.ShapeCase], notes: list[str]) -> tuple[str, str]:
    bench = next(s for s in shapes if s.bench).dims
    fps = {s.name: footprint(path, s.dims) for s in shapes}

    def flops_at(d: dict[str, int]) -> float:
        return footprint(path, d).flops

    def numel_at(i: int):
        return lambda d: float(footprint(path, d).tensors[i])

    flops = _monomial(flops_at, bench)
    fp = fps["bench"]
    terms = [_monomial(numel_at(i), bench) for i in range(len(fp.tensors))]
    nbytes = None if None in terms else " + ".join(f"{s}*{t}" for s, t in zip(fp.elem_sizes, terms))
    out = []
    for label, expr, exact in (("flops", flops, lambda s: fps[s.name].flops),
                               ("bytes", nbytes, lambda s: fps[s.name].bytes)):
        ok = expr is not None and all(math.isclose(wl._eval_expr(expr, s.dims), exact(s), rel_tol=1e-6)
                                      for s in shapes)
        if not ok:
            expr = f"{exact(shapes[0]):.0f}"
            notes.append(f"cost.{label}: not a product of powers of the sizes; written as the bench shape's "
                         f"value (exact there, which is where the roofline is computed)")
        out.append(expr)
    notes.append(f"cost at the bench shape: {fp.flops:.3g} FLOP (torch's FLOP counter; one per output element when "
                 f"it counts none), {fp.bytes / 2**20:.1f} MiB moved (each input read once, the output written once)")
    return out[0], out[1]


def _monomial(f, dims: dict[str, int]) -> str | None:
    """f as c * prod(d**e) with integer exponents, found by doubling each size; None if it is not one."""
    f0 = f(dims)
    if f0 <= 0:
        return None
    powers = {}
    for k in dims:
        try:
            f1 = f(dict(dims, **{k: dims[k] * 2}))
        except Exception:
            return None
        e = math.log2(f1 / f0) if f1 > 0 else float("nan")
        if not math.isfinite(e) or abs(e - round(e)) > 1e-6 or round(e) < 0:
            return None
        if round(e):
            powers[k] = round(e)
    c = f0 / math.prod(dims[k] ** e for k, e in powers.items())
    if abs(c - round(c)) > 1e-6 * max(1.0, c):
        return None
    factors = ([str(round(c))] if round(c) != 1 or not powers else []) + \
        [k if e == 1 else f"{k}**{e}" for k, e in powers.items()]
    return "*".join(factors)


def detect_family(path: Path, shapes: list[wl.ShapeCase], notes: list[str]) -> str:
    """The first shipped workload whose reference computes the same function on this problem's
    kernel inputs (same count, same outputs on two shapes and seeds)."""
    from torch.func import functional_call
    small = sorted(shapes, key=lambda s: math.prod(s.dims.values()))[:2]
    runs = [_execute(path, s.dims, "cpu", seed, "normal")[0] for seed, s in enumerate(small)]
    for name in wl.list_builtin():
        shipped = wl.load(name)
        try:
            module = shipped.load_reference({})
            model = module.Model(*module.get_init_inputs()).eval()
        except Exception:
            continue
        n_fwd = len(inspect.signature(model.forward).parameters)
        names = list(model.state_dict())
        if all(_same(functional_call, model, names, n_fwd, r) for r in runs):
            notes.append(f"family: {shipped.spec.family} — the shipped workload '{name}' computes the same function "
                         "on this problem's inputs, so its offline templates apply")
            return shipped.spec.family
    notes.append(f"family: {GENERIC_FAMILY} — no shipped workload computes this function, so the offline proposer has "
                 "no templates for it; search it with an LLM proposer (--model provider/model)")
    return GENERIC_FAMILY


def _same(functional_call, model, names: list[str], n_fwd: int, run: _Run) -> bool:
    inputs = run.abi_inputs()
    if len(inputs) != n_fwd + len(names):
        return False
    try:
        with torch.no_grad():
            got = functional_call(model, dict(zip(names, inputs[n_fwd:])), tuple(inputs[:n_fwd]))
    except Exception:
        return False
    return (torch.is_tensor(got) and got.shape == run.out.shape and got.dtype == run.out.dtype
            and bool(torch.allclose(got, run.out, rtol=1e-4, atol=1e-5, equal_nan=True)))


# --- entry points -------------------------------------------------------------------------------

def workload_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    return name if name and not name[0].isdigit() else f"kb_{name}"


def infer(path: Path, max_bytes: int = MAX_BYTES, max_flops: float = MAX_FLOPS) -> Imported:
    path = Path(path).resolve()
    if not path.is_file() or path.suffix != ".py":
        raise ImportProblem(f"{path}: not a Python file; pass a KernelBench problem such as 23_Softmax.py")
    given = module_sizes(path)
    notes = [f"sizes from the file's module-level integers: {given or 'none'}"]
    bench, _ = fit_to_budget(path, given, max_bytes, max_flops, notes)
    shapes = shape_suite(path, bench, notes)
    fixed, hidden = pinned_dims(path, shapes, notes)
    tiny = min(shapes, key=lambda s: math.prod(s.dims.values()))
    distributions = usable_distributions(path, tiny, notes)
    tolerance = infer_tolerance(path, shapes, notes)
    flops, nbytes = cost_expressions(path, shapes, notes)
    family = detect_family(path, shapes, notes)
    return Imported(source=path, name=workload_name(path), given=given, shapes=shapes, fixed_dims=fixed,
                    hidden_shapes=hidden, family=family, tolerance=tolerance, distributions=distributions,
                    flops=flops, bytes=nbytes, notes=notes)


def write(imported: Imported, folder: Path) -> wl.Workload:
    """A workload folder: the file unchanged as reference.py, the inferred workload.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(imported.source, folder / "reference.py")
    (folder / "workload.toml").write_text(imported.toml())
    return wl.load(folder)


def import_file(path: Path, dest_root: Path, max_bytes: int = MAX_BYTES, max_flops: float = MAX_FLOPS,
                ) -> tuple[wl.Workload, Imported | None]:
    """Import into dest_root/<name>-<content hash>; an earlier import of the same bytes is reused
    (returned with None), so a resumed run finds the same folder and fingerprint."""
    path = Path(path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8] if path.is_file() else ""
    folder = dest_root / f"{workload_name(path)}-{digest}"
    if (folder / "workload.toml").is_file() and (folder / "reference.py").read_bytes() == path.read_bytes():
        return wl.load(folder), None
    imported = infer(path, max_bytes, max_flops)
    return write(imported, folder), imported


__all__ = ["Imported", "ImportProblem", "infer", "write", "import_file", "footprint", "module_sizes",
           "GENERIC_FAMILY"]
