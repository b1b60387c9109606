"""Workload folders: `reference.py` (KernelBench form) plus a validated `workload.toml`.

A workload folder holds:

- `reference.py` with `class Model(nn.Module)`, `get_inputs()` and `get_init_inputs()`, exactly
  as KernelBench writes them. Problem sizes are module-level names (`batch_size = 16`); the
  shape suite overrides those names before calling `get_inputs()`, so unchanged KernelBench
  files work.
- `workload.toml`, validated here. Any error names the file, the field and the fix.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import operator
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DTYPES = ("float32", "float64", "float16", "bfloat16")
Distribution = Literal["normal", "uniform", "large", "small", "negative", "zipf", "outliers", "offset"]
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "workloads"


class WorkloadError(ValueError):
    """A workload that cannot be used; the message says which file, which field, and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShapeCase(_Strict):
    name: str
    dims: dict[str, int] = Field(description="module-level names in reference.py and their values")
    bench: bool = Field(False, description="time candidates on this shape")
    distributions: list[Distribution] | None = Field(
        None, description="override the workload's input distributions for this shape (big shapes: fewer)")

    @field_validator("dims")
    @classmethod
    def _positive(cls, dims: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in dims.items() if v <= 0}
        if bad:
            raise ValueError(f"dimensions must be positive, got {bad}")
        return dims


class Bound(_Strict):
    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)


class Tolerance(Bound):
    """|out - ref| <= atol + rtol * |ref| elementwise, per dtype; `by_distribution` sets another bound
    for cases drawn from a distribution whose data no sound fp32 kernel matches to the default (a
    large mean over a unit spread loses digits in every fp32 sum), so that distribution can stay in
    the contract to catch unsound kernels by a wide margin instead of being left out."""
    by_distribution: dict[Distribution, Bound] = Field(default_factory=dict)

    def for_distribution(self, distribution: str) -> "Tolerance":
        b = self.by_distribution.get(distribution)
        return self if b is None else Tolerance(atol=b.atol, rtol=b.rtol)


class InputSpec(_Strict):
    distributions: list[Distribution] = Field(default_factory=lambda: ["normal"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=2,
                             description="at least two, so 'output varies with input' can be checked")


class CostModel(_Strict):
    """Arithmetic expressions over the shape's dims, e.g. flops = "2*M*N*K"."""

    flops: str
    bytes: str

    @field_validator("flops", "bytes")
    @classmethod
    def _parses(cls, expr: str) -> str:
        _compile_expr(expr)
        return expr


class Limits(_Strict):
    compile_s: float = Field(60.0, gt=0)
    run_s: float = Field(60.0, gt=0, description="hard limit for one child run (all cases of a stage)")


class VerifySpec(_Strict):
    """How verification may vary the problem beyond the declared shapes."""

    fixed_dims: list[str] = Field(default_factory=list, description="dims that hidden shapes must keep "
                                  "(e.g. a head size the op only defines for 64 and 128)")
    hidden_shapes: bool = Field(True, description="allow unseen shapes near the declared ones at verify time")


class WorkloadSpec(_Strict):
    name: str
    family: str = Field(description="op family: picks offline templates and skills (elementwise, softmax, ...)")
    description: str = ""
    backends: list[str] = Field(default_factory=lambda: ["cpu_cpp"], min_length=1)
    dtypes: list[str] = Field(default_factory=lambda: ["float32"], min_length=1)
    shapes: list[ShapeCase] = Field(min_length=2)
    tolerance: dict[str, Tolerance]
    inputs: InputSpec = Field(default_factory=InputSpec)
    cost: CostModel
    limits: Limits = Field(default_factory=Limits)
    verify: VerifySpec = Field(default_factory=VerifySpec)

    @field_validator("dtypes")
    @classmethod
    def _known_dtypes(cls, dtypes: list[str]) -> list[str]:
        bad = [d for d in dtypes if d not in DTYPES]
        if bad:
            raise ValueError(f"unknown dtype(s) {bad}; use one of {list(DTYPES)}")
        return dtypes

    @model_validator(mode="after")
    def _consistent(self) -> "WorkloadSpec":
        missing = [d for d in self.dtypes if d not in self.tolerance]
        if missing:
            raise ValueError(f"no tolerance for dtype(s) {missing}: add [tolerance.{missing[0]}] atol/rtol")
        drawn = set(self.inputs.distributions) | {d for s in self.shapes for d in (s.distributions or [])}
        for dtype, tol in self.tolerance.items():
            unused = sorted(set(tol.by_distribution) - drawn)
            if unused:
                raise ValueError(f"tolerance.{dtype}.by_distribution names {unused}, which no case draws; add them "
                                 f"to [inputs] distributions or remove them (drawn: {sorted(drawn)})")
        names = [s.name for s in self.shapes]
        if len(set(names)) != len(names):
            raise ValueError(f"shape names must be unique, got {names}")
        benches = [s.name for s in self.shapes if s.bench]
        if len(benches) != 1:
            raise ValueError(f"exactly one shape must have bench = true, got {benches or 'none'}")
        keys = {tuple(sorted(s.dims)) for s in self.shapes}
        if len(keys) != 1:
            raise ValueError("every shape must set the same dims names")
        unknown = [d for d in self.verify.fixed_dims if d not in self.shapes[0].dims]
        if unknown:
            raise ValueError(f"verify.fixed_dims names {unknown}, which no shape sets; "
                             f"use names from {sorted(self.shapes[0].dims)}")
        return self

    @property
    def bench_shape(self) -> ShapeCase:
        return next(s for s in self.shapes if s.bench)

    def flops(self, dims: dict[str, int]) -> float:
        return float(_eval_expr(self.cost.flops, dims))

    def bytes_moved(self, dims: dict[str, int]) -> float:
        return float(_eval_expr(self.cost.bytes, dims))


class Workload(BaseModel):
    """A loaded workload: its validated spec and where its files are."""

    spec: WorkloadSpec
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def reference_path(self) -> Path:
        return self.path / "reference.py"

    def fingerprint(self) -> str:
        """Hash of reference.py + workload.toml: a replay must run against the same contract."""
        h = hashlib.sha256()
        for f in ("reference.py", "workload.toml"):
            h.update((self.path / f).read_bytes())
        return h.hexdigest()[:16]

    def load_reference(self, dims: dict[str, int]) -> ModuleType:
        """A fresh module object per call, with the shape's dims set as module globals."""
        spec = importlib.util.spec_from_file_location(f"kscout_ref_{self.name}", self.reference_path)
        if spec is None or spec.loader is None:
            raise WorkloadError(f"{self.reference_path}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for attr in ("Model", "get_inputs", "get_init_inputs"):
            if not hasattr(module, attr):
                raise WorkloadError(f"{self.reference_path}: missing `{attr}` — a KernelBench reference "
                                    "defines class Model(nn.Module), get_inputs() and get_init_inputs()")
        for k, v in dims.items():
            setattr(module, k, v)
        return module


def resolve(name_or_path: str | Path) -> Path:
    """A workload folder from a path, or from a name among the shipped workloads."""
    p = Path(name_or_path)
    if p.is_dir():
        return p.resolve()
    if (BUILTIN_DIR / str(name_or_path)).is_dir():
        return (BUILTIN_DIR / str(name_or_path)).resolve()
    known = ", ".join(list_builtin()) or "none"
    raise WorkloadError(f"workload '{name_or_path}' not found: not a folder and not a shipped workload "
                        f"(shipped: {known}). Pass a folder holding reference.py and workload.toml.")


def list_builtin() -> list[str]:
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / "workload.toml").is_file())


