"""The model-backed proposer: a strategy node in, a kernel (or a named failure) out.

The planner decides what to try; the model writes the code for it. Its inputs are the workload's
contract, the node's strategy and parameters, the skills for the backend and op family, the
parent strategy's best kernel, and what earlier attempts at this node did. Whatever comes back is
cut out by `agents.extract`; an answer with no usable kernel becomes a candidate with
`proposal_failure` set, which the hardware worker records without running anything.
"""

from __future__ import annotations

from pathlib import Path

from agents import programs, skills
from agents.extract import extract_source
from agents.models import CallPolicy, ModelPool, ModelSpec
from harness import workload as workloads
from harness.evidence import Candidate, LLMCall
from search.strategy import Proposal, ProposalContext
from search.world_model import WorldModelAnswer


def contract_text(wl: workloads.Workload, dtype: str) -> str:
    """What the model must implement, from the workload's own files."""
    spec = wl.spec
    tol = spec.tolerance.get(dtype)
    bench = spec.bench_shape
    shapes = "; ".join(f"{s.name}: {s.dims}" + (" (timed)" if s.bench else "") for s in spec.shapes)
    return "\n".join([
        f"workload: {spec.name} (op family {spec.family}) — {spec.description}",
        f"dtype: {dtype}; tolerance: atol={tol.atol:g}, rtol={tol.rtol:g}" if tol else f"dtype: {dtype}",
        f"shapes (module-level sizes of reference.py): {shapes}; verification adds unseen shapes",
        f"input distributions: {', '.join(spec.inputs.distributions)}",
        f"at the timed shape: {spec.flops(bench.dims):.3g} FLOP, {spec.bytes_moved(bench.dims):.3g} bytes moved",
        "reference.py (the semantics to match; its forward arguments, then its state_dict tensors, "
        "are the kernel's inputs in order):",
        "```python", wl.reference_path.read_text().strip(), "```",
    ])


def _strategy_text(p: Proposal) -> str:
    lines = [p.strategy + (f" [refine: {p.refinement}]" if p.refinement else "")]
    if p.params:
        lines.append("parameters (the strategy's knobs; follow them where they apply): "
                     + ", ".join(f"{k}={v}" for k, v in sorted(p.params.items())))
    lines += [f"known from earlier runs: {k}" for k in p.knowledge]
    return "\n".join(lines)


class LLMProposer:
    name = "llm"

    def __init__(self, workload_path: str | Path, backend: str, dtype: str, models: list[ModelSpec],
                 policy: CallPolicy | None = None, skills_budget_tokens: int = 6000,
                 max_answer_chars: int = 200_000, seed: int = 0, programs_dir: Path | None = None,
                 diagnose_failures: bool = True):
        wl = workloads.load(Path(workload_path))
        self.workload, self.backend, self.dtype = wl.name, backend, dtype
        self.contract = contract_text(wl, dtype)
        self.skills = skills.select(backend, wl.spec.family, skills_budget_tokens)
        self.max_answer_chars = max_answer_chars
        self.pool = ModelPool(models, policy, seed)
        programs_dir = programs_dir or programs.OPTIMIZED_DIR
        self.program, self.program_version = programs.load("propose", programs_dir)
        self.diagnoser, self.diagnoser_version = programs.load("diagnose", programs_dir)
        self.planner, self.planner_version = programs.load("world_model", programs_dir)
        self.diagnose_failures = diagnose_failures

    def diagnose(self, ctx: ProposalContext) -> tuple[str, list[LLMCall]]:
        """One line for the history: why the latest kernel at this node failed and what to change."""
        result = self.pool.call(self.diagnoser, "diagnose", spec=self.pool.choose("propose"),
                                source=ctx.failed_source, verdict=ctx.failed_verdict)
        pred = result.prediction
        if result.failure is not None or pred is None:
            return "", result.calls
        return f"diagnosis of the latest failure: {pred.diagnosis} Fix: {pred.fix}"[:1500], result.calls

    def update_world_model(self, node: str, tree: str, results: str, moves: str
                           ) -> tuple[WorldModelAnswer, list[LLMCall], str]:
        """K-Search's world-model update: the model's proposed tree edits (typed), its calls, the program."""
        result = self.pool.call(self.planner, "world_model", spec=self.pool.choose("plan"),
                                node=node, tree=tree, results=results, moves=moves)
        if result.failure is not None:
            return WorldModelAnswer(error=result.error), result.calls, self.planner_version
        if result.prediction is None:
            return WorldModelAnswer(error=f"the answer was not a list of operations ({result.error})"), \
                result.calls, self.planner_version
        return WorldModelAnswer(operations=list(result.prediction.operations or [])), result.calls, self.planner_version

    def propose(self, proposal: Proposal) -> Candidate:
        ctx = proposal.context or ProposalContext()
        diagnosis, calls = [], []
        if self.diagnose_failures and ctx.failed_source:
            line, calls = self.diagnose(ctx)
            if line:
                diagnosis.append(line)
        spec = self.pool.choose()
        result = self.pool.call(
            self.program, "propose", spec=spec, workload=self.contract, backend=self.backend,
            strategy=_strategy_text(proposal), skills=self.skills.text(), parent_source=ctx.parent_source,
            history=ctx.history_text(diagnosis))
        result.calls = calls + result.calls
        cand = Candidate(source="", backend=self.backend, workload=self.workload, dtype=self.dtype,
                         strategy=proposal.strategy + (f" [refine: {proposal.refinement}]" if proposal.refinement else ""),
                         params=dict(proposal.params), node_id=proposal.node_id,
                         parent_attempt_id=ctx.parent_attempt_id, proposer=f"llm:{spec.model}",
                         knowledge=list(proposal.knowledge), program=self.program_version, llm_calls=result.calls)
        if result.failure is not None:
            cand.proposal_failure, cand.proposal_error = result.failure, result.error
            return cand
        pred = result.prediction
        cand.rationale = str(getattr(pred, "rationale", "") or "")[:4000] if pred is not None else ""
        field = str(getattr(pred, "source", "") or "") if pred is not None else ""
        got = extract_source(field or result.raw, self.backend, finish_reason=result.finish_reason,
                             max_chars=self.max_answer_chars)
        if got.failure is not None and field and result.raw:
            # The code may sit outside the source field (the model ignored the format): try the whole answer.
            whole = extract_source(result.raw, self.backend, finish_reason=result.finish_reason,
                                   max_chars=self.max_answer_chars)
            if whole.failure is None:
                got = whole
        if got.failure is not None:
            cand.proposal_failure = got.failure
            cand.proposal_error = got.message + (f" ({result.error})" if result.error else "")
            return cand
        cand.source, cand.extraction = got.source or "", got.message
        return cand
