"""Knowledge across runs is keyed by what the kernels were judged on. A Triton run in the CPU
interpreter rejects a kernel that would not launch on its triton_targets, so a move that
"never verified" because its tile overflows an MI300X's LDS is a dead end for gfx942 runs only;
a later search for an H100 on the same machine must still try it."""

from __future__ import annotations

from pathlib import Path

from harness.envinfo import environment
from kscout.config import RunConfig
from kscout.run import _knowledge
from memory import RunStatus, Store
from memory.knowledge import hardware_key
from search.node import NodeStatus, StrategyNode


def _log_run(runs: Path, run_id: str, cfg: RunConfig, *, child_verified: bool) -> None:
    """One finished run under runs/RUN/kscout.db: the naive root (1.0x) and its tile-128 child,
    either never verified (a compile_error on the targets) or at 1.5x."""
    (runs / run_id).mkdir(parents=True)
    with Store.open(f"sqlite:///{runs / run_id / 'kscout.db'}") as store:
        store.create_run(run_id, "matmul", "fp", cfg.model_dump(mode="json"),
                         environment(cfg.harness.threads).model_dump(mode="json"))
        root = StrategyNode(id="n0", family="matmul@triton", status=NodeStatus.expanded, attempts=1, accepted=1,
                            best_speedup=1.0)
        child = StrategyNode(id="n1", parent_id="n0", family="matmul@triton", move="tile-128", depth=1, attempts=1,
                             status=NodeStatus.expanded if child_verified else NodeStatus.pruned,
                             accepted=1 if child_verified else 0, best_speedup=1.5 if child_verified else None,
                             note="" if child_verified else "never verified: compile_error x1")
        store.upsert_nodes(run_id, [root, child])
        store.finish_run(run_id, RunStatus.finished, {})


def _cfg(runs: Path, targets: list[str], backend: str = "triton") -> RunConfig:
    return RunConfig.model_validate({"workload": "matmul", "backend": backend, "harness": {"triton_targets": targets},
                                     "memory": {"runs_dir": str(runs)}})


def test_a_dead_end_on_one_set_of_gpu_targets_does_not_prune_the_move_for_another(tmp_path):
    runs = tmp_path / "runs"
    _log_run(runs, "amd-run", _cfg(runs, ["gfx942"]), child_verified=False)

    amd = _knowledge(_cfg(runs, ["gfx942"]), "matmul@triton", "new-run")
    assert [d.move for d in amd.dead_ends] == ["tile-128"]
    assert amd.dead_ends[0].reason.startswith("never verified") and "triton_targets gfx942" in amd.dead_ends[0].hardware

    nvidia = _knowledge(_cfg(runs, ["sm_90"]), "matmul@triton", "new-run")
    assert nvidia.dead_ends == []                       # the H100 search tries tile-128 again
    both = _knowledge(_cfg(runs, ["sm_90", "gfx942"]), "matmul@triton", "new-run")
    assert both.dead_ends == []                         # another set of targets: its own evidence


def test_runs_on_the_same_targets_share_their_knowledge(tmp_path):
    runs = tmp_path / "runs"
    _log_run(runs, "r1", _cfg(runs, ["sm_90"]), child_verified=True)
    _log_run(runs, "r2", _cfg(runs, ["sm_90"]), child_verified=True)
    k = _knowledge(_cfg(runs, ["sm_90"]), "matmul@triton", "new-run")
    assert [(f.move, f.observations, f.runs) for f in k.facts] == [("tile-128", 2, ["r1", "r2"])]
    assert k.facts[0].gain == 1.5


def test_hardware_key_names_the_machine_the_placement_and_the_triton_targets():
    env = environment(2).model_dump(mode="json")
    cpu = f"{env['cpu']} x2 threads"
    assert hardware_key(env) == cpu
    assert hardware_key(env, {"backend": "cpu_cpp", "harness": {"triton_targets": ["sm_90"]}}) == cpu
    assert hardware_key(env, {"backend": "triton", "harness": {"triton_targets": ["sm_90", "gfx942"]}}) == \
        f"{cpu}, triton_targets sm_90+gfx942"
    assert hardware_key(env, {"backend": "triton", "harness": {"triton_targets": []}}) == f"{cpu}, triton_targets none"
    assert hardware_key(env, {"cluster": {"target": "H100"}, "backend": "cuda"}) == "target H100"


def test_stacked_and_remembered_nodes_are_no_moves_evidence(tmp_path):
    """A stacked node (several moves at once) or a memory node gains over the root without any one
    move having earned it: knowledge keeps only the single moves' gains."""
    runs = tmp_path / "runs"
    cfg = _cfg(runs, ["sm_90"])
    _log_run(runs, "r1", cfg, child_verified=True)
    with Store.open(f"sqlite:///{runs / 'r1' / 'kscout.db'}") as store:
        store.upsert_nodes("r1", [
            StrategyNode(id=f"n{i}", parent_id="n0", family="matmul@triton", move=move, depth=1, attempts=1,
                         accepted=1, best_speedup=4.0, status=NodeStatus.expanded)
            for i, move in [(2, "stack"), (3, "memory")]])
    k = _knowledge(cfg, "matmul@triton", "new-run")
    assert [f.move for f in k.facts] == ["tile-128"] and k.dead_ends == []


def test_a_move_measured_over_the_one_it_replaced_is_not_its_own_evidence(tmp_path):
    """omp-tiles on an omp-rows kernel gained 1.1x over rows: that says nothing of what tiles gain
    over one thread, so no fact comes of it; a failure to verify is still the move's own."""
    runs = tmp_path / "runs"
    cfg = _cfg(runs, [], backend="cpu_cpp")
    (runs / "r1").mkdir(parents=True)
    with Store.open(f"sqlite:///{runs / 'r1' / 'kscout.db'}") as store:
        store.create_run("r1", "bias_gelu", "fp", cfg.model_dump(mode="json"),
                         environment(cfg.harness.threads).model_dump(mode="json"))
        node = dict(family="bias_gelu", status=NodeStatus.expanded, attempts=1, accepted=1)
        store.upsert_nodes("r1", [
            StrategyNode(id="n0", best_speedup=1.0, **node),
            StrategyNode(id="n1", parent_id="n0", move="omp-rows", depth=1, best_speedup=1.7, **node),
            StrategyNode(id="n2", parent_id="n1", move="omp-tiles", depth=2, best_speedup=1.9,
                         displaces=["omp-rows"], **node),
            StrategyNode(id="n3", parent_id="n1", move="vec-omp-simd", depth=2, best_speedup=None, note="never verified",
                         displaces=["poly-exp"], **dict(node, accepted=0, status=NodeStatus.pruned))])
        store.finish_run("r1", RunStatus.finished, {})
        assert store.nodes("r1")[2].displaces == ["omp-rows"]     # stored and read back (resume sees it)
    k = _knowledge(cfg, "bias_gelu", "new-run")
    assert [(f.move, f.gain) for f in k.facts] == [("omp-rows", 1.7)]
    assert [d.move for d in k.dead_ends] == ["vec-omp-simd"]
