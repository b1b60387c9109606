"""Wiring for one search run: run directory, experiment log, Ray (or the local executor), planner,
loop, winner branch."""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, Field

from agents import templates
from agents.offline import OfflineProposer
from harness import workload as workloads
from harness import backends, profile
from harness.attempt import COMPILED, EAGER, NAIVE
from harness.envinfo import environment
from harness.evidence import EvidencePacket, Timing
from harness.roofline import MachinePeaks
from kscout.config import RunConfig
from memory.context import proposal_context
from memory.gitexport import GitExportError
from memory.records import ModelUsage
from memory.store import Store
from search.actors import BENCH_SLOT
from search.budget import Budget
from search.driver import AttemptEvent, NodeBuffer, SearchLoop, run_loops
from search.executor import Executor, LocalExecutor, RayExecutor
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
    # The roofline the SOL is against. A worker measures the machine again when a kernel beats the
    # bound it holds (a figure taken while the machine was busy), so this can be above the run-start
    # figure in RunSummary.peaks.
    peak_gbps: float | None = None
    peak_gflops: float | None = None
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
    peaks: MachinePeaks | None = None     # measured as the run started (the best kernel's SOL: best.peak_*)
    models: list[ModelUsage] = Field(default_factory=list)          # model calls, tokens, dollars per model
    cluster: dict | None = None        # on a cluster (or after a worker loss): workers, lost ones, quarantined nodes
    target: str | None = None          # the hardware target (a Ray resource) its workers were placed on


def new_run_id(workload: str) -> str:
    return f"{workload}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def start_ray(cfg: RunConfig) -> None:
    import ray
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Ray starts its workers at nice 15 (its worker_niceness): a hardware worker's timed kernels
    # would then yield their cores to any ordinary process on the machine, mid-measurement. The
    # raylet of a local Ray reads this at start; a `ray start` cluster needs it in its environment.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if cfg.cluster.address:
        ray.init(address=cfg.cluster.address, log_to_driver=False)
    else:
        # address="local": a new Ray of our own even when a `ray start` cluster runs on this machine
        # (with no address, ray.init joins the last cluster started here, from /tmp/ray).
        ray.init(address="local", num_cpus=cfg.cluster.num_cpus, resources={BENCH_SLOT: cfg.cluster.hardware_workers},
                 include_dashboard=False, log_to_driver=False, configure_logging=False)


def start_executor(cfg: RunConfig) -> Executor:
    """Ray (started or joined), or the local executor: threads of this process, no Ray imported."""
    if cfg.cluster.executor == "local":
        return LocalExecutor()
    start_ray(cfg)
    return RayExecutor()


def check_executor(cfg: RunConfig) -> None:
    """Refuse, before any run exists, what the local executor cannot do."""
    if cfg.cluster.executor == "local" and (cfg.cluster.address or cfg.cluster.target):
        raise ClusterError(f"cluster.executor 'local' (--executor local) runs every worker in this process; it "
                           f"cannot join a Ray cluster or place workers on a target "
                           f"({cfg.cluster.address or cfg.cluster.target}): drop --address/--target, or use "
                           "--executor ray")


def start_workers(cfg: RunConfig, workload_path: Path, run_id: str, ex: Executor) -> WorkerPool:
    """One hardware worker per bench slot: `cluster.hardware_workers` on a local Ray (or the local
    executor); on a cluster, every slot it offers (on the `cluster.target` nodes when set). Returns
    them with their placement."""
    resources = {BENCH_SLOT: 1.0}
    if cfg.cluster.target:
        resources[cfg.cluster.target] = 1.0
    # A GPU backend's worker holds one device (Ray sets CUDA_VISIBLE_DEVICES, so it is cuda:0 there).
    device = backends.get(cfg.backend).device(cfg.harness)
    gpus = 1 if device == "cuda" else 0
    n = cfg.cluster.hardware_workers
    if ex.name == "local" and gpus and n > 1:
        raise ClusterError(f"cluster.hardware_workers = {n} with the local executor and a GPU backend: a local search "
                           "times on one GPU (cuda:0); set hardware_workers = 1, or use Ray (--executor ray, "
                           "one worker per GPU)")
    if ex.name == "ray" and (cfg.cluster.address or gpus or cfg.cluster.target):   # only what Ray offers can be placed
        import ray
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
    niceness = os.getpriority(os.PRIO_PROCESS, 0)       # the workers time kernels at the search's priority
    workers = [ex.hardware_worker(str(workload_path), cfg.dtype, cfg.harness, run_id, device, niceness,
                                  resources=resources, num_gpus=gpus)
               for _ in range(n)]
    placements = ex.get([w.placement.remote(cfg.cluster.target or "") for w in workers])
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


