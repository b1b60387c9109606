"""Verification: judge what the candidate wrote against the reference, call by call.

The checks, each with a named failure class (the catalog in harness/cheats.py says which cheat
each one stops), in the order a verdict is decided:

1. how the child ended: timeout, runtime_crash, memory_limit, sandbox_violation, runtime_error;
2. what the child saw around each call: out_of_bounds_write (canary), input_mutated, async_work
   (output still changing after return);
3. output_not_written: elements still holding the poison bytes;
4. the declared suite, elementwise within the dtype's atol/rtol: nan_inf, wrong_result;
5. hidden shapes: hidden_shape; in-place reruns and bench rotation sets: stale_output;
6. relative L2 error: degenerate_output (passes atol only because the reference is near zero);
7. against a float64 reference: precision_loss (far less exact than the dtype's own reference);
8. outputs vary when inputs do: constant_output.
"""

from __future__ import annotations

import torch

from harness.backends.base import RunOutput
from harness.cases import Case
from harness.evidence import CaseResult, FailureClass, VerifyResult
from harness.sandbox import ExitKind
from harness.workload import Tolerance

POISON_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
DEGENERATE_REL_L2 = 0.01     # an output this far off in L2 is wrong whatever the elementwise atol says
_MEMORY_SIGNS = ("bad_alloc", "MemoryError", "Cannot allocate memory", "out of memory")


def exit_failure(run: RunOutput, cases: list[Case], timeout_s: float) -> tuple[FailureClass, str] | None:
    """How a child run failed before any output could be judged, or None if it ran to the end."""
    ex = run.exit
    where = f" on case {cases[run.crashed_case].label()}" if run.crashed_case is not None and \
        run.crashed_case < len(cases) else ""
    tail = (ex.stderr.strip().splitlines() or [""])[-1][:500]
    if ex.kind == ExitKind.timeout:
        return FailureClass.timeout, f"ran past its {timeout_s:.0f} s limit{where}; process group killed"
    if ex.kind != ExitKind.ok and any(s in ex.stderr for s in _MEMORY_SIGNS):
        return FailureClass.memory_limit, f"ran out of memory (address-space limit){where}: {tail}"
    if ex.kind == ExitKind.signal and ex.signal_name == "SIGSYS":
        return FailureClass.sandbox_violation, (f"made a system call the sandbox forbids (network, processes, "
                                                f"writing files, executable memory); killed by seccomp{where}")
    if ex.kind == ExitKind.signal:
        return FailureClass.runtime_crash, f"killed by {ex.signal_name}{where}"
    if ex.kind == ExitKind.nonzero:
        if ex.returncode == 121:
            return FailureClass.harness_error, "could not enter a network namespace for the candidate"
        if "Traceback (most recent call last)" in ex.stderr and "harness" in ex.stderr:
            return FailureClass.harness_error, f"the harness's child process failed{where}: {tail}"
        if ex.returncode == 122:
            return FailureClass.harness_error, (f"{tail}; set harness.limits.seccomp = false to run candidates "
                                                "without a system-call filter (they can then use the network and "
                                                "write files: trusted code only)")
        cls = FailureClass.load_error if run.crashed_case is None and not run.return_codes else FailureClass.runtime_crash
        return cls, f"child exited with status {ex.returncode}{where}: {tail}"
    bad = [(i, rc) for i, rc in enumerate(run.return_codes) if rc != 0]
    if bad:
        i, rc = bad[0]
        if run.error:   # a Python backend: the candidate raised; its last line says what
            cls = FailureClass(run.error_class) if run.error_class else FailureClass.runtime_error
            last = (run.error.strip().splitlines() or [""])[-1][:500]
            return cls, f"raised on case {cases[i].label()}: {last}"
        return FailureClass.runtime_error, f"returned status {rc} on case {cases[i].label()}"
    if len(run.outputs) < len(cases) or len(run.checks) < len(cases):
        return FailureClass.harness_error, f"child finished but reported {len(run.outputs)}/{len(cases)} outputs"
    return None


def call_failure(run: RunOutput, cases: list[Case]) -> tuple[FailureClass, str] | None:
    """What the child observed around each call: canaries, inputs, writes after return."""
    for case, chk in zip(cases, run.checks):
        if chk.get("canary"):
            return FailureClass.out_of_bounds_write, (f"wrote outside its output ({chk['canary']} it) on case "
                                                      f"{case.label()}")
        if chk.get("mutated"):
            return FailureClass.input_mutated, f"changed input(s) {chk['mutated']} on case {case.label()}"
        if chk.get("async"):
            return FailureClass.async_work, (f"output kept changing after the call returned (work left running "
                                             f"in other threads) on case {case.label()}")
    return None


