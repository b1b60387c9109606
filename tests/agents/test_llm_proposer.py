"""The model-backed proposer against the scripted server: hostile answers become named failures,
a rejected kernel is diagnosed before the next try, and world-model answers come back typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.llm import LLMProposer
from agents.models import CallPolicy, ModelSpec
from harness.evidence import FailureClass
from search.strategy import Proposal, ProposalContext
from tests.agents.scripted_server import Reply, ScriptedServer

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).resolve().parents[2] / "workloads" / "rmsnorm"
KERNEL = '#include "kscout.h"\nKS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) { return 0; }'


def fields(**values: str) -> str:
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]\n"


def proposer(srv: ScriptedServer, **kw) -> LLMProposer:
    return LLMProposer(WORKLOAD, "cpu_cpp", "float32", [ModelSpec(model="openai/gpt-4o-mini", api_base=srv.api_base)],
                       CallPolicy(backoff_s=0.05, timeout_s=5, retries=1), **kw)


PROPOSAL = Proposal(node_id="n1", params={"vec": "avx2"}, strategy="AVX2/FMA intrinsics")


@pytest.mark.parametrize("reply, failure", [
    (Reply(content=fields(rationale="vectorize", source="I would use AVX2 intrinsics here.")), FailureClass.no_code),
    (Reply(content=fields(rationale="r", source="```python\nimport triton\ndef kscout_forward(x):\n    return x\n```")),
     FailureClass.wrong_language),
    (Reply(content=fields(rationale="r", source="```cpp\n#include \"kscout.h\"\nKS_EXPORT int kscout_forw"),
           finish_reason="length"), FailureClass.truncated_output),
    (Reply(content=fields(rationale="r", source="```cpp\n" + KERNEL + "\n// pad\n" * 40_000 + "```")),
     FailureClass.output_too_large),
    (Reply(status=500), FailureClass.model_error),
])
def test_hostile_answers_become_named_failures(reply, failure):
    with ScriptedServer(lambda req: reply) as srv:
        cand = proposer(srv, max_answer_chars=100_000).propose(PROPOSAL)
    assert cand.proposal_failure == failure and cand.proposal_error
    assert cand.source == "" and cand.llm_calls and cand.proposer == "llm:openai/gpt-4o-mini"


def test_code_outside_the_format_is_still_found():
    with ScriptedServer(lambda req: Reply(content=f"Here is my kernel:\n```cpp\n{KERNEL}\n```\nIt is fast.")) as srv:
        cand = proposer(srv).propose(PROPOSAL)
    assert cand.proposal_failure is None and "kscout_forward" in cand.source
    assert cand.extraction == "code block 1 of 1"


def test_a_rejected_kernel_is_diagnosed_before_the_next_proposal():
    def respond(req):
        if "[[ ## diagnosis ## ]]" in req.prompt:
            return Reply(content=fields(diagnosis="The weight tensor is never read.", fix="Multiply by inputs[1]."))
        return Reply(content=fields(rationale="uses the weight now", source=f"```cpp\n{KERNEL}\n```"))
    ctx = ProposalContext(history=["attempt a1: rejected as wrong_result: 85/85 elements outside atol"],
                          failed_source=KERNEL, failed_verdict="rejected as wrong_result: 85/85 elements outside atol")
    with ScriptedServer(respond) as srv:
        cand = proposer(srv).propose(PROPOSAL.model_copy(update={"context": ctx}))
        diagnose_prompt, propose_prompt = (r.prompt for r in srv.requests)
    assert "wrong_result" in diagnose_prompt and "kscout_forward" in diagnose_prompt
    assert ("diagnosis of the latest failure: The weight tensor is never read. Fix: Multiply by inputs[1]."
            in propose_prompt)
    assert [c.role for c in cand.llm_calls] == ["diagnose", "propose"]
    with ScriptedServer(respond) as srv:   # switched off: one call
        proposer(srv, diagnose_failures=False).propose(PROPOSAL.model_copy(update={"context": ctx}))
        assert len(srv.requests) == 1


def test_world_model_answers_are_typed_and_malformed_ones_are_errors():
    ops = [{"op": "insert", "parent_id": "n1", "move": "omp-rows", "description": "threads over rows",
            "expected_gain": 3.0, "reason": "2 cores idle"}, {"op": "prune", "node_id": "n2", "reason": "slow"}]
    with ScriptedServer(lambda req: Reply(content=fields(operations=json.dumps(ops)))) as srv:
        answer, calls, program = proposer(srv).update_world_model("n1 'vec'", "n1 ...", "n1: accepted", "omp-rows: ...")
    assert not answer.error and [o.op for o in answer.operations] == ["insert", "prune"]
    assert answer.operations[0].move == "omp-rows" and answer.operations[0].expected_gain == 3.0
    assert calls[0].role == "world_model" and program.startswith("world_model@")
    bad = [{"op": "insert", "description": "no parent, no move"}]
    with ScriptedServer(lambda req: Reply(content=fields(operations=json.dumps(bad)))) as srv:
        answer, calls, _ = proposer(srv).update_world_model("n1", "t", "r", "m")
    assert answer.error and not answer.operations and len(calls) == 1
