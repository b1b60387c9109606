"""Verification: compare what the candidate wrote with the reference, case by case.

Checks, in order, each with a named failure class: the child ran every case (timeout,
runtime_crash, runtime_error), outputs are finite where the reference is (nan_inf), outputs are
within the dtype's tolerance on every shape, seed and distribution (wrong_result), and outputs
change when the inputs change (constant_output).
"""

from __future__ import annotations

import torch

from harness.backends.base import RunOutput
from harness.cases import Case
from harness.evidence import CaseResult, FailureClass, VerifyResult
from harness.sandbox import ExitKind
from harness.workload import Tolerance


def exit_failure(run: RunOutput, cases: list[Case], timeout_s: float) -> tuple[FailureClass, str] | None:
    """How a child run failed before any output could be judged, or None if it ran to the end."""
    ex = run.exit
    where = f" on case {cases[run.crashed_case].label()}" if run.crashed_case is not None else ""
    if ex.kind == ExitKind.timeout:
        return FailureClass.timeout, f"ran past its {timeout_s:.0f} s limit{where}; process group killed"
    if ex.kind == ExitKind.signal:
        return FailureClass.runtime_crash, f"killed by {ex.signal_name}{where}"
    if ex.kind == ExitKind.nonzero:
        tail = ex.stderr.strip().splitlines()[-1:] or [""]
        return FailureClass.load_error if run.crashed_case is None and not run.return_codes else FailureClass.runtime_crash, \
            f"child exited with status {ex.returncode}{where}: {tail[0][:500]}"
    bad = [(i, rc) for i, rc in enumerate(run.return_codes) if rc != 0]
    if bad:
        i, rc = bad[0]
        return FailureClass.runtime_error, f"returned status {rc} on case {cases[i].label()}"
    if len(run.outputs) < len(cases):
        return FailureClass.harness_error, f"child finished but wrote {len(run.outputs)}/{len(cases)} outputs"
    return None


def compare(case: Case, out: torch.Tensor, tol: Tolerance) -> CaseResult:
    ref = case.reference.double()
    got = out.double()
    res = CaseResult(shape=case.shape.name, dims=case.shape.dims, seed=case.seed, distribution=case.distribution)
    ref_finite = torch.isfinite(ref)
    got_finite = torch.isfinite(got)
    if bool((ref_finite & ~got_finite).any()):
        n = int((ref_finite & ~got_finite).sum())
        res.nan_inf = True
        res.message = f"{n} NaN/Inf element(s) where the reference is finite"
        return res
    diff = (got - ref).abs().where(ref_finite, torch.zeros_like(ref))
    res.max_abs_err = float(diff.max()) if diff.numel() else 0.0
    rel = diff / ref.abs().clamp_min(torch.finfo(torch.float64).tiny)
    res.max_rel_err = float(rel.where(ref.abs() > tol.atol, torch.zeros_like(rel)).max()) if rel.numel() else 0.0
    bad = diff > (tol.atol + tol.rtol * ref.abs())
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0])
        res.message = (f"{int(bad.sum())}/{bad.numel()} elements outside atol={tol.atol} rtol={tol.rtol}; "
                       f"first at {list(idx)}: got {float(got[idx]):.6g}, expected {float(ref[idx]):.6g}")
        return res
    res.passed = True
    return res


def verify(run: RunOutput, cases: list[Case], tol: Tolerance, timeout_s: float) -> VerifyResult:
    early = exit_failure(run, cases, timeout_s)
    if early:
        return VerifyResult(ok=False, failure=early[0], message=early[1])
    results = [compare(c, o, tol) for c, o in zip(cases, run.outputs)]
    first_bad = next((r for r in results if not r.passed), None)
    if first_bad:
        failure = FailureClass.nan_inf if first_bad.nan_inf else FailureClass.wrong_result
        return VerifyResult(ok=False, failure=failure, cases=results,
                            message=f"{first_bad.shape} (seed {first_bad.seed}, {first_bad.distribution}): {first_bad.message}")
    varies = _varies_with_input(cases, run.outputs)
    if not varies:
        return VerifyResult(ok=False, failure=FailureClass.constant_output, cases=results, varies_with_input=False,
                            message="output is identical for different inputs while the reference differs")
    return VerifyResult(ok=True, cases=results, varies_with_input=True)


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