def unwritten(out: torch.Tensor) -> int:
    """Elements whose bytes are still the 0xFF poison."""
    if out.numel() == 0:
        return 0
    hit = out.contiguous().view(POISON_INT[out.element_size()]) == (-1 if out.element_size() > 1 else 0xFF)
    return int(hit.sum()) if bool(hit.any()) else 0


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    # float32 arithmetic is exact enough to judge float32/16 outputs (its rounding, ~1e-7 relative,
    # is far below any tolerance or precision limit used here) and 2-4x cheaper than float64.
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _ref_stats(case: Case, tol: Tolerance, precision: bool) -> dict:
    """Reference-side tensors and figures, computed once per case and reused by every candidate."""
    key = (tol.atol, tol.rtol, precision)
    if case.stats.get("key") == key:
        return case.stats
    ref = case.reference.to(_compute_dtype(case.reference))
    finite = torch.isfinite(ref)
    all_finite = bool(finite.all())
    ref0 = ref if all_finite else torch.where(finite, ref, torch.zeros_like(ref))
    absref = ref0.abs()
    st = {"key": key, "ref": ref0, "finite": None if all_finite else finite,
          "thr": absref * tol.rtol + tol.atol, "norm": float(ref0.double().norm()),
          "absmax": float(absref.max()) if ref0.numel() else 0.0,
          # 1/|ref| where |ref| > atol, else 0: the relative error is reported where it means something
          "inv_abs": torch.where(absref > tol.atol, absref.reciprocal(), torch.zeros_like(absref))}
    if precision and case.reference64 is not None and case.reference.is_floating_point():
        r64 = case.reference64
        scale = r64.abs() + r64.abs().mean()
        st["r64"] = r64.to(ref.dtype)
        st["inv_scale"] = scale.clamp_min(torch.finfo(torch.float64).tiny).reciprocal().to(ref.dtype)
        eps = torch.finfo(case.reference.dtype).eps
        st["ref_err"] = _eps_err(ref0, st, eps)
    case.stats = st
    return st


def _eps_err(x: torch.Tensor, st: dict, eps: float) -> float:
    """max |x - r64| / (|r64| + mean|r64|), in units of the dtype's epsilon."""
    err = (x - st["r64"]).abs_().mul_(st["inv_scale"])
    if st["finite"] is not None:
        err = torch.where(st["finite"], err, torch.zeros_like(err))
    m = float(torch.nan_to_num(err, nan=0.0, posinf=0.0).max()) if err.numel() else 0.0
    return m / eps


def compare(case: Case, out: torch.Tensor, tol: Tolerance, precision: bool = True) -> CaseResult:
    st = _ref_stats(case, tol, precision)
    ref, finite = st["ref"], st["finite"]
    got = out.to(ref.dtype)
    res = CaseResult(shape=case.shape.name, dims=case.shape.dims, seed=case.seed, distribution=case.distribution,
                     kind=case.kind)
    bad_finite = ~torch.isfinite(got)
    if finite is not None:
        bad_finite &= finite
    if bool(bad_finite.any()):
        res.nan_inf = True
        res.message = f"{int(bad_finite.sum())} NaN/Inf element(s) where the reference is finite"
        return res
    diff = (got - ref).abs_()
    if finite is not None:
        diff = torch.where(finite, diff, torch.zeros_like(diff))
    res.max_abs_err = float(diff.max()) if diff.numel() else 0.0
    res.max_rel_err = float((diff * st["inv_abs"]).max()) if diff.numel() else 0.0
    res.rel_l2 = float(torch.linalg.vector_norm(diff)) / st["norm"] if st["norm"] > 0 else None
    if "r64" in st:
        eps = torch.finfo(out.dtype).eps
        res.err_vs_fp64 = _eps_err(got, st, eps)
        res.ref_err_vs_fp64 = st["ref_err"]
    bad = diff > st["thr"]
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        res.message = (f"{int(bad.sum())}/{bad.numel()} elements outside atol={tol.atol} rtol={tol.rtol}; "
                       f"first at {list(idx)}: got {float(got[idx]):.6g}, expected {float(ref[idx]):.6g}")
        return res
    res.passed = True
    return res


