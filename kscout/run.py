"""Wiring for one search run: run directory, experiment log, Ray, planner, loop, winner branch."""

from __future__ import annotations

import os
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from agents import templates
from agents.offline import OfflineProposer
from harness import workload as workloads
from harness import backends
from harness.attempt import COMPILED, EAGER, NAIVE
from harness.envinfo import environment
from harness.evidence import EvidencePacket, Timing
from harness.roofline import MachinePeaks
from kscout.config import RunConfig
from memory.context import proposal_context
from memory.gitexport import GitExportError
from memory.records import ModelUsage
from memory.store import Store
from search.budget import Budget
from search.driver import AttemptEvent, NodeBuffer, SearchLoop
from search.planner import NodeLog, WorldModelPlanner
from search.pool import WorkerPool
from search.tree import params_key


class BestKernel(BaseModel):
    attempt_id: str
    attempt_seq: int | None = None       # its place in the run's attempt order (the naive root is first)
    strategy: str
    params: dict
    median_s: float
    iqr_rel: float
    speedup: dict[str, float]
    achieved_gbps: float | None = None
    achieved_gflops: float | None = None
    sol: float | None = None
    packet_path: str
    source_path: str


class RunSummary(BaseModel):
    run_id: str
    workload: str
    run_dir: str
    db: str
    stop_reason: str
    wall_s: float
    baselines: dict[str, Timing] = Field(default_factory=dict)
    best: BestKernel | None = None
    branch: str | None = None                 # rank 1 of `branches`
    branches: list[str] = Field(default_factory=list)   # kscout/<workload>/<run-id>/<rank>, best first
    repo: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)        # attempts, compiled, verified, accepted, rejected
    failures: dict[str, int] = Field(default_factory=dict)      # failure class -> count
    tree_nodes: int = 0
    # Accepted kernels that have no timing by design (the Triton interpreter, correctness only):
    # why no best kernel and no branch exist although kernels verified.
    not_ranked: str = ""
    baseline_errors: dict[str, str] = Field(default_factory=dict)   # baselines that could not be timed, why
    workload_notes: list[str] = Field(default_factory=list)          # e.g. degenerate (near-zero) cases
    peaks: MachinePeaks | None = None
    models: list[ModelUsage] = Field(default_factory=list)          # model calls, tokens, dollars per model
    cluster: dict | None = None        # on a cluster (or after a worker loss): workers, lost ones, quarantined nodes


def new_run_id(workload: str) -> str:
    return f"{workload}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def start_ray(cfg: RunConfig) -> None:
    import ray

    from search.workers import BENCH_SLOT
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, log_to_driver=False)
    else:
        # address="local": a new Ray of our own even when a `ray start` cluster runs on this machine
        # (with no address, ray.init joins the last cluster started here, from /tmp/ray).
        ray.init(address="local", num_cpus=cfg.cluster.num_cpus, resources={BENCH_SLOT: cfg.cluster.hardware_workers},
                 include_dashboard=False, log_to_driver=False, configure_logging=False)


