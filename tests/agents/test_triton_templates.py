"""Triton template families: registered per backend, rendered as Python modules, and every move
verified by the real harness through Triton's CPU interpreter (no GPU; correctness only).

The workloads are copies of the shipped ones with the bench shape shrunk to the smallest declared
shape, so the interpreter (each program instance runs as Python) stays within seconds per kernel
while the odd verification shapes (7x33, 5x17, 3x65537, 4x100003: tails) stay.
"""

from __future__ import annotations

import functools
import json
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


def one_input_per_shape(wl: workload.Workload) -> workload.Workload:
    """`wl` (a copy in a temp dir) with each shape verified on its first input distribution only
    (the workloads list their most telling one first), plus any a tolerance is set for. The seeds
    stay: the contract needs two, to check that the output varies with the input."""
    spec = wl.spec
    first = spec.inputs.distributions[0]
    keep = [first] + sorted({d for t in spec.tolerance.values() for d in t.by_distribution} - {first})
    toml = wl.path / "workload.toml"
    head, sep, rest = toml.read_text().partition("\n[inputs]\n")
    assert sep, f"{toml}: no [inputs] table"
    inputs, nxt, tail = rest.partition("\n[")
    inputs, n = re.subn(r"^distributions = \[[^\]]*\]", f"distributions = {json.dumps(keep)}", inputs, flags=re.M)
    assert n == 1, f"{toml}: [inputs] without a distributions line"
    # a shape's own list (big shapes draw fewer): its first
    first_only = functools.partial(re.sub, r'^(distributions = \[)("[^"]+")[^\]]*\]', r"\g<1>\g<2>]", flags=re.M)
    toml.write_text(first_only(string=head) + sep + inputs + nxt + first_only(string=tail))
    return workload.load(wl.path)


def test_one_input_per_shape_keeps_every_shape_and_seed_and_the_first_distribution(tmp_path):
    full = smallest_bench_copy("layernorm", tmp_path / "full")
    one = one_input_per_shape(smallest_bench_copy("layernorm", tmp_path / "one"))
    assert [s.name for s in one.spec.shapes] == [s.name for s in full.spec.shapes]
    assert one.spec.inputs.seeds == full.spec.inputs.seeds == [0, 1]
    assert full.spec.inputs.distributions[0] == "outliers" and len(full.spec.inputs.distributions) == 5
    assert one.spec.inputs.distributions == ["outliers", "offset"]   # offset: it has its own tolerance
    assert all(s.distributions is None or len(s.distributions) == 1 for s in one.spec.shapes)


@pytest.mark.slow
@pytest.mark.parametrize("name", TRITON_FAMILIES)
def test_every_move_verifies_in_the_interpreter(name, tmp_path):
    """The naive kernel, all moves together (largest tunables) and the planner's stack go the
    whole way a search sends them: every shape on every input distribution and seed, and the two
    full kernels then through the bench child (it re-checks repeated calls). Each single move,
    applied with what it requires, is verified on every shape on one input: its code is in the
    all-moves kernel already, where the distributions test its numerics; what it adds on its own
    is indexing, masking and block paths, which the shapes test (the interpreter runs each
    program instance as Python: one input per shape makes this test ~3x faster)."""
    fam = templates.get(name, "triton")
    # triton_targets off: whether these kernels fit a GPU at the real bench shape is
    # tests/harness/test_gpu_compile.py's question (here the bench shape is the smallest one)
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", triton_interpret=True, triton_targets=[])
    ev = Evaluator(smallest_bench_copy(name, tmp_path / "all-inputs"), cfg=cfg)
    ev_one = Evaluator(one_input_per_shape(smallest_bench_copy(name, tmp_path / "one-input")), cfg=cfg)
    try:
        whole = [(fam.defaults(), ev, True), (every_move(fam), ev, True), (stacked(fam), ev, False)]
        single = [(dict(fam.defaults(), **{**m.requires, **m.assigns}), ev_one, False) for m in fam.moves]
        seen: set[str] = set()
        for params, evaluator, timed in whole + single:
            key = fam.code_key(params)
            if key in seen:            # a move whose code another variant already covered
                continue
            seen.add(key)
            p = evaluator.evaluate(Candidate(source=fam.render(params), backend="triton", workload=name,
                                             params=params), bench=timed)
            assert p.verdict == Verdict.accepted, (params, p.failure_class, p.failure_message,
                                                   p.artifacts.get("candidate_traceback"))
            assert p.bench is None and p.speedup(EAGER) is None
            assert "interpreter" in p.correctness_only if timed else p.correctness_only
            spec = evaluator.workload.spec
            assert {c.shape for c in p.verify.cases} >= {s.name for s in spec.shapes}
            assert {c.distribution for c in p.verify.cases} >= set(spec.inputs.distributions)
    finally:
        ev.close()
        ev_one.close()