def degenerate_notes(cases: list[Case], tol: Tolerance) -> list[str]:
    """Cases whose reference is within atol of zero everywhere: an all-zeros output passes the
    elementwise check there, so only the relative-L2 check (degenerate_output) guards them."""
    def absmax(c: Case) -> float:
        return c.stats["absmax"] if "absmax" in c.stats else float(c.reference.abs().max())
    return [f"case {c.label()}: the reference is within atol={tol.for_distribution(c.distribution).atol} of zero "
            "everywhere, so all-zeros passes "
            "the elementwise check (degenerate case; the relative-L2 check still applies)"
            for c in cases if c.reference.numel() and absmax(c) <= tol.for_distribution(c.distribution).atol]


def verify(run: RunOutput, cases: list[Case], tol: Tolerance, timeout_s: float,
           precision_factor: float = 64.0) -> VerifyResult:
    early = exit_failure(run, cases, timeout_s) or call_failure(run, cases)
    if early:
        return VerifyResult(ok=False, failure=early[0], message=early[1])
    # Rotation sets are re-checks after timing: correctness and staleness, not precision again.
    results = [compare(c, o, tol.for_distribution(c.distribution), precision=c.kind != "rotation")
               for c, o in zip(cases, run.outputs)]
    notes = degenerate_notes(cases, tol)

    def fail(cls: FailureClass, r: CaseResult, why: str) -> VerifyResult:
        return VerifyResult(ok=False, failure=cls, cases=results, notes=notes, case_index=results.index(r),
                            message=f"{r.shape} {r.dims} (seed {r.seed}, {r.distribution}, {r.kind}): {why}")

    by_kind = {"suite": FailureClass.wrong_result, "hidden": FailureClass.hidden_shape}
    for kind in ("suite", "hidden", "rerun", "rotation"):
        for i, (c, r, out) in enumerate(zip(cases, results, run.outputs)):
            if c.kind != kind:
                continue
            n = unwritten(out)
            if n:   # on a rerun or rotation set the kernel had already computed these inputs' neighbours
                cls = FailureClass.output_not_written if kind in by_kind else FailureClass.stale_output
                return VerifyResult(ok=False, failure=cls, case_index=i, notes=notes,
                                    cases=results, message=f"{n}/{out.numel()} output elements were never written on "
                                    f"case {c.label()} (still the poison bytes the harness filled it with)")
            if r.passed:
                continue
            if r.nan_inf and kind == "suite":
                return fail(FailureClass.nan_inf, r, r.message)
            if kind in by_kind:
                return fail(by_kind[kind], r, r.message)
            why = ("after its inputs were overwritten in place (same pointers), the output did not follow the new "
                   "values: " if kind == "rerun" else
                   "after timed calls that cycled inputs and poisoned the output, the output was wrong: ")
            return fail(FailureClass.stale_output, r, why + r.message)
    for r in results:
        if r.rel_l2 is not None and r.rel_l2 > max(DEGENERATE_REL_L2, 10 * tol.for_distribution(r.distribution).rtol):
            return fail(FailureClass.degenerate_output, r,
                        f"every element is within atol={tol.for_distribution(r.distribution).atol}, but the relative L2 error is {r.rel_l2:.3g}: "
                        "the reference is so close to zero that a wrong output passes elementwise")
    for r in results:
        if r.err_vs_fp64 is not None and r.err_vs_fp64 > precision_factor * max(r.ref_err_vs_fp64 or 0.0, 1.0):
            return fail(FailureClass.precision_loss, r,
                        f"error against a float64 reference is {r.err_vs_fp64:.3g} eps, {r.err_vs_fp64 / max(r.ref_err_vs_fp64 or 0.0, 1.0):.0f}x "
                        f"the {r.ref_err_vs_fp64:.3g} eps of the reference computed in the same dtype "
                        f"(limit {precision_factor:g}x): it computes in lower precision than asked")
    suite = [(c, o) for c, o in zip(cases, run.outputs) if c.kind in ("suite", "hidden")]
    if not _varies_with_input([c for c, _ in suite], [o for _, o in suite]):
        return VerifyResult(ok=False, failure=FailureClass.constant_output, cases=results, varies_with_input=False,
                            notes=notes, message="output is identical for different inputs while the reference differs")
    return VerifyResult(ok=True, cases=results, varies_with_input=True, notes=notes)


def _varies_with_input(cases: list[Case], outputs: list[torch.Tensor]) -> bool:
    """For each shape with two cases whose references differ, the outputs must differ too."""
    by_shape: dict[str, list[int]] = {}
    for i, c in enumerate(cases):
        by_shape.setdefault(c.shape.name, []).append(i)
    for idx in by_shape.values():
        for a, b in zip(idx, idx[1:]):
            if not torch.equal(cases[a].reference, cases[b].reference) and torch.equal(outputs[a], outputs[b]):
                return False
    return True