def start_workers(cfg: RunConfig, workload_path: Path, run_id: str) -> WorkerPool:
    """One hardware worker per bench slot: `cluster.hardware_workers` on a local Ray; on a cluster,
    every slot it offers (on the `cluster.target` nodes when set). Returns them with their placement."""
    import ray

    from search.workers import BENCH_SLOT, HardwareWorker
    resources = {BENCH_SLOT: 1.0}
    if cfg.cluster.target:
        resources[cfg.cluster.target] = 1.0
    # A GPU backend's worker holds one device (Ray sets CUDA_VISIBLE_DEVICES, so it is cuda:0 there).
    device = backends.get(cfg.backend).device(cfg.harness)
    gpus = {"num_gpus": 1} if device == "cuda" else {}
    n = cfg.cluster.hardware_workers
    if cfg.cluster.address or gpus:
        offered = ray.cluster_resources()
        needed = list(resources) + (["GPU"] if gpus else [])
        n = int(min(offered.get(r, 0.0) for r in needed))
        if not cfg.cluster.address:
            n = min(n, cfg.cluster.hardware_workers)
        if n == 0:
            missing = " and ".join(f"'{r}'" for r in needed if not offered.get(r))
            where = f"the Ray cluster at {cfg.cluster.address}" if cfg.cluster.address else "this machine's Ray"
            raise ClusterError(f"{where} offers no {missing} resource, so no hardware worker can be placed: "
                               f"start each bench node with ray start --address HEAD:6379"
                               + (" --num-gpus 1" if gpus else "") + f" --resources '{{\"{BENCH_SLOT}\": 1"
                               + (f', "{cfg.cluster.target}": 1' if cfg.cluster.target else "") + "}'")
    workers = [HardwareWorker.options(resources=resources, **gpus).remote(str(workload_path), cfg.dtype, cfg.harness,
                                                                         run_id, device)
               for _ in range(n)]
    placements = ray.get([w.placement.remote(cfg.cluster.target or "") for w in workers])
    return WorkerPool(workers, placements, cfg.cluster.quarantine_after)


class ClusterError(ValueError):
    """The cluster cannot run this search; the message says what to start."""


class ResumeError(ValueError):
    """A run that cannot be resumed; the message says which and what to do."""


def locate_run(run_id: str, runs_dir: Path, db: str | None) -> tuple[Path, str]:
    """The run's directory and database URL, checked to exist (nothing is created). A run logged
    to another database left its URL (password hidden) in <run dir>/database.txt."""
    run_dir = (runs_dir / run_id).resolve()
    if db is None:
        db_file, pointer = run_dir / "kscout.db", run_dir / "database.txt"
        if db_file.is_file():
            return run_dir, f"sqlite:///{db_file}"
        if pointer.is_file():
            url = pointer.read_text().strip()
            if "***" in url:
                raise ResumeError(f"run '{run_id}' logs to {url}; pass --db with the full URL (the password is "
                                  "never written to disk)")
            return run_dir, url
        known = sorted(p.parent.name for p in runs_dir.glob("*/kscout.db")) if runs_dir.is_dir() else []
        raise ResumeError(f"no run '{run_id}': {db_file} does not exist"
                          + (f"; runs under {runs_dir}: {', '.join(known)}" if known else "")
                          + "; pass --runs-dir, or --db for a run logged to another database")
    return run_dir, db


