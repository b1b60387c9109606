"""Triton template families: registered per backend, rendered as Python modules, and every move
verified by the real harness through Triton's CPU interpreter (no GPU; correctness only).

The workloads are copies of the shipped ones with the bench shape shrunk to the smallest declared
shape, so the interpreter (each program instance runs as Python) stays within seconds per kernel
while the odd verification shapes (7x33, 5x17, 3x65537, 4x100003: tails) stay.
"""

from __future__ import annotations

import re

import pytest

from agents import templates
from agents.offline import OfflineProposer
from harness import workload
from harness.attempt import EAGER, Evaluator
from harness.config import HarnessConfig
from harness.evidence import Candidate, Verdict
from search.strategy import Proposal
from tests.agents.test_templates import smallest_bench_copy, stacked

# Every family registered for triton: adding agents/templates/triton_<family>.py puts it under these tests.
TRITON_FAMILIES = templates.families(rendering=True, backend="triton")


def test_every_shipped_workload_has_triton_templates():
    """Issue 6: Triton candidates of every shipped workload verify through the interpreter."""
    missing = [w for w in workload.list_builtin()
               if workload.load(w).spec.family not in TRITON_FAMILIES or "triton" not in workload.load(w).spec.backends]
    assert not missing, f"shipped workloads without triton templates (or without 'triton' in backends): {missing}"


def test_triton_families_are_registered_per_backend():
    assert set(TRITON_FAMILIES) <= set(templates.families(rendering=True, backend="triton"))
    for name in TRITON_FAMILIES:
        fam = templates.get(name, "triton")
        assert fam.backend == "triton" and fam.key == f"{name}@triton"
        assert templates.get(fam.key) is fam                      # a tree's key finds it again
        assert templates.get(name) is not fam and templates.get(name).key == name   # cpu_cpp unchanged
        assert "triton" in workload.load(name).spec.backends
    with pytest.raises(KeyError, match="rmsnorm.*cuda.*has templates for \\['cpu_cpp', 'triton'\\]"):
        templates.get("rmsnorm", "cuda")


@pytest.mark.parametrize("name", TRITON_FAMILIES)
def test_every_move_renders_a_python_module_with_the_entry_point(name):
    fam = templates.get(name, "triton")
    for params in [fam.defaults()] + [dict(fam.defaults(), **m.assigns) for m in fam.moves]:
        src = fam.render(params)
        compile(src, f"{name}.py", "exec")                       # valid Python
        assert "@triton.jit" in src and "def kscout_forward(" in src and ", out):" in src
        # no torch math on the data path: scratch buffers (torch.empty) for split reductions are allowed
        assert not re.search(r"torch\.(?!empty\b|empty_like\b|float32\b|int32\b)", src.split("def kscout_forward")[1])
        assert src.startswith("# kscout offline template")


def test_code_key_ignores_python_comments_and_unused_axes():
    fam = templates.get("softmax", "triton")
    # whole_max only matters with the whole-row kernel on: same code, same key
    assert fam.code_key({"whole_max": 4096}) == fam.code_key({"whole_max": 8192})
    assert fam.code_key({"whole_row": "on", "whole_max": 4096}) != fam.code_key({"whole_row": "on", "whole_max": 8192})


def test_offline_proposer_writes_triton_candidates():
    prop = OfflineProposer("softmax", "softmax", backend="triton")
    c = prop.naive()
    assert c.backend == "triton" and c.source.startswith("# strategy: naive")
    assert c.params == templates.get("softmax", "triton").defaults()
    c2 = prop.propose(Proposal(node_id="n1", params={"passes": "online"}, strategy="online"))
    assert "m_new = tl.maximum" in c2.source


def every_move(fam) -> dict:
    """All of a family's moves together (with what they require) and its largest tunables."""
    every = dict(fam.defaults(), **{k: v for m in fam.moves for k, v in {**m.requires, **m.assigns}.items()})
    return dict(every, **{a.name: a.values[-1] for a in fam.tunables()})


@pytest.mark.slow
@pytest.mark.parametrize("name", TRITON_FAMILIES)
def test_every_move_verifies_in_the_interpreter(name, tmp_path):
    """The naive kernel and all moves together (largest tunables) go the whole way a search sends
    them (verify, then the bench child re-checks repeated calls); each single move, applied with
    what it requires, and the planner's stack of them are verified on every shape (the bench
    child adds nothing new for them, and each child start costs seconds of torch and triton
    imports)."""
    fam = templates.get(name, "triton")
    # triton_targets off: whether these kernels fit a GPU at the real bench shape is
    # tests/harness/test_gpu_compile.py's question (here the bench shape is the smallest one)
    ev = Evaluator(smallest_bench_copy(name, tmp_path),
                   cfg=HarnessConfig(cache_dir=tmp_path / "cache", triton_interpret=True, triton_targets=[]))
    try:
        whole = [fam.defaults(), every_move(fam)]
        single = [dict(fam.defaults(), **{**m.requires, **m.assigns}) for m in fam.moves] + [stacked(fam)]
        seen: set[str] = set()
        for params, timed in [(p, True) for p in whole] + [(p, False) for p in single]:
            key = fam.code_key(params)
            if key in seen:            # a move whose code another variant already covered
                continue
            seen.add(key)
            p = ev.evaluate(Candidate(source=fam.render(params), backend="triton", workload=name, params=params),
                            bench=timed)
            assert p.verdict == Verdict.accepted, (params, p.failure_class, p.failure_message,
                                                   p.artifacts.get("candidate_traceback"))
            assert p.bench is None and p.speedup(EAGER) is None
            assert "interpreter" in p.correctness_only if timed else p.correctness_only
            assert {c.shape for c in p.verify.cases} >= {s.name for s in ev.workload.spec.shapes}
    finally:
        ev.close()
