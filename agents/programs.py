"""DSPy programs of the agents: propose a kernel, diagnose a failed attempt, update the world model.

The signatures are the prompts' skeletons; GEPA (`kscout skills optimize`) rewrites their
instructions from logged attempts and saves the result under skills/optimized/<program>.json,
which later runs load. Every candidate records the version (a hash of the program's state) that
wrote it, so a reviewer can tell the default program's kernels from an optimized one's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dspy

from agents.paths import OPTIMIZED_DIR
from search.world_model import TreeOperation


class ProposeKernel(dspy.Signature):
    """Write one complete, correct and fast kernel that implements the given optimization strategy
    for the workload. Obey the skills' contract and hard rules exactly: the harness verifies the
    kernel on odd and unseen shapes and several input distributions, rejects every cheat it knows,
    and times it against torch eager and torch.compile. Learn from the earlier attempts listed
    (their failure classes and errors). Answer with the full source in a single fenced code block."""

    workload: str = dspy.InputField(desc="the contract: reference PyTorch module, shapes, dtype, tolerance, bytes and FLOPs")
    backend: str = dspy.InputField(desc="cpu_cpp (C++ against kscout.h), triton, cuda or hip")
    strategy: str = dspy.InputField(desc="the strategy-tree node to implement, with its parameters")
    skills: str = dspy.InputField(desc="how to write kernels for this backend and op family; hard rules")
    parent_source: str = dspy.InputField(desc="the best kernel of the parent strategy, to start from ('' at the root)")
    history: str = dspy.InputField(desc="earlier attempts at this strategy: verdict, failure class, speedup, error")
    rationale: str = dspy.OutputField(desc="how the kernel implements the strategy, in a few sentences")
    source: str = dspy.OutputField(desc="the complete kernel source in one fenced code block")


class DiagnoseFailure(dspy.Signature):
    """Explain why this kernel was rejected by the harness and say precisely what to change.
    Name the line or construct at fault; do not restate the error."""

    source: str = dspy.InputField()
    verdict: str = dspy.InputField(desc="failure class, harness messages, compile log excerpt, failing cases")
    diagnosis: str = dspy.OutputField(desc="the cause, in one or two sentences")
    fix: str = dspy.OutputField(desc="the change that fixes it")


class UpdateWorldModel(dspy.Signature):
    """You maintain the search's world model: a tree of optimization strategies with measured
    results. Given the tree and the newest results, propose at most three new strategies worth
    trying (insert, under the node they refine, using one of the available moves), re-estimate the
    expected gain of frontier nodes the results speak to (update), and prune strategies the
    evidence shows are dead ends (prune). Propose nothing when nothing is warranted."""

    node: str = dspy.InputField(desc="the node whose refinement just ended: new strategies go under it")
    tree: str = dspy.InputField(desc="nodes: id, parent, strategy, status, attempts, best speedup, expected gain")
    results: str = dspy.InputField(desc="the newest attempts: node, verdict, failure class, speedup")
    moves: str = dspy.InputField(desc="the moves that can create a child strategy, with what each does")
    operations: list[TreeOperation] = dspy.OutputField(desc="at most 3 inserts; updates and prunes as needed")


class _OneStep(dspy.Module):
    """A program of one predictor over its signature: the unit GEPA rewrites."""

    signature: type[dspy.Signature]

    def __init__(self):
        super().__init__()
        self.step = dspy.Predict(self.signature)

    def forward(self, **inputs):
        return self.step(**inputs)


class KernelProposer(_OneStep):
    signature = ProposeKernel


class FailureDiagnoser(_OneStep):
    signature = DiagnoseFailure


class WorldModelUpdater(_OneStep):
    signature = UpdateWorldModel


PROGRAMS: dict[str, type[dspy.Module]] = {"propose": KernelProposer, "diagnose": FailureDiagnoser,
                                          "world_model": WorldModelUpdater}


def version(program: dspy.Module) -> str:
    """A short hash of the program's state (instructions, demos): what wrote a candidate."""
    state = json.dumps(program.dump_state(), sort_keys=True, default=str)
    return hashlib.sha256(state.encode()).hexdigest()[:8]


def load(name: str, optimized_dir: Path = OPTIMIZED_DIR) -> tuple[dspy.Module, str]:
    """The program, optimized if skills/optimized/<name>.json exists; and its version label."""
    program = PROGRAMS[name]()
    path = optimized_dir / f"{name}.json"
    kind = "default"
    if path.is_file():
        program.load(str(path))
        kind = "optimized"
    return program, f"{name}@{version(program)}" + ("" if kind == "default" else "+gepa")