def run_search(cfg: RunConfig, on_attempt: Callable[[AttemptEvent], None] = lambda e: None,
               on_status: Callable[[str], None] = lambda s: None, resume: str | None = None,
               on_run: Callable[[str], None] = lambda run_id: None) -> RunSummary:
    """Run a search, or with `resume=RUN_ID` continue one from its experiment log. `on_run`
    learns the run id as soon as the run exists (so an interrupted caller can say how to resume)."""
    t0 = time.monotonic()
    wl = workloads.load(cfg.workload)
    if cfg.dtype not in wl.spec.dtypes:
        raise workloads.WorkloadError(f"{wl.path / 'workload.toml'}: dtype '{cfg.dtype}' is not in dtypes "
                                      f"{wl.spec.dtypes}; pass --dtype with one of them")
    if cfg.backend not in wl.spec.backends:
        raise workloads.WorkloadError(f"{wl.path / 'workload.toml'}: backend '{cfg.backend}' is not in backends "
                                      f"{wl.spec.backends}; pass --backend with one of them, or add it to the "
                                      "workload's backends if its kernels can be written for it")
    ok, why = backends.get(cfg.backend).available(cfg.harness)
    # On a cluster the hardware workers build and run kernels, not this process: a driver without
    # a GPU may start a GPU search (a worker without the toolchain records unsupported_backend).
    if not ok and not (cfg.cluster.address and backends.get(cfg.backend).device(cfg.harness) == "cuda"):
        raise workloads.WorkloadError(f"backend '{cfg.backend}' cannot run here: {why}")
    try:
        family = templates.get(wl.spec.family, cfg.backend)
    except KeyError as e:
        raise workloads.WorkloadError(f"{wl.path / 'workload.toml'}: {e.args[0]}") from None
    if not family.renders and cfg.agents.proposer != "llm":
        raise workloads.WorkloadError(
            f"{wl.path / 'workload.toml'}: op family '{family.family}' has no offline templates (families with "
            f"templates: {', '.join(templates.families(rendering=True, backend=cfg.backend))}), so the offline proposer cannot write "
            "its kernels; search it with a model: kscout search WORKLOAD --model provider/model")
    if resume:
        run_id = resume
        run_dir, db_url = locate_run(run_id, cfg.memory.runs_dir, cfg.memory.db)
        store = Store.open(db_url)
        info = store.get_run(run_id)
        if info is None:
            store.close()
            raise ResumeError(f"no run '{run_id}' in {db_url}")
        if info.workload_fingerprint != wl.fingerprint():
            on_status(f"warning: {wl.path} changed since the run started (fingerprint "
                      f"{info.workload_fingerprint[:12]} -> {wl.fingerprint()[:12]}); new attempts are judged by the new files")
        store.reopen_run(run_id)
        spent_s = info.elapsed_s
    else:
        run_id = new_run_id(wl.name)
        run_dir = (cfg.memory.runs_dir / run_id).resolve()
        run_dir.mkdir(parents=True, exist_ok=False)
        db_url = cfg.memory.db or f"sqlite:///{run_dir / 'kscout.db'}"
        if cfg.memory.db:   # so resume/status find the log from the run folder alone (never the password)
            from sqlalchemy.engine import make_url
            (run_dir / "database.txt").write_text(make_url(db_url).render_as_string(hide_password=True) + "\n")
        store = Store.open(db_url)
        store.create_run(run_id, wl.name, wl.fingerprint(), cfg.model_dump(mode="json"),
                         environment(cfg.harness.threads).model_dump(mode="json"))
        spent_s = 0.0
    on_run(run_id)
    status = "failed"
    loop = None
    try:
        import ray

        from search.workers import HardwareWorker, ProposerActor
        on_status("starting Ray and hardware workers")
        start_ray(cfg)
        pool = start_workers(cfg, wl.path, run_id)
        workers = pool.workers
        if cfg.cluster.address:
            hosts = sorted({p.host for p in pool.placements})
            on_status(f"{len(workers)} hardware worker(s) on {len(hosts)} node(s): {', '.join(hosts)}")
        llm = cfg.agents.proposer == "llm"
        if llm:
            on_status(f"agents: {', '.join(m.model for m in cfg.agents.models)} "
                      f"({cfg.agents.concurrency} calls in flight at most)")
        proposer = ProposerActor.options(max_concurrency=cfg.agents.concurrency if llm else 1).remote(
            wl.name, wl.spec.family, cfg.backend, cfg.dtype, str(wl.path), cfg.agents)

        def node_log(node_id: str) -> NodeLog:
            return NodeLog(**store.node_stats(run_id, node_id).model_dump())

        nodes = NodeBuffer(store, run_id)   # written with the dispatches and after each batch of results

        knowledge = _knowledge(cfg, family.key, run_id) if cfg.memory.warm_start else None
        if knowledge is not None and not knowledge.empty():
            on_status(f"warm start: {len(knowledge.facts)} fact(s), {len(knowledge.dead_ends)} dead end(s), "
                      f"{len(knowledge.best)} best-known kernel(s) from earlier runs")
        budget = Budget(cfg.search.attempts, cfg.search.time_s, spent_s=spent_s,
                        device_hours=cfg.search.device_hours, max_dollars=cfg.search.max_dollars,
                        max_tokens=cfg.search.max_tokens)

        def world_model(node: str, tree: str, results: str, moves: str):
            """The model's tree edits; its calls go to the log and the budget like an attempt's."""
            answer, calls, program = ray.get(proposer.update_world_model.remote(node, tree, results, moves))
            store.record_llm_calls(run_id, calls, program)
            budget.charge(0.0, sum(c.dollars for c in calls), sum(c.tokens_in + c.tokens_out for c in calls))
            return answer

        planner = WorldModelPlanner(family, node_log, cfg.search.planner, on_update=nodes.note, knowledge=knowledge,
                                    world_model=world_model if llm and cfg.agents.world_model else None)
        def attempted(e: AttemptEvent) -> None:
            if e.improved:   # branches follow the ranking during the run, not only at its end
                try:
                    _export_top(cfg, store, run_id, wl.name, wl.reference_path, run_dir)
                except GitExportError as err:
                    on_status(f"warning: could not update the winner branches: {err}")
            on_attempt(e)

        loop = SearchLoop(planner=planner, proposer=proposer, workers=pool, store=store, run_id=run_id,
                          packets_dir=run_dir / "packets", budget=budget, queue_depth=cfg.search.queue_depth,
                          on_attempt=attempted, context=(lambda p: _context(store, run_id, planner, p)) if llm else None,
                          proposing_depth=cfg.agents.concurrency if llm else 0, nodes=nodes,
                          max_retries=cfg.cluster.max_retries, on_status=on_status,
                          propose_locally=None if llm else OfflineProposer(wl.name, family.family, cfg.backend,
                                                                           cfg.dtype).propose)
        on_status("measuring baselines (torch eager, naive C++)")
        ray.get([w.baselines.remote() for w in workers])     # workers are ready, baselines timed
        if resume:
            pending = _restore(store, run_id, planner, loop)
            naive = store.baselines(run_id).get(NAIVE)
            if naive is not None:
                ray.get([w.add_baseline.remote(NAIVE, naive) for w in workers])
            root_pending = [(d, p) for d, p in pending if p.node_id == planner.tree.root().id]
            if naive is None and root_pending:   # the crash came before the naive kernel was recorded
                pending.remove(root_pending[0])
                _run_naive(loop, root_pending[0][1], root_pending[0][0])
            loop.requeue(pending)
            on_status(f"resuming: {loop.submitted} attempts recorded, {len(pending)} to run again, "
                      f"{spent_s:.0f} s spent")
        else:
            planner.seed_root()
            planner.seed_memory()
            _run_naive(loop, planner.select_root(), None)
        first = workers[(pool.live() or [0])[0]]
        baselines, baseline_errors, peaks = ray.get(first.baselines.remote())
        for name, timing in baselines.items():
            store.record_baseline(run_id, name, wl.spec.bench_shape.name, timing)
        on_status("searching")
        try:
            loop.run()
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
        store.set_elapsed(run_id, budget.elapsed())
        summary = _summarize(cfg, store, run_id, wl.name, run_dir, db_url, loop.stop_reason, t0, planner)
        summary.baseline_errors = baseline_errors
        summary.peaks = peaks
        summary.workload_notes = ray.get(first.workload_notes.remote())
        summary.cluster = pool.summary() if (cfg.cluster.address or pool.lost_workers) else None
        if summary.best:
            summary.branches, summary.repo = _export_top(cfg, store, run_id, wl.name, wl.reference_path, run_dir)
            summary.branch = summary.branches[0] if summary.branches else None
        store.finish_run(run_id, status, summary.model_dump(mode="json"))
        (run_dir / "summary.json").write_text(summary.model_dump_json(indent=2))
        return summary
    except BaseException:
        store.finish_run(run_id, "failed" if status != "interrupted" else status,
                         {"stop_reason": loop.stop_reason if loop else "failed before the search started"})
        raise
    finally:
        store.close()


