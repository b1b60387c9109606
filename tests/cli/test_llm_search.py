"""`kscout search --model …` end to end: real CLI, Ray, compiler, SQLite, and litellm's real HTTP
path to a scripted OpenAI-compatible server on 127.0.0.1 (the only stand-in: the model's answers)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from agents import templates
from tests.agents.scripted_server import Reply, ScriptedServer
from tests.cli.test_search_e2e import run_cli, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SECRET = "sk-kscout-test-secret-0123456789abcdef"
FAMILY = templates.get("rmsnorm")
PARAMS = re.compile(r"parameters \(the strategy's knobs; follow them where they apply\): (.*)")


def kernel_for(prompt: str) -> str:
    """What a capable model would write: the kernel for the parameters the prompt asks for."""
    params = dict(FAMILY.defaults())
    m = PARAMS.search(prompt)
    for kv in (m.group(1).split(", ") if m else []):
        k, _, v = kv.partition("=")
        if k in params:
            params[k] = (v == "True") if isinstance(params[k], bool) else type(params[k])(v)
    return FAMILY.render(FAMILY.validate_params(params))


def answer(source: str) -> Reply:
    return Reply(content=f"[[ ## rationale ## ]]\nImplements the strategy as asked.\n\n"
                         f"[[ ## source ## ]]\n```cpp\n{source}\n```\n\n[[ ## completed ## ]]\n")


MOVE_LINE = re.compile(r"^([\w-]+): ", re.M)


def world_model_answer(prompt: str) -> Reply:
    """Insert the first two available moves under the node, and one move that does not exist."""
    node = re.findall(r"\[\[ ## node ## \]\]\n(\S+)", prompt)[-1]   # the user message, not the format template
    moves_text = prompt.split("[[ ## moves ## ]]\n", 2)[-1].split("\n\n")[0]
    moves = MOVE_LINE.findall(moves_text)[:2]
    ops = [{"op": "insert", "parent_id": node, "move": m, "description": f"model's pick: {m}",
            "expected_gain": 2.0, "reason": f"{m} should pay off here"} for m in moves]
    ops.append({"op": "insert", "parent_id": node, "move": "warp-specialize", "description": "no such move"})
    return Reply(content=f"[[ ## operations ## ]]\n{json.dumps(ops)}\n\n[[ ## completed ## ]]\n")


def is_world_model(req) -> bool:
    return "[[ ## operations ## ]]" in req.prompt


def is_diagnosis(req) -> bool:
    return "[[ ## diagnosis ## ]]" in req.prompt


class Script:
    """World-model and diagnosis requests get sensible answers. Of the kernel requests, the 2nd is
    rate-limited (then retried), the 3rd answers in prose only; the rest write kernels."""

    def __init__(self):
        self.n = 0

    def __call__(self, req) -> Reply:
        if is_world_model(req):
            return world_model_answer(req.prompt)
        if is_diagnosis(req):
            return Reply(content="[[ ## diagnosis ## ]]\nThe weight is never applied.\n\n"
                                 "[[ ## fix ## ]]\nMultiply by inputs[1].\n\n[[ ## completed ## ]]\n")
        self.n += 1
        if self.n == 2:
            return Reply(status=429)
        if self.n == 3:
            return Reply(content="I would fuse the square-sum and the scale into one pass over each row.")
        return answer(kernel_for(req.prompt))


def llm_env() -> dict[str, str]:
    return {"OPENAI_API_KEY": SECRET}


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("llm")
    wl = small_copy("rmsnorm", tmp, "{ M = 64, N = 4096 }")
    config = tmp / "fast.toml"
    # two attempts in flight at most, so later proposals at a node see the earlier ones recorded
    config.write_text("[search]\nqueue_depth = 1\n[agents]\nconcurrency = 1\n[agents.call]\nbackoff_s = 0.1\ntimeout_s = 20\n")
    with ScriptedServer(Script()) as srv:
        proc = run_cli("search", str(wl), "--model", "openai/gpt-4o-mini", "--api-base", srv.api_base,
                       "--attempts", "6", "--config", str(config), "--json", "--runs-dir", str(tmp / "runs"),
                       cwd=tmp, env=llm_env())
        requests = list(srv.requests)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    return tmp, out, proc, requests


def test_models_write_kernels_that_verify(llm_run):
    tmp, out, _, requests = llm_run
    assert out["counts"]["attempts"] == 6
    assert out["counts"]["verified"] >= 3
    assert out["failures"].get("no_code") == 1           # the prose-only answer, named, not a crash
    assert out["best"]["speedup"]["torch_eager"] > 0
    packets = [json.loads(p.read_text()) for p in Path(out["run_dir"], "packets").glob("*.json")]
    by_proposer = {}
    for p in packets:
        by_proposer.setdefault(p["candidate"]["proposer"], []).append(p)
    assert len(by_proposer["offline"]) == 1              # the naive root: the naive C++ baseline
    llm = by_proposer["llm:openai/gpt-4o-mini"]
    assert len(llm) == 5
    assert all(p["candidate"]["program"].startswith("propose@") for p in llm)
    accepted = [p for p in llm if p["verdict"] == "accepted"]
    assert accepted and all(p["candidate"]["rationale"] and p["cost"]["llm_dollars"] > 0 for p in accepted)
    prose = next(p for p in llm if p["failure_class"] == "no_code")
    assert "prose only" in prose["failure_message"] and prose["compile"] is None   # never reached the hardware


def test_every_call_is_in_the_log_with_tokens_and_cost(llm_run):
    tmp, out, _, requests = llm_run
    db = sqlite3.connect(Path(out["run_dir"]) / "kscout.db")
    rows = db.execute("SELECT model, role, outcome, tokens_in, tokens_out, dollars, latency_s, attempt_id "
                      "FROM llm_calls").fetchall()
    assert len(rows) == len(requests)                    # every request, failed ones too
    propose = [r for r in rows if r[1] == "propose"]
    assert len(propose) == len([r for r in requests if not is_world_model(r) and not is_diagnosis(r)]) == 6
    assert sorted(r[2] for r in propose) == ["ok"] * 5 + ["rate_limited"]   # 5 proposals + 1 rate-limited try
    assert all(r[0] == "openai/gpt-4o-mini" and r[7] for r in propose)      # each tied to its attempt
    planner_calls = [r for r in rows if r[1] == "world_model"]
    assert planner_calls and all(r[7] is None for r in planner_calls)       # the planner's, not an attempt's
    ok = [r for r in rows if r[2] == "ok"]
    assert all(r[3] > 100 and r[4] > 5 and r[5] > 0 and r[6] > 0 for r in ok)
    total = sum(r[5] for r in rows)
    [usage] = out["models"]
    assert usage["calls"] == len(rows) and usage["outcomes"]["rate_limited"] == 1
    assert usage["dollars"] == pytest.approx(total)
    status = json.loads(run_cli("status", out["run_id"], "--runs-dir", str(tmp / "runs"), "--json", cwd=tmp).stdout)
    assert status["llm_dollars"] == pytest.approx(total) and status["llm_tokens"] == sum(r[3] + r[4] for r in rows)


def test_the_model_expands_the_tree_and_invalid_edits_are_refused(llm_run):
    _, out, _, requests = llm_run
    db = sqlite3.connect(Path(out["run_dir"]) / "kscout.db")
    nodes = {r[0]: r for r in db.execute("SELECT id, parent_id, move, description, knowledge, note FROM nodes")}
    children = sorted((n for n in nodes.values() if n[1] == "n0"), key=lambda n: int(n[0][1:]))
    # the root's expansion is the model's: its two picks (not every applicable move), with its reasons
    picks = children[:2]
    assert all(c[3].startswith("model's pick: ") and "should pay off here" in c[4] for c in picks)
    # More children only when both picks died and the frontier ran dry with budget left: the rules
    # then add the moves the model passed over, and say so (search/planner.py, _reopen).
    assert len(children) == 2 or "reopened: the rules added the moves" in nodes["n0"][5], nodes["n0"][5]
    assert not any(c[3].startswith("model's pick: ") for c in children[2:])
    assert "insert 'warp-specialize': not an available move for n0" in nodes["n0"][5]
    first = next(r for r in requests if is_world_model(r))
    assert "[[ ## node ## ]]\nn0 " in first.prompt and "[[ ## moves ## ]]" in first.prompt


def test_the_key_never_lands_in_logs_database_or_packets(llm_run):
    tmp, out, proc, requests = llm_run
    assert SECRET not in proc.stdout + proc.stderr
    for f in Path(out["run_dir"]).rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_the_prompt_carries_contract_skills_and_history(llm_run):
    _, _, _, all_requests = llm_run
    requests = [r for r in all_requests if not is_world_model(r) and not is_diagnosis(r)]
    first = requests[0].prompt
    assert "reference.py" in first and "class Model(nn.Module)" in first       # the workload's contract
    assert "## Skill: cpu-cpp" in first                                        # the backend's skill
    # every proposal starts from its parent strategy's best kernel (the first: the naive root's) ...
    assert "[[ ## parent_source ## ]]\n// strategy: naive" in first
    parents = [r.prompt.rsplit("[[ ## parent_source ## ]]\n", 1)[-1].split("[[ ## ", 1)[0] for r in requests]
    assert all("kscout_forward(" in p for p in parents)
    # ... and every prompt carries the node's history: the attempts there that were recorded when it
    # was sent. Whether one was, is timing: a node's second attempt may be sent while its first runs
    # (queue_depth keeps the worker busy), so which prompts list attempts varies from run to run.
    hist = [r.prompt.rsplit("[[ ## history ## ]]\n", 1)[-1].split("[[ ## ", 1)[0].strip() for r in requests]
    line = re.compile(r"attempt \w+: (accepted, [\d.]+x over torch eager|rejected as \w+)")
    assert all(h == "(none: first attempt at this strategy)" or all(line.match(x) for x in h.splitlines()
                                                                    if x.startswith("attempt ")) for h in hist), hist
    # The digest a prompt gets, built from this run's log for every node afterwards: one line per
    # attempt, with the verdict, the speedup or the failure class (the no_code answer included).
    from types import SimpleNamespace

    from memory.context import proposal_context
    from memory.store import Store
    tmp, out = llm_run[0], llm_run[1]
    store = Store.open(f"sqlite:///{Path(out['run_dir']) / 'kscout.db'}")
    lines = []
    for node in sorted({a.node_id for a in store.attempts(out["run_id"])}):
        ctx = proposal_context(store, out["run_id"], SimpleNamespace(id=node), None)
        assert len(ctx.history) == len(store.attempts(out["run_id"], node))
        lines += ctx.history
    assert all(line.match(x) for x in lines), lines
    assert any("rejected as no_code" in x for x in lines) and any("x over torch eager" in x for x in lines)


def test_spend_budget_stops_the_run(tmp_path):
    wl = small_copy("rmsnorm", tmp_path, "{ M = 64, N = 4096 }")
    with ScriptedServer(lambda req: world_model_answer(req.prompt) if is_world_model(req)
                        else answer(kernel_for(req.prompt))) as srv:
        proc = run_cli("search", str(wl), "--model", "openai/gpt-4o-mini", "--api-base", srv.api_base,
                       "--attempts", "20", "--max-dollars", "0.0005", "--agents", "1", "--json",
                       "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path, env=llm_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["stop_reason"] == "spend budget reached ($0.0005)"
    assert out["counts"]["attempts"] < 20
    assert out["models"][0]["dollars"] >= 0.0005


@pytest.mark.parametrize("args, message", [
    (["--model", "gpt-4o-mini"], "give the provider too, as provider/model"),
    (["--model", "nosuchprovider/x"], "litellm does not know this provider"),
    (["--model", "anthropic/claude-sonnet-4-5"], "needs ANTHROPIC_API_KEY in the environment"),
    (["--api-base", "http://127.0.0.1:9/v1"], "--api-base and --planner-model need --model"),
    (["--planner-model", "openai/gpt-4o"], "--api-base and --planner-model need --model"),
])
def test_bad_models_fail_before_the_run_starts(tmp_path, args, message):
    proc = run_cli("search", "rmsnorm", *args, "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                   env={"ANTHROPIC_API_KEY": ""})
    assert proc.returncode == 2
    assert message in " ".join(proc.stderr.split())
    assert not (tmp_path / "runs").exists()               # nothing was started


FORGETS_WEIGHT = r'''
#include "kscout.h"
#include <math.h>
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    float* y = (float*)out->data;
    int64_t M = in[0].shape[0], N = in[0].shape[1];
    for (int64_t i = 0; i < M; ++i) {
        double s = 0;
        for (int64_t j = 0; j < N; ++j) s += (double)x[i * N + j] * x[i * N + j];
        float r = 1.0f / sqrtf((float)(s / N) + 1e-6f);
        for (int64_t j = 0; j < N; ++j) y[i * N + j] = x[i * N + j] * r;   /* forgets the weight */
    }
    return 0;
}
'''
MARKER = "Multiply by inputs[1], the learned weight, after normalising."


class GepaScript:
    """Task model: forgets the weight unless its instructions say otherwise. Reflection model
    (GEPA's JSON-adapter prompt, recognisable by its `new_instruction` field): reads the harness's
    feedback and answers with instructions that name the fix."""

    def __init__(self):
        self.reflections = []

    def __call__(self, req) -> Reply:
        if is_world_model(req):
            return world_model_answer(req.prompt)
        if "new_instruction" in req.prompt:
            self.reflections.append(req.prompt)
            return Reply(content=json.dumps({"new_instruction": "Write one complete, correct and fast RMSNorm "
                                             f"kernel for the strategy. {MARKER} Answer in one code block."}))
        if MARKER in req.prompt:
            return answer(kernel_for(req.prompt))
        return answer(FORGETS_WEIGHT)


def test_gepa_learns_from_harness_feedback_and_searches_load_the_result(llm_run):
    tmp, out, _, _ = llm_run
    optimized = tmp / "optimized"
    script = GepaScript()
    with ScriptedServer(script) as srv:
        proc = run_cli("skills", "optimize", "--run", out["run_id"], "--api-base", srv.api_base,
                       "--max-metric-calls", "10", "--examples", "2", "--out", str(optimized), "--json",
                       "--runs-dir", str(tmp / "runs"), cwd=tmp, env=llm_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout)
    # before: every kernel forgot the weight (compiled, rejected as wrong_result: 0.3)
    assert report["baseline_score"] == pytest.approx(0.3)
    assert report["best_score"] > 0.6 and report["changed"]
    assert report["after"].endswith("+gepa") and report["saved_to"] == str(optimized / "propose.json")
    assert any(s["verdict"] == "wrong_result" for s in report["scores"])
    assert any(s["verdict"] == "accepted" for s in report["scores"])
    # the reflection model read the harness's own words
    assert script.reflections and "Rejected by the harness as wrong_result" in script.reflections[0]
    assert MARKER in (optimized / "propose.json").read_text()
    meta = json.loads((optimized / "propose.meta.json").read_text())
    assert meta["run_id"] == out["run_id"] and meta["model"] == "openai/gpt-4o-mini"
    # GEPA's calls are in the run's log too
    db = sqlite3.connect(Path(out["run_dir"]) / "kscout.db")
    roles = dict(db.execute("SELECT role, COUNT(*) FROM llm_calls WHERE attempt_id IS NULL GROUP BY role").fetchall())
    assert roles.get("reflect", 0) >= 1 and roles.get("gepa_task", 0) >= 2

    # a later search loads the optimized program, and its packets say so
    config = tmp / "gepa.toml"
    config.write_text(f'[agents]\nconcurrency = 1\nprograms_dir = "{optimized}"\n')
    wl = Path(tmp / "rmsnorm")
    with ScriptedServer(GepaScript()) as srv:
        proc = run_cli("search", str(wl), "--model", "openai/gpt-4o-mini", "--api-base", srv.api_base,
                       "--attempts", "3", "--config", str(config), "--json", "--runs-dir", str(tmp / "runs2"),
                       cwd=tmp, env=llm_env())
        prompts = [r.prompt for r in srv.requests if not is_world_model(r) and not is_diagnosis(r)]
    assert proc.returncode == 0, proc.stderr[-4000:]
    second = json.loads(proc.stdout)
    assert second["counts"]["verified"] == 3                 # with the learned instruction, the weight is used
    assert all(MARKER in p for p in prompts)
    packets = [json.loads(p.read_text()) for p in Path(second["run_dir"], "packets").glob("*.json")]
    assert {p["candidate"]["program"] for p in packets if p["candidate"]["proposer"] != "offline"} == {report["after"]}
