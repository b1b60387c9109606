"""The shape of an offline template family: axes, moves, and a renderer.

A family (one per op family: bias_gelu, softmax, rmsnorm, matmul, ...) declares

- `axes`: every parameter its C++ renderer understands, each with its legal values and the
  naive default. `kind="strategy"` axes are decided by tree nodes (a move sets them);
  `kind="tunable"` axes are what local refinement varies within a node (block sizes, unroll).
- `moves`: named optimization strategies ("fuse into one pass", "OpenMP over rows",
  "vectorize by 8") that set one or more strategy axes, with a prior expected gain. The
  planner grows the tree by applying moves to a node's parameters.
- `render(params)`: complete C++ source implementing `kscout_forward` (see harness/include/kscout.h)
  for any legal assignment of the axes. Every legal assignment must compile and be correct.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field


class Axis(BaseModel):
    name: str
    values: list[Any] = Field(min_length=1)
    default: Any
    kind: Literal["strategy", "tunable"] = "strategy"
    doc: str = ""


class Move(BaseModel):
    name: str                                   # short id, e.g. "omp-rows"
    description: str                            # what a kernel engineer would call it
    assigns: dict[str, Any]                     # strategy axes this move sets
    prior_gain: float = Field(1.2, gt=0)        # expected speedup factor over the parent, before evidence
    requires: dict[str, Any] = Field(default_factory=dict)  # only applicable when these axes hold
    # CPU features its code needs beyond the baseline the templates assume (AVX2/FMA), as
    # /proc/cpuinfo names them ("avx512f"): where the hardware workers lack one, the planner never
    # proposes the move (rather than spend an attempt on a compile error).
    isa: list[str] = Field(default_factory=list)


class TemplateFamily:
    family: ClassVar[str]
    axes: ClassVar[list[Axis]]
    moves: ClassVar[list[Move]]
    renders: ClassVar[bool] = True    # False: a strategy space only, a model writes every kernel
    backend: ClassVar[str] = "cpu_cpp"  # what render() writes for: C++ (cpu_cpp) or a Python module (triton)
    comment: ClassVar[str] = "//"       # line-comment marker of the rendered language
    naive_description: ClassVar[str] = "naive: scalar loops, one thread"

    @property
    def key(self) -> str:
        """The family's name in strategy trees and cross-run memory: `softmax` for cpu_cpp (as
        always), `softmax@triton` for another backend, so knowledge never crosses backends."""
        return self.family if self.backend == "cpu_cpp" else f"{self.family}@{self.backend}"

    def defaults(self) -> dict[str, Any]:
        return {a.name: a.default for a in self.axes}

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)

    def strategy_points(self) -> list[dict[str, Any]]:
        """Every combination of the strategy axes, tunables at their defaults: the space that
        exhaustive enumeration covers (benchmarks, and tests that build every strategy)."""
        strategy = [a for a in self.axes if a.kind == "strategy"]
        return [self.defaults() | dict(zip((a.name for a in strategy), combo))
                for combo in itertools.product(*(a.values for a in strategy))]

    def tunables(self) -> list[Axis]:
        return [a for a in self.axes if a.kind == "tunable"]

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and reject values outside an axis, naming the axis."""
        full = self.defaults() | params
        for a in self.axes:
            if full[a.name] not in a.values:
                raise ValueError(f"{self.family}: {a.name}={full[a.name]!r} not in {a.values}")
        unknown = set(full) - {a.name for a in self.axes}
        if unknown:
            raise ValueError(f"{self.family}: unknown parameter(s) {sorted(unknown)}")
        return full

    def prior_gain(self, move: str) -> float:
        """The named move's expected gain before any evidence."""
        return self.move(move).prior_gain

    def applicable(self, move: Move, params: dict[str, Any], isa: frozenset[str] | None = None) -> bool:
        """A move applies if its requirements hold, it changes something and, where the target's
        CPU features `isa` are known, the features its code needs are among them."""
        full = self.defaults() | params
        if any(full.get(k) != v for k, v in move.requires.items()):
            return False
        if isa is not None and not set(move.isa) <= isa:
            return False
        return any(full.get(k) != v for k, v in move.assigns.items())

    def isa(self, params: dict[str, Any]) -> set[str]:
        """The CPU features the kernel `params` renders needs beyond AVX2/FMA: those of every move
        whose assignments and requirements it holds (a width the scalar path ignores needs none)."""
        full = self.defaults() | params
        return {f for m in self.moves if m.isa and self._holds(m, full) for f in m.isa}

    @staticmethod
    def _holds(move: Move, full: dict[str, Any]) -> bool:
        """`full` (every axis set) has the move's assignments and its requirements."""
        return all(full.get(k) == v for k, v in (move.requires | move.assigns).items())

    def present_moves(self, params: dict[str, Any]) -> set[str]:
        """The moves `params` embodies: those whose every assignment holds and that differ from the
        naive defaults somewhere, less any another such move's assignments include (vec-avx2 sets
        math=poly as well: poly-exp is part of it, not a second move beside it). A move whose
        requirements do not hold is not there: conv2d's kvec kernel with simd_width = 16 embodies
        kvec-avx512, not reg-tile-avx512, though both assign that width."""
        full, naive = self.defaults() | params, self.defaults()
        held = [m for m in self.moves if self._holds(m, full) and any(naive.get(k) != v for k, v in m.assigns.items())]
        return {m.name for m in held if not any(
            len(o.assigns) > len(m.assigns) and all(k in o.assigns and o.assigns[k] == v for k, v in m.assigns.items())
            for o in held)}

    def replaced(self, move: Move, base: dict[str, Any]) -> list[str]:
        """The moves `base` embodies that applying `move` takes away: omp-tiles on an omp-rows
        kernel replaces omp-rows, so its expected gain there is tiles' over rows', not tiles' over
        one thread. A move that requires the state it replaces (tile-128 needs tile-128x64) builds
        on it: its prior is already a gain over that move's, so that one does not count."""
        after = self.present_moves(dict(base, **move.assigns))
        return sorted(name for name in self.present_moves(base) - after
                      if not any(move.requires.get(k) == v for k, v in self.move(name).assigns.items()))

    def move(self, name: str) -> Move:
        return next(m for m in self.moves if m.name == name)

    def render(self, params: dict[str, Any]) -> str:
        raise NotImplementedError  # each family implements it

    def code_key(self, params: dict[str, Any]) -> str:
        """Identity of the kernel `params` renders, comments stripped: assignments that differ
        only in axes the code ignores (a prefetch hint with prefetching off, an unroll factor on
        the scalar path) share it, so the planner never spends an attempt on the same code twice.
        A family without templates keys on the parameters."""
        if not self.renders:
            return repr(sorted((k, repr(v)) for k, v in params.items()))
        full = self.validate_params(params)
        code = " ".join(re.sub(re.escape(self.comment) + r"[^\n]*", "", self.render(full)).split())   # comments, layout ignored
        return hashlib.sha256(code.encode()).hexdigest()[:20]

    def header(self, params: dict[str, Any], strategy: str = "") -> str:
        """A comment block that opens every rendered kernel, so a reviewer sees how it was made."""
        c = self.comment
        lines = [f"{c} kscout offline template: {self.family}" + (f" ({self.backend})" if self.backend != "cpu_cpp" else "")]
        if strategy:
            lines.append(f"{c} strategy: {strategy}")
        lines += [f"{c}   {k} = {v}" for k, v in sorted(params.items())]
        return "\n".join(lines) + "\n"


# The intrinsics paths of the elementwise and row families render 8-lane AVX2 code or, with
# simd_width = 16, the same code widened to AVX-512F (snippets.zmm): the axis and its move are one
# definition shared by those families.
SIMD_WIDTH = Axis(name="simd_width", values=[8, 16], default=8,
                  doc="intrinsics path: 8 floats per ymm vector (AVX2/FMA) or 16 per zmm vector (AVX-512F): half "
                      "the instructions for the same work, what counts where an exp polynomial sets the time")
AVX512 = Move(name="avx512", description="widen the intrinsics to AVX-512: 16 floats per zmm vector",
              assigns={"simd_width": 16}, requires={"vector": "avx2"}, isa=["avx512f"], prior_gain=1.15)