class _Lane:
    """One run of a search: its config (one hardware target, or none), log, workers, planner and
    loop. A search over several targets has one lane per target, all driven by one loop thread."""

    def __init__(self, cfg: RunConfig, resume: str | None, label: str, on_status: Callable[[str], None]):
        self.cfg, self.resume, self.label = cfg, resume, label
        self.on_status = (lambda text: on_status(f"[{label}] {text}")) if label else on_status
        self.run_id: str | None = None    # set when the run is created or reopened (open)
        self.loop: SearchLoop | None = None
        self.ex: Executor | None = None   # set by start: Ray's or the local one, shared by every lane
        self.store: Store | None = None
        self.finished = False

    def check(self) -> None:
        """Everything about the workload and backend that can be refused before anything starts."""
        cfg = self.cfg
        self.wl = wl = workloads.load(cfg.workload)
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
        if cfg.harness.profile:
            if backends.get(cfg.backend).device(cfg.harness) != "cuda":
                raise workloads.WorkloadError(
                    f"--profile (harness.profile): Nsight Compute profiles GPU kernels, and backend '{cfg.backend}' "
                    "runs on the CPU here; use --backend triton or cuda on an NVIDIA GPU, or drop --profile")
            if not cfg.cluster.address:   # on a cluster the GPU workers look for ncu themselves
                try:
                    profile.require_ncu(cfg.harness.ncu)
                except profile.ProfileUnavailable as e:
                    raise workloads.WorkloadError(f"--profile: {e}") from None
        try:
            self.family = family = templates.get(wl.spec.family, cfg.backend)
        except KeyError as e:
            raise workloads.WorkloadError(f"{wl.path / 'workload.toml'}: {e.args[0]}") from None
        if not family.renders and cfg.agents.proposer != "llm":
            raise workloads.WorkloadError(
                f"{wl.path / 'workload.toml'}: op family '{family.family}' has no offline templates (families with "
                f"templates: {', '.join(templates.families(rendering=True, backend=cfg.backend))}), so the offline "
                "proposer cannot write its kernels; search it with a model: kscout search WORKLOAD --model provider/model")

    def open(self, run_id: str | None, stores: dict[str, Store]) -> None:
        """Create the run (or reopen it to resume) in its log; `stores` shares one Store per URL."""
        cfg, wl = self.cfg, self.wl
        if self.resume:
            self.run_id = self.resume
            self.run_dir, self.db_url = locate_run(self.run_id, cfg.memory.runs_dir, cfg.memory.db)
            self.store = store = _store(stores, self.db_url)
            info = store.get_run(self.run_id)
            if info is None:
                raise ResumeError(f"no run '{self.run_id}' in {self.db_url}")
            if info.workload_fingerprint != wl.fingerprint():
                self.on_status(f"warning: {wl.path} changed since the run started (fingerprint "
                               f"{info.workload_fingerprint[:12]} -> {wl.fingerprint()[:12]}); new attempts are "
                               "judged by the new files")
            store.reopen_run(self.run_id)
            self.spent_s = info.elapsed_s
            return
        self.run_id = run_id or new_run_id(wl.name)
        self.run_dir = (cfg.memory.runs_dir / self.run_id).resolve()
        self.run_dir.mkdir(parents=True, exist_ok=False)
        self.db_url = cfg.memory.db or f"sqlite:///{self.run_dir / 'kscout.db'}"
        if cfg.memory.db:   # so resume/status find the log from the run folder alone (never the password)
            from sqlalchemy.engine import make_url
            (self.run_dir / "database.txt").write_text(
                make_url(self.db_url).render_as_string(hide_password=True) + "\n")
        self.store = _store(stores, self.db_url)
        self.store.create_run(self.run_id, wl.name, wl.fingerprint(), cfg.model_dump(mode="json"),
                              environment(cfg.harness.threads).model_dump(mode="json"))
        self.spent_s = 0.0

    def start(self, on_attempt: Callable[[AttemptEvent], None], ex: Executor) -> list:
        """Start the workers, the proposer, the planner and the loop; returns the workers' baseline
        refs (every lane's are awaited together: they measure at once on their own hardware)."""
        cfg, wl, family, store, run_id = self.cfg, self.wl, self.family, self.store, self.run_id
        self.ex = ex
        self.on_status("starting hardware workers" + (f" on '{cfg.cluster.target}'" if cfg.cluster.target else "")
                       + (" (local executor: threads of this process, no Ray)" if ex.name == "local" else ""))
        self.pool = pool = start_workers(cfg, wl.path, run_id, ex)
        if cfg.cluster.address:
            hosts = sorted({p.host for p in pool.placements})
            self.on_status(f"{len(pool)} hardware worker(s) on {len(hosts)} node(s): {', '.join(hosts)}")
        llm = cfg.agents.proposer == "llm"
        if llm:
            self.on_status(f"agents: {', '.join(m.model for m in cfg.agents.models)} "
                           f"({cfg.agents.concurrency} calls in flight at most)")
        proposer = ex.proposer(wl.name, wl.spec.family, cfg.backend, cfg.dtype, str(wl.path), cfg.agents,
                               max_concurrency=cfg.agents.concurrency if llm else 1)

        def node_log(node_id: str) -> NodeLog:
            return NodeLog(**store.node_stats(run_id, node_id).model_dump())

        nodes = NodeBuffer(store, run_id)   # written with the dispatches and after each batch of results
        knowledge = _knowledge(cfg, family.key, run_id) if cfg.memory.warm_start else None
        if knowledge is not None and not knowledge.empty():
            self.on_status(f"warm start: {len(knowledge.facts)} fact(s), {len(knowledge.dead_ends)} dead end(s), "
                           f"{len(knowledge.best)} best-known kernel(s) from earlier runs")
        self.budget = budget = Budget(cfg.search.attempts, cfg.search.time_s, spent_s=self.spent_s,
                                      device_hours=cfg.search.device_hours, max_dollars=cfg.search.max_dollars,
                                      max_tokens=cfg.search.max_tokens)

        def world_model(node: str, tree: str, results: str, moves: str):
            """The model's tree edits; its calls go to the log and the budget like an attempt's."""
            answer, calls, program = ex.get(proposer.update_world_model.remote(node, tree, results, moves))
            store.record_llm_calls(run_id, calls, program)
            budget.charge(0.0, sum(c.dollars for c in calls), sum(c.tokens_in + c.tokens_out for c in calls))
            return answer

        self.planner = planner = WorldModelPlanner(
            family, node_log, cfg.search.planner, on_update=nodes.note, knowledge=knowledge,
            world_model=world_model if llm and cfg.agents.world_model else None)

        def attempted(e: AttemptEvent) -> None:
            if e.improved:   # branches follow the ranking during the run, not only at its end
                try:
                    self.export_top()
                except GitExportError as err:
                    self.on_status(f"warning: could not update the winner branches: {err}")
            on_attempt(e)

        self.loop = SearchLoop(
            planner=planner, proposer=proposer, workers=pool, store=store, run_id=run_id,
            packets_dir=self.run_dir / "packets", budget=budget, queue_depth=cfg.search.queue_depth,
            on_attempt=attempted, context=(lambda p: _context(store, run_id, planner, p)) if llm else None,
            proposing_depth=cfg.agents.concurrency if llm else 0, nodes=nodes,
            max_retries=cfg.cluster.max_retries, on_status=self.on_status, lane=self.label, executor=ex,
            propose_locally=None if llm else OfflineProposer(wl.name, family.family, cfg.backend, cfg.dtype).propose)
        self.on_status("measuring baselines (torch eager, naive C++)")
        return [w.baselines.remote() for w in pool.workers]

    def seed(self) -> None:
        """The root: on a resume, the attempts left in flight (and the naive kernel if it never
        finished); on a new run, the naive kernel. Then the baselines go to the log."""
        ex = self.ex
        store, run_id, loop, planner = self.store, self.run_id, self.loop, self.planner
        workers = self.pool.workers
        # Moves whose code needs CPU features some worker lacks (AVX-512 on an AVX2-only node) are
        # never proposed: the features every live worker has (unknown on any: no restriction).
        flags = [set(f) for f in ex.get([workers[i].cpu_flags.remote() for i in (self.pool.live() or [0])])]
        common = frozenset(set.intersection(*flags)) if flags and all(flags) else frozenset()
        left_out = planner.restrict_isa(common)
        if left_out:
            self.on_status(f"moves left out (CPU features the hardware workers lack): {', '.join(left_out)}")
        if self.resume:
            pending = _restore(store, run_id, planner, loop)
            naive = store.baselines(run_id).get(NAIVE)
            if naive is not None:
                ex.get([w.add_baseline.remote(NAIVE, naive) for w in workers])
            root_pending = [(d, p) for d, p in pending if p.node_id == planner.tree.root().id]
            if naive is None and root_pending:   # the crash came before the naive kernel was recorded
                pending.remove(root_pending[0])
                _run_naive(loop, root_pending[0][1], root_pending[0][0])
            loop.requeue(pending)
            self.on_status(f"resuming: {loop.submitted} attempts recorded, {len(pending)} to run again, "
                           f"{self.spent_s:.0f} s spent")
        else:
            planner.seed_root()
            planner.seed_memory()
            _run_naive(loop, planner.select_root(), None)
        self.first = workers[(self.pool.live() or [0])[0]]
        self.baselines, self.baseline_errors, self.peaks = ex.get(self.first.baselines.remote())
        for name, timing in self.baselines.items():
            store.record_baseline(run_id, name, self.wl.spec.bench_shape.name, timing)

    def finish(self, status: str, t0: float) -> RunSummary:
        cfg, store, run_id, loop = self.cfg, self.store, self.run_id, self.loop
        store.set_elapsed(run_id, self.budget.elapsed())
        summary = _summarize(cfg, store, run_id, self.wl.name, self.run_dir, self.db_url, loop.stop_reason, t0,
                             self.planner)
        summary.target = cfg.cluster.target
        summary.baseline_errors = self.baseline_errors
        summary.peaks = self.peaks
        summary.workload_notes = self.ex.get(self.first.workload_notes.remote())
        summary.cluster = self.pool.summary() if (cfg.cluster.address or self.pool.lost_workers) else None
        if summary.best:
            summary.branches, summary.repo = self.export_top()
            summary.branch = summary.branches[0] if summary.branches else None
        store.finish_run(run_id, status, summary.model_dump(mode="json"))
        self.finished = True
        (self.run_dir / "summary.json").write_text(summary.model_dump_json(indent=2))
        return summary

    def fail(self, status: str) -> None:
        """The search stopped before `finish` (an error, or Ctrl-C during setup): say so in the log."""
        if self.store is not None and self.run_id and not self.finished:
            self.store.finish_run(self.run_id, status, {
                "stop_reason": self.loop.stop_reason if self.loop else "failed before the search started"})

    def export_top(self) -> tuple[list[str], str]:
        return _export_top(self.cfg, self.store, self.run_id, self.wl.name, self.wl.reference_path, self.run_dir)