def run_status(run_id: str, db_url: str) -> dict:
    """A run's state from its log alone (safe while the run is writing: one read transaction each)."""
    from search.node import NodeStatus
    try:
        store = Store.open(db_url)
    except Exception as e:   # a corrupt, newer or unreachable database: say which, change nothing
        raise ResumeError(str(e)) from e
    try:
        info = store.get_run(run_id)
        if info is None:
            raise ResumeError(f"no run '{run_id}' in {db_url}")
        counts = store.verdict_counts(run_id)
        best = store.best_attempt(run_id, EAGER)
        nodes = store.nodes(run_id)
        search_cfg = info.config.get("search", {})
        spend = store.spend(run_id)
        return {
            "run": run_id, "workload": info.workload, "status": info.status.value,
            "attempts": counts.attempts, "attempt_budget": search_cfg.get("attempts"),
            "elapsed_s": round(info.elapsed_s, 1), "time_budget_s": search_cfg.get("time_s"),
            "in_flight": len(store.pending(run_id)),
            "device_s": round(spend["device_s"], 1), "device_hours_budget": search_cfg.get("device_hours"),
            "llm_dollars": spend["llm_dollars"], "max_dollars": search_cfg.get("max_dollars"),
            "llm_tokens": int(spend["llm_tokens"]), "max_tokens": search_cfg.get("max_tokens"),
            "models": [u.model_dump() for u in store.llm_usage(run_id)],
            "accepted": counts.accepted, "rejected": counts.rejected,
            "rejections": dict(counts.failures),
            "best_speedup_vs_eager": best.speedup_eager if best else None,
            "best_attempt": best.id if best else None,
            "tree_nodes": len(nodes), "frontier": sum(n.status == NodeStatus.frontier for n in nodes),
            "stop_reason": (info.summary or {}).get("stop_reason"),
            "cluster": (info.summary or {}).get("cluster"),
            "started_at": info.started_at.isoformat(), "db": db_url,
        }
    finally:
        store.close()