def load(name_or_path: str | Path) -> Workload:
    folder = resolve(name_or_path)
    toml_path = folder / "workload.toml"
    if not toml_path.is_file():
        raise WorkloadError(f"{toml_path}: missing — every workload folder needs a workload.toml")
    if not (folder / "reference.py").is_file():
        raise WorkloadError(f"{folder / 'reference.py'}: missing — every workload folder needs a "
                            "KernelBench-form reference.py")
    try:
        raw = tomllib.loads(toml_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise WorkloadError(f"{toml_path}: not valid TOML ({e}); fix the syntax at that line") from e
    try:
        spec = WorkloadSpec.model_validate(raw)
    except ValidationError as e:
        raise WorkloadError(_format_errors(toml_path, e)) from e
    return Workload(spec=spec, path=folder)


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: {err.error_count()} problem(s) in workload.toml"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        fix = {
            "missing": "add this field",
            "extra_forbidden": "remove it or check its spelling",
            "literal_error": "use one of the allowed values",
            "too_short": "add more entries",
        }.get(e["type"], "correct the value")
        lines.append(f"  field '{loc}': {e['msg']} — fix: {fix}")
    return "\n".join(lines)


# --- safe arithmetic for the cost model -------------------------------------------------------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow,
        ast.USub: operator.neg}


def _compile_expr(expr: str) -> ast.Expression:
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as e:
        raise ValueError(f"'{expr}' is not an arithmetic expression") from e
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name,
                                 ast.Load, *_OPS)):
            raise ValueError(f"'{expr}': only numbers, dim names and + - * / // ** are allowed")
    return tree


def _eval_expr(expr: str, names: dict[str, int]) -> float:
    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise WorkloadError(f"cost expression '{expr}' uses '{node.id}', which is not a dim "
                                    f"(dims: {sorted(names)})")
            return names[node.id]
        if isinstance(node, ast.BinOp):
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return _OPS[type(node.op)](ev(node.operand))
        raise WorkloadError(f"cost expression '{expr}' is not plain arithmetic")

    return ev(_compile_expr(expr))