def lane_labels(runs: list[tuple[RunConfig, str | None]]) -> list[str]:
    """What each run of a search is called in the live view and its status lines: nothing for a
    single run; the hardware targets when they tell the runs apart; else the run ids (a resume)."""
    if len(runs) == 1:
        return [""]
    targets = [cfg.cluster.target or "" for cfg, _ in runs]
    if all(targets) and len(set(targets)) == len(targets):
        return targets
    return [resume or f"run {i + 1}" for i, (_, resume) in enumerate(runs)]


def run_searches(runs: list[tuple[RunConfig, str | None]],
                 on_attempt: Callable[[AttemptEvent], None] = lambda e: None,
                 on_status: Callable[[str], None] = lambda s: None,
                 on_run: Callable[[str], None] = lambda run_id: None) -> list[RunSummary]:
    """Run searches, one per (config, resume) pair: resume=None starts a run, resume=RUN_ID
    continues one from its experiment log. Several at once are the hardware targets of one search
    (`RunConfig.per_target`) or several runs resumed together: each keeps its own run, tree,
    workers and budget, and one loop thread keeps all their workers busy (search.driver.run_loops).
    `on_run` learns each run id as soon as the run exists (so an interrupted caller can say how to
    resume)."""
    t0 = time.monotonic()
    if not runs:
        raise ValueError("no run to start or resume")
    lanes = [_Lane(cfg, resume, label, on_status) for (cfg, resume), label in zip(runs, lane_labels(runs))]
    addresses = {lane.cfg.cluster.address for lane in lanes}
    if len(addresses) > 1:
        raise ClusterError(f"these runs name different Ray clusters ({', '.join(map(str, addresses))}); "
                           "one search joins one: pass --address")
    if len({lane.cfg.cluster.executor for lane in lanes}) > 1:
        raise ClusterError("these runs were started with different executors (ray and local); resume them one at a "
                           "time, or pass --executor")
    for lane in lanes:
        check_executor(lane.cfg)
        lane.check()
    stores: dict[str, Store] = {}
    status = "failed"
    try:
        base: dict[str, str] = {}   # sibling runs of one search share their stem: <stem>-<target>
        for lane in lanes:
            run_id = None
            if not lane.resume and len(lanes) > 1:
                stem = base.setdefault(lane.wl.name, new_run_id(lane.wl.name))
                run_id = f"{stem}-{_slug(lane.cfg.cluster.target or lane.label)}"
            lane.open(run_id, stores)
            on_run(lane.run_id)
        on_status("starting Ray" if lanes[0].cfg.cluster.executor == "ray" else "starting the local executor")
        ex = start_executor(lanes[0].cfg)
        baseline_refs = [ref for lane in lanes for ref in lane.start(on_attempt, ex)]
        ex.get(baseline_refs)     # workers are ready, baselines timed (every target at once)
        for lane in lanes:
            lane.seed()
        on_status("searching")
        try:
            run_loops([lane.loop for lane in lanes])
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
        return [lane.finish(status, t0) for lane in lanes]
    except BaseException as e:
        for lane in lanes:
            lane.fail("interrupted" if status == "interrupted" or isinstance(e, KeyboardInterrupt) else "failed")
        raise
    finally:
        for store in stores.values():
            store.close()


def _store(stores: dict[str, Store], url: str) -> Store:
    """One Store per database URL: lanes logging to one database share its connection pool."""
    if url not in stores:
        stores[url] = Store.open(url)
    return stores[url]


def _slug(text: str) -> str:
    """A target name as a run-id suffix (a folder and branch name): 'accelerator_type:H100' ->
    'accelerator_type-H100'."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "target"


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
            "target": (info.config.get("cluster") or {}).get("target"),
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
    hw = hardware_key(environment(cfg.harness.threads).model_dump(mode="json"), cfg.model_dump(mode="json"))
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
    packet, ran_on = loop.run_first(proposal, dispatch_id=dispatch_id)
    if packet.bench is not None:
        loop.ex.get([loop.workers[i].evaluate_naive.remote(packet.candidate) for i in loop.pool.live() if i != ran_on])


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
                      peak_gbps=b.roofline.peak_gbps if b.roofline else None,
                      peak_gflops=b.roofline.peak_gflops if b.roofline else None,
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