def _knowledge(cfg: RunConfig, family: str, run_id: str):
    """Knowledge for this family on this machine from every earlier run (never this one)."""
    from memory.knowledge import gather, hardware_key
    shared = [cfg.memory.db] if cfg.memory.db else []
    k = gather(cfg.memory.runs_dir, shared)
    hw = hardware_key(environment(cfg.harness.threads).model_dump(mode="json"))
    k = k.for_target(family, hw, exclude_run=run_id)
    # facts observed in this very run are the planner's own business (it re-learns them on resume)
    k.facts = [f for f in k.facts if f.runs != [run_id]]
    k.dead_ends = [d for d in k.dead_ends if d.runs != [run_id]]
    return k


def _context(store: Store, run_id: str, planner: WorldModelPlanner, proposal):
    """What the model reads besides the node (memory.context): the parent strategy's best kernel,
    the node's recent attempts, and the latest rejected kernel to diagnose."""
    node = planner.tree.node(proposal.node_id)
    ctx = proposal_context(store, run_id, node, planner.tree.parent(node))
    return proposal.model_copy(update={"context": ctx})


def _run_naive(loop: SearchLoop, proposal, dispatch_id: str | None) -> None:
    """The root: the naive kernel, which also becomes every worker's naive_cpp baseline (each
    worker times it on its own hardware)."""
    import ray
    packet, ran_on = loop.run_first(proposal, dispatch_id=dispatch_id)
    if packet.bench is not None:
        ray.get([loop.workers[i].evaluate_naive.remote(packet.candidate) for i in loop.pool.live() if i != ran_on])


