"""The provider layer through litellm's real HTTP path, against a scripted OpenAI-compatible server:
retries on rate limits, server errors and timeouts, every attempt recorded, keys never recorded."""

from __future__ import annotations

import pytest

from agents import programs
from agents.models import CallPolicy, ModelConfigError, ModelPool, ModelSpec, parse_model_arg, preflight, scrub
from search.world_model import TreeOperation, valid_operations
from harness.evidence import FailureClass
from tests.agents.scripted_server import Reply, ScriptedServer

KERNEL = '#include "kscout.h"\nKS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) { return 0; }'
ANSWER = f"[[ ## rationale ## ]]\nscalar loop\n\n[[ ## source ## ]]\n```cpp\n{KERNEL}\n```\n\n[[ ## completed ## ]]\n"
INPUTS = dict(workload="axpy", backend="cpu_cpp", strategy="naive", skills="", parent_source="", history="")


def scripted(*replies: Reply):
    """A server answering with `replies` in order, then with the good answer."""
    queue = list(replies)
    return ScriptedServer(lambda req: queue.pop(0) if queue else Reply(content=ANSWER))


def pool(server: ScriptedServer, model: str = "openai/gpt-4o-mini", **policy) -> ModelPool:
    policy = {"backoff_s": 0.05, "timeout_s": 2.0, **policy}
    return ModelPool([ModelSpec(model=model, api_base=server.api_base)], CallPolicy(**policy))


def test_a_good_answer_is_parsed_and_priced():
    with scripted() as srv:
        res = pool(srv).call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.failure is None and "kscout_forward" in res.prediction.source
    [call] = res.calls
    assert call.outcome == "ok" and call.role == "propose" and call.finish_reason == "stop"
    assert call.tokens_in > 50 and call.tokens_out > 10
    # litellm's offline price list: gpt-4o-mini at $0.15 / $0.60 per million tokens
    assert call.priced and call.dollars == pytest.approx(call.tokens_in * 0.15e-6 + call.tokens_out * 0.6e-6, rel=1e-6)
    assert srv.requests[0].model == "gpt-4o-mini"


def test_rate_limit_server_error_and_timeout_are_retried_and_each_recorded():
    with scripted(Reply(status=429), Reply(status=503), Reply(content=ANSWER, delay_s=3.0)) as srv:
        res = pool(srv, timeout_s=1.0, retries=3).call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.failure is None and "kscout_forward" in res.prediction.source
    assert [c.outcome for c in res.calls] == ["rate_limited", "server_error", "timeout", "ok"]
    assert res.calls[2].latency_s >= 0.9
    assert all(c.tokens_in == 0 for c in res.calls[:3])      # failed requests used no tokens


def test_gives_up_after_the_retries_as_model_error():
    with ScriptedServer(lambda req: Reply(status=429)) as srv:
        res = pool(srv, retries=2).call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.failure == FailureClass.model_error and "rate_limited" in res.error
    assert len(res.calls) == 3 and len(srv.requests) == 3


def test_an_auth_error_is_not_retried():
    with scripted(Reply(status=401)) as srv:
        res = pool(srv, retries=3).call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.failure == FailureClass.model_error and "auth_error" in res.error
    assert len(srv.requests) == 1


def test_an_answer_outside_the_format_keeps_its_text():
    with scripted(Reply(content=f"Sure! Here you go:\n```cpp\n{KERNEL}\n```")) as srv:
        res = pool(srv).call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.failure is None and res.prediction is None
    assert "kscout_forward" in res.raw and "output format" in res.error
    assert len(srv.requests) == 1            # no silent second (JSON-adapter) call
    assert res.calls[0].tokens_out > 0


def test_unpriced_models_are_marked():
    with scripted() as srv:
        res = pool(srv, model="openai/kscout-scripted-model").call(programs.KernelProposer(), "propose", **INPUTS)
    assert res.calls[0].outcome == "ok" and not res.calls[0].priced and res.calls[0].dollars == 0


def test_preflight_names_the_fix(monkeypatch):
    with pytest.raises(ModelConfigError, match="provider/model"):
        preflight(ModelSpec(model="gpt-4o-mini"))
    with pytest.raises(ModelConfigError, match="does not know this provider"):
        preflight(ModelSpec(model="nosuchprovider/some-model"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ModelConfigError, match="ANTHROPIC_API_KEY"):
        preflight(ModelSpec(model="anthropic/claude-sonnet-4-5"))
    preflight(ModelSpec(model="openai/served-here", api_base="http://127.0.0.1:9/v1"))   # self-hosted: no key needed
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    preflight(ModelSpec(model="anthropic/claude-sonnet-4-5"))


def test_model_arguments_and_weights():
    assert parse_model_arg("openai/gpt-4o-mini=3").weight == 3
    assert parse_model_arg("openai/gpt-4o", "http://h/v1").api_base == "http://h/v1"
    with pytest.raises(ModelConfigError, match="weight"):
        parse_model_arg("openai/gpt-4o=lots")


def test_keys_are_scrubbed_from_error_text(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-value-123")
    assert "sk-very-secret" not in scrub("401: invalid key sk-very-secret-value-123 given")
    assert "<OPENAI_API_KEY>" in scrub("401: invalid key sk-very-secret-value-123 given")


def test_world_model_operations_are_typed_and_capped():
    ops = [TreeOperation(op="insert", parent_id="n0", move=f"m{i}", description="x") for i in range(5)]
    ops.append(TreeOperation(op="prune", node_id="n3", reason="slower than its parent"))
    kept, dropped = valid_operations(ops)
    assert [o.op for o in kept] == ["insert"] * 3 + ["prune"] and len(dropped) == 2
    with pytest.raises(ValueError, match="names node_id"):
        TreeOperation(op="prune")
    with pytest.raises(ValueError, match="parent_id and move"):
        TreeOperation(op="insert", parent_id="n0")


def test_program_versions_change_with_instructions():
    default, label = programs.load("propose")
    assert label.startswith("propose@") and not label.endswith("+gepa")
    changed = programs.KernelProposer()
    changed.step.signature = changed.step.signature.with_instructions("Write a kernel.")
    assert programs.version(changed) != programs.version(default)



def test_models_are_chosen_by_role_and_weight():
    with scripted() as srv:
        specs = [ModelSpec(model="openai/gpt-4o-mini", weight=3, role="propose", api_base=srv.api_base),
                 ModelSpec(model="openai/gpt-4o", weight=1, role="propose", api_base=srv.api_base),
                 ModelSpec(model="openai/o3", role="plan", api_base=srv.api_base)]
        p = ModelPool(specs, seed=1)
        picks = [p.choose("propose").model for _ in range(400)]
        assert set(picks) == {"openai/gpt-4o-mini", "openai/gpt-4o"}
        assert 0.65 < picks.count("openai/gpt-4o-mini") / 400 < 0.85      # weight 3 : 1
        assert {p.choose("plan").model for _ in range(20)} == {"openai/o3"}
        # a reasoning model accepts only temperature 1 and >= 16k output tokens: set, not refused
        assert p.lms["openai/o3"].kwargs["temperature"] == 1.0
        assert p.lms["openai/o3"].kwargs["max_completion_tokens"] >= 16000
