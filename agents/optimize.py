"""Skill optimization: DSPy's GEPA rewrites the propose program's instructions from a logged run.

Training examples are the strategy nodes the run tried (the contract, strategy, skills, parent
kernel and history a proposer saw there, rebuilt from the log). The metric is the harness itself:
each kernel the program writes during optimization is compiled, verified and timed for real, and
its evidence becomes the feedback GEPA's reflection model reads (the failure class and message,
or the speedup against the best the run found). The result is saved under skills/optimized/
(`<program>.json`, loaded by later searches, plus `<program>.meta.json` saying how it was made).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import dspy
from dspy.teleprompt.gepa import InstructionProposer
from pydantic import BaseModel, Field

from agents import programs, skills
from agents.extract import extract_source
from agents.llm import _strategy_text, contract_text
from agents.models import ModelPool, ModelSpec, call_from_history
from harness import workload as workloads
from harness.evidence import Candidate, EvidencePacket, LLMCall, Verdict
from memory.context import proposal_context
from search.strategy import Proposal

INPUT_FIELDS = ("workload", "backend", "strategy", "skills", "parent_source", "history")


class OptimizeError(ValueError):
    pass


class OptimizeReport(BaseModel):
    program: str
    run_id: str
    examples: int
    metric_calls: int
    before: str                            # program version before and after
    after: str
    baseline_score: float                  # mean score of the program before, on the examples
    best_score: float                      # of the program GEPA returned
    changed: bool
    saved_to: str | None = None
    model: str
    reflection_model: str
    calls: list[LLMCall] = Field(default_factory=list)
    scores: list[dict] = Field(default_factory=list)   # one per metric call: score, verdict, speedup
    seconds: float = 0.0


def examples_from_run(store, run_id: str, wl: workloads.Workload, backend: str, dtype: str,
                      limit: int, skills_budget_tokens: int = 6000) -> list[dspy.Example]:
    """One example per distinct strategy tried (the root, the naive baseline, excluded), newest
    last; the inputs are what a proposer saw for it, rebuilt from the log."""
    contract = contract_text(wl, dtype)
    skill_text = skills.select(backend, wl.spec.family, skills_budget_tokens).text()
    nodes = {n.id: n for n in store.nodes(run_id)}
    seen, out = set(), []
    attempts = store.attempts(run_id)
    for a in attempts:
        node = nodes.get(a.node_id or "")
        if node is None or node.parent_id is None:
            continue
        packet = store.packet(a.id)
        key = (node.id, json.dumps(packet.candidate.params, sort_keys=True))
        if key in seen:
            continue
        seen.add(key)
        ctx = proposal_context(store, run_id, node, nodes.get(node.parent_id), before_seq=a.seq)
        proposal = Proposal(node_id=node.id, params=packet.candidate.params,
                            strategy=packet.candidate.strategy.split(" [refine:")[0], knowledge=packet.candidate.knowledge)
        out.append(dspy.Example(workload=contract, backend=backend, strategy=_strategy_text(proposal),
                                skills=skill_text, parent_source=ctx.parent_source,
                                history=ctx.history_text(),
                                node_id=node.id).with_inputs(*INPUT_FIELDS))
    return out[-limit:]


class HarnessMetric:
    """GEPA's metric: the harness's verdict on the kernel the program wrote, with feedback.

    score: 0 no usable code · 0.1 compile error · 0.3 compiled, not verified · accepted:
    0.6 + 0.4 x min(1, speedup over eager / the best speedup the run found)."""

    def __init__(self, wl: workloads.Workload, backend: str, dtype: str,
                 evaluate: Callable[[Candidate], EvidencePacket], target_speedup: float):
        self.wl, self.backend, self.dtype = wl, backend, dtype
        self.target = max(target_speedup, 1e-9)
        # A hardware worker's evaluate (compile, verify, time against interleaved baselines), run
        # in its own process: this one holds model clients whose threads a sandbox fork must not see.
        self.evaluate = evaluate
        self.cache: dict[str, tuple[float, str, dict]] = {}
        self.log: list[dict] = []
        # GEPA may evaluate examples on several threads; the bench is one slot, and one Evaluator
        # (its staging directory, its timings) serves one kernel at a time.
        self._lock = threading.Lock()

    def __call__(self, gold, pred, trace=None, pred_name=None, pred_trace=None):
        text = str(getattr(pred, "source", "") or "")
        got = extract_source(text, self.backend)
        if got.failure is not None:
            score, feedback, row = 0.0, f"No kernel could be taken from the answer: {got.failure.value}: {got.message}", \
                {"verdict": got.failure.value}
        else:
            key = hashlib.sha256(got.source.encode()).hexdigest()
            with self._lock:
                if key not in self.cache:   # the same kernel is judged once
                    self.cache[key] = self._judge(got.source, gold)
                score, feedback, row = self.cache[key]
        with self._lock:
            self.log.append({"node": gold.get("node_id"), "score": score, **row})
        return dspy.Prediction(score=score, feedback=feedback)

    def _judge(self, source: str, gold) -> tuple[float, str, dict]:
        packet = self.evaluate(Candidate(source=source, backend=self.backend, workload=self.wl.name,
                                                   dtype=self.dtype, strategy=gold.strategy.splitlines()[0],
                                                   proposer="skills-optimize"))
        if packet.verdict == Verdict.accepted:
            sp = packet.speedup("torch_eager") or 0.0
            score = 0.6 + 0.4 * min(1.0, sp / self.target)
            return score, (f"Accepted: verified on every shape and distribution; {sp:.2f}x over torch eager, "
                           f"the best kernel found so far reaches {self.target:.2f}x."), \
                {"verdict": "accepted", "speedup": sp}
        cls = packet.failure_class.value if packet.failure_class else "rejected"
        compiled = bool(packet.compile and packet.compile.ok)
        score = 0.3 if compiled else 0.1
        detail = packet.failure_message[:1500]
        if not compiled and packet.compile is not None:
            detail += "\ncompiler output:\n" + packet.compile.log[-1500:]
        return score, f"Rejected by the harness as {cls}: {detail}", {"verdict": cls, "message": packet.failure_message[:300]}


def optimize(store, run_id: str, wl: workloads.Workload, *, backend: str, dtype: str,
             evaluate: Callable[[Candidate], EvidencePacket], model: ModelSpec, reflection: ModelSpec, out_dir: Path, max_metric_calls: int = 24,
             examples: int = 6, program_name: str = "propose", seed: int = 0,
             on_status=lambda s: None) -> OptimizeReport:
    t0 = time.monotonic()
    data = examples_from_run(store, run_id, wl, backend, dtype, examples)
    if len(data) < 2:
        raise OptimizeError(f"run {run_id} has {len(data)} strategy node(s) beyond the root to learn from; "
                            "GEPA needs at least 2 (run a longer search first)")
    best = store.best_attempt(run_id)
    target = best.speedup_eager if best and best.speedup_eager else 1.0
    on_status(f"{len(data)} examples from run {run_id}; measuring baselines for the metric")
    metric = HarnessMetric(wl, backend, dtype, evaluate, target)
    student, before = programs.load(program_name, out_dir)
    pool = ModelPool([model, reflection], seed=seed)
    task_lm, reflect_lm = pool.lms[model.model], pool.lms[reflection.model]
    if reflection.model == model.model:   # one LM object would mix the two roles' histories
        reflect_lm = task_lm.copy()
    on_status("scoring the current program")
    with dspy.context(lm=task_lm, adapter=pool.adapter):
        base = [metric(ex, student(**ex.inputs())).score for ex in data]
    baseline_score = sum(base) / len(base)
    gepa = dspy.GEPA(metric=metric, max_metric_calls=max_metric_calls, reflection_lm=reflect_lm,
                     num_threads=1, seed=seed, track_stats=True, use_merge=False,
                     instruction_proposer=InstructionProposer(
                         skills=[Path(s.path).parent for s in skills.select(backend, wl.spec.family).skills]))
    on_status(f"GEPA: up to {max_metric_calls} metric calls (each kernel is compiled, verified and timed)")
    with dspy.context(lm=task_lm, adapter=pool.adapter):
        optimized = gepa.compile(student, trainset=data, valset=data)
    scores = getattr(getattr(optimized, "detailed_results", None), "val_aggregate_scores", None) or []
    best_score = max(scores) if scores else baseline_score
    after = f"{program_name}@{programs.version(optimized)}+gepa"
    changed = programs.version(optimized) != before.split("@")[1].removesuffix("+gepa")
    report = OptimizeReport(program=program_name, run_id=run_id, examples=len(data), metric_calls=len(metric.log),
                            before=before, after=after if changed else before, baseline_score=baseline_score,
                            best_score=best_score, changed=changed, model=model.model, reflection_model=reflection.model,
                            calls=_calls(task_lm, model, "gepa_task") + _calls(reflect_lm, reflection, "reflect"),
                            scores=metric.log, seconds=time.monotonic() - t0)
    if changed and best_score > baseline_score:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{program_name}.json"
        optimized.save(str(path))
        meta = report.model_dump(mode="json", exclude={"calls", "scores"})
        meta["saved_at"] = datetime.now(timezone.utc).isoformat()
        (out_dir / f"{program_name}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        report.saved_to = str(path)
    return report


def _calls(lm, spec: ModelSpec, role: str) -> list[LLMCall]:
    """The successful requests an LM made (GEPA drives the LM directly, so failed ones are not seen)."""
    return [call_from_history(entry, spec.model, role) for entry in lm.history]