def _restore(store: Store, run_id: str, planner: WorldModelPlanner, loop: SearchLoop) -> list:
    """Rebuild the planner and the loop's counters from the log; return the pending dispatches."""
    from search.strategy import Proposal
    nodes = store.nodes(run_id)
    attempts = store.attempts(run_id)
    tried = []
    for a in attempts:   # the log is the truth: a crash may have come between an attempt and its node update
        tried.append(store.packet(a.id).candidate.params)
    for n in nodes:
        stats = store.node_stats(run_id, n.id)
        n.attempts, n.accepted = stats.attempts, stats.accepted
        n.best_speedup, n.best_attempt_id = stats.best_speedup, stats.best_attempt_id
        if stats.best_attempt_id:
            n.best_params = store.packet(stats.best_attempt_id).candidate.params
    planner.restore(nodes, tried)
    pending = [(d, Proposal.model_validate(p)) for d, p in store.pending(run_id)]
    for _, p in pending:
        planner.tried.add(params_key(p.params))
        planner.in_flight[p.node_id] += 1
    loop.submitted = len(attempts)
    spend = store.spend(run_id)
    loop.budget.charge(spend["device_s"], spend["llm_dollars"], int(spend["llm_tokens"]))
    speeds = [a.speedup_eager for a in attempts if a.speedup_eager is not None and a.verdict == "accepted"]
    loop.best = max(speeds) if speeds else None
    return pending


def _summarize(cfg: RunConfig, store: Store, run_id: str, workload: str, run_dir: Path, db_url: str,
               stop_reason: str, t0: float, planner: WorldModelPlanner) -> RunSummary:
    counts = store.verdict_counts(run_id)
    summary = RunSummary(run_id=run_id, workload=workload, run_dir=str(run_dir), db=db_url,
                         stop_reason=stop_reason, wall_s=time.monotonic() - t0,
                         baselines=store.baselines(run_id), tree_nodes=len(planner.tree),
                         counts={"attempts": counts.attempts, "compiled": counts.compiled,
                                 "verified": counts.verified, "accepted": counts.accepted,
                                 "rejected": counts.rejected},
                         failures=dict(counts.failures), models=store.llm_usage(run_id))
    best = store.best_attempt(run_id, EAGER)
    if best:
        packet = store.packet(best.id)
        summary.best = _best_kernel(packet, run_dir)
        summary.best.attempt_seq = best.seq
    elif counts.accepted:
        summary.not_ranked = (f"{counts.accepted} kernel(s) verified, none timed on hardware "
                              f"(backend {cfg.backend}: {backends.get(cfg.backend).toolchain(cfg.harness)}); "
                              "nothing is ranked and no branch is exported")
    return summary


def _best_kernel(packet: EvidencePacket, run_dir: Path) -> BestKernel:
    best_dir = run_dir / "best"
    best_dir.mkdir(exist_ok=True)
    name = backends.source_file(packet.candidate.backend)
    (best_dir / name).write_text(packet.candidate.source)
    (best_dir / "evidence.json").write_text(packet.model_dump_json(indent=2))
    b = packet.bench
    return BestKernel(attempt_id=packet.id, strategy=packet.candidate.strategy, params=packet.candidate.params,
                      median_s=b.candidate.median_s, iqr_rel=b.candidate.iqr_rel, speedup=dict(b.speedup),
                      achieved_gbps=b.roofline.achieved_gbps if b.roofline else None,
                      achieved_gflops=b.roofline.achieved_gflops if b.roofline else None,
                      sol=b.roofline.sol if b.roofline else None,
                      packet_path=str(run_dir / "packets" / f"{packet.id}.json"),
                      source_path=str(best_dir / name))


def _export_top(cfg: RunConfig, store: Store, run_id: str, workload: str, reference: Path,
                run_dir: Path) -> tuple[list[str], str]:
    """The run's top-k kernels as lineage branches kscout/<workload>/<run-id>/<rank>."""
    from kscout.branches import export_top
    repo = (cfg.memory.repo or run_dir / "repo").resolve()
    return export_top(store, run_id, workload, reference, repo, cfg.memory.top_k), str(repo)


BASELINE_NAMES = {EAGER: "torch eager (reference.py)", COMPILED: "torch.compile (inductor)",
                  NAIVE: "naive C++ (scalar, 1 thread)"}
