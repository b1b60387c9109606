"""The `kscout` command line."""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # litellm must not fetch at import

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
                  help="kscout — agentic kernel search with persistent memory.\n\n"
                       "Start with [bold]kscout workloads[/], then [bold]kscout search bias_gelu[/].")
console = Console()
err = Console(stderr=True)


def _duration(text: str) -> float:
    """'90', '90s', '10m', '2h', '1d' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"'{text}' is not a duration; use e.g. 90s, 10m, 2h or 1d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _budgets(cfg, attempts: int | None, time_budget: str | None, device_hours: float | None,
             max_dollars: float | None, max_tokens: int | None = None) -> None:
    """Budget flags override the config (or, on resume, the run's recorded config)."""
    if max_tokens is not None:
        cfg.search.max_tokens = max_tokens
    if attempts is not None:
        cfg.search.attempts = attempts
    if time_budget is not None:
        cfg.search.time_s = _duration(time_budget)
    if device_hours is not None:
        cfg.search.device_hours = device_hours
    if max_dollars is not None:
        cfg.search.max_dollars = max_dollars


@contextmanager
def _run_log(run_id: str, runs_dir: Path, db: str | None):
    """(run dir, open Store, RunInfo) of an existing run; fails with a clear message otherwise."""
    from kscout.run import ResumeError, locate_run
    from memory.store import Store, StoreOpenError
    try:
        run_dir, url = locate_run(run_id, runs_dir, db)
        store = Store.open(url)
    except (ResumeError, StoreOpenError) as e:
        _fail(str(e))
    try:
        info = store.get_run(run_id)
        if info is None:
            _fail(f"no run '{run_id}' in {url}")
        yield run_dir, store, info
    finally:
        store.close()


def _executor(name: str) -> str:
    if name not in ("ray", "local"):
        _fail(f"--executor {name}: use ray (a local Ray, or the cluster at --address) or local (threads of this "
              "process, no Ray)")
    return name


def _fail(message: str, code: int = 2) -> None:
    # soft_wrap: no newlines inside the message (a path broken at the terminal width cannot be
    # copied or grepped); the terminal wraps long lines itself
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def search(
    workload: str = typer.Argument("bias_gelu", help="A shipped workload name (see `kscout workloads`), a "
                                                     "folder holding reference.py and workload.toml, or a "
                                                     "KernelBench problem file (problem.py), imported as by "
                                                     "`kscout import` into <runs dir>/imported/."),
    attempts: Optional[int] = typer.Option(None, "--attempts", "-n", min=1,
                                           help="Stop after this many attempts (default 30)."),
    time_budget: Optional[str] = typer.Option(None, "--time", "-t",
                                              help="Stop submitting after this long: 90s, 10m, 2h (default 5m)."),
    device_hours: Optional[float] = typer.Option(None, "--device-hours", min=0.0,
                                                 help="Stop after this much hardware time (compile+verify+bench)."),
    max_dollars: Optional[float] = typer.Option(None, "--max-dollars", min=0.0,
                                                help="Stop when model calls have cost this much (USD, "
                                                     "litellm's offline price list)."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1,
                                             help="Stop when model calls have used this many tokens (in + out)."),
    model: Optional[list[str]] = typer.Option(
        None, "--model", "-m", help="Let a model write the kernels: any litellm model string, provider/model "
        "(openai/gpt-4o-mini, anthropic/claude-sonnet-4-5, ollama/llama3, hosted_vllm/NAME). Repeat for "
        "several; MODEL=WEIGHT splits proposals by weight (e.g. -m openai/gpt-4o-mini=3 -m openai/gpt-4o=1). "
        "Keys come from the provider's usual environment variable. Without --model: offline templates."),
    planner_model: Optional[str] = typer.Option(None, "--planner-model", help="A model used only for the "
                                                "world-model updates (which strategies to try next); the --model(s) "
                                                "then write the kernels only."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Endpoint for the --model(s): a self-hosted "
                                                                    "or proxy server, e.g. http://127.0.0.1:8000/v1."),
    agents: Optional[int] = typer.Option(None, "--agents", min=1, help="Model calls in flight at once (default 4)."),
    db: Optional[str] = typer.Option(None, "--db", help="SQLAlchemy URL for the experiment log "
                                                        "(default sqlite:///<run dir>/kscout.db), e.g. "
                                                        "postgresql+psycopg://user@host/kscout."),
    repo: Optional[Path] = typer.Option(None, "--repo", help="Git repository for the winner branch "
                                                             "(default <run dir>/repo). Never touches its "
                                                             "working tree or HEAD."),
    address: Optional[str] = typer.Option(None, "--address", help="Join this Ray cluster ('auto', "
                                                                  "'ray://host:10001') instead of a local Ray."),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Where the proposer and hardware workers run: ray (the default: a local Ray, or "
        "the cluster at --address) or local (threads of this process, no Ray needed: one machine where Ray cannot "
        "be installed, such as a GPU box with only torch, triton and kscout's pure-Python dependencies; one GPU "
        "worker at most)."),
    target: Optional[list[str]] = typer.Option(
        None, "--target", help="Place the hardware workers on the nodes offering this Ray resource (a custom one "
        "such as H100, or Ray's own accelerator_type:H100). Repeat to search several targets at once: one run "
        "each (own tree, workers, budget, branches), one loop keeping them all busy. NAME=BACKEND picks the "
        "backend per target: --target H100=cuda --target MI300X=hip."),
    runs_dir: Optional[Path] = typer.Option(None, "--runs-dir", help="Where run folders go (default ./runs)."),
    config: Optional[Path] = typer.Option(None, "--config", help="A TOML run config (see "
                                                                  "kscout/default_config.toml); flags override it."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Harness backend the kernels are written "
                                          "for: cpu_cpp (C++, timed on this CPU; the default), triton (a Python "
                                          "module of @triton.jit kernels; without a GPU verified in Triton's "
                                          "interpreter, correctness only, never ranked), cuda (nvcc) or hip (hipcc), "
                                          "which need their GPU and toolchain. Must be in the workload's backends."),
    profile: bool = typer.Option(False, "--profile", help="Profile every accepted GPU kernel once with Nsight "
                                 "Compute (ncu) on the bench shape: DRAM bandwidth, SM throughput, occupancy and "
                                 "registers per kernel go into its evidence packet, and the proposer reads the "
                                 "parent kernel's. Needs an NVIDIA GPU backend (triton, cuda) and ncu "
                                 "(harness.ncu names it if it is not on PATH)."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of tables."),
) -> None:
    """Search for a faster kernel for WORKLOAD: plan, propose, compile, verify, benchmark, remember.

    Every attempt lands in the experiment log with its evidence packet; the best verified kernel
    and the runners-up are committed as branches kscout/<workload>/<run-id>/<rank> (rank 1 the best),
    each a chain of commits along the kernel's lineage in the strategy tree.
    """
    from harness.workload import WorkloadError
    from pydantic import ValidationError

    from kscout.config import ConfigError, RunConfig, load_config
    from search.config import ClusterConfig
    try:
        cfg = load_config(config)
    except ConfigError as e:
        _fail(str(e))
    cfg.workload = workload
    if backend is not None:
        from harness import backends as harness_backends
        if backend not in harness_backends.names():
            _fail(f"--backend {backend}: not a harness backend; use one of {', '.join(harness_backends.names())}")
        cfg.backend = backend
    _budgets(cfg, attempts, time_budget, device_hours, max_dollars, max_tokens)
    if profile:
        cfg.harness.profile = True
    if model:
        from agents.models import ModelConfigError, parse_model_arg
        try:
            cfg.agents.models = [parse_model_arg(m, api_base) for m in model]
            if planner_model:
                for spec in cfg.agents.models:
                    spec.role = "propose"
                cfg.agents.models.append(parse_model_arg(planner_model, api_base).model_copy(update={"role": "plan"}))
        except ModelConfigError as e:
            _fail(str(e))
        cfg.agents.proposer = "llm"
    elif api_base is not None or planner_model is not None:
        _fail("--api-base and --planner-model need --model (the model that writes kernels, e.g. --model "
              "openai/gpt-4o-mini)")
    if agents is not None:
        cfg.agents.concurrency = agents
    if db is not None:
        cfg.memory.db = db
    if repo is not None:
        cfg.memory.repo = repo
    if address is not None:
        cfg.cluster.address = address
    if executor is not None:
        cfg.cluster.executor = _executor(executor)
    if target:
        try:
            cfg.cluster = ClusterConfig.model_validate({**cfg.cluster.model_dump(), "target": None, "targets": target})
            cfg = RunConfig.model_validate(cfg.model_dump())   # checks each NAME=BACKEND's backend
        except ValidationError as e:
            _fail("--target: " + "; ".join(err["msg"].removeprefix("Value error, ") for err in e.errors()))
    if runs_dir is not None:
        cfg.memory.runs_dir = runs_dir
    if workload.endswith(".py"):   # a KernelBench file, copied in unchanged
        cfg.workload = str(_import_problems([Path(workload)], cfg.memory.runs_dir / "imported",
                                            err if as_json else console)[0])

    _run([(c, None) for c in cfg.per_target()], as_json)


def _import_problems(files: list[Path], dest: Path, out: Console, max_mib: float | None = None,
                     max_gflop: float | None = None) -> list[Path]:
    """Import KernelBench files into dest/<name>-<hash>/, saying what was inferred for each."""
    from harness import kernelbench as kb
    limits = {"max_bytes": int((max_mib or kb.MAX_BYTES / 2**20) * 2**20),
              "max_flops": (max_gflop * 1e9) if max_gflop else kb.MAX_FLOPS}
    folders = []
    for f in files:
        if not f.is_file():
            _fail(f"{f}: no such file; pass a KernelBench problem file (e.g. level1/23_Softmax.py)")
        try:
            with out.status(f"importing {f} (sizing on meta tensors, checking the reference)"):
                w, imported = kb.import_file(f, dest, **limits)
        except kb.ImportProblem as e:
            _fail(str(e))
        if imported is None:
            out.print(f"{f}: already imported as [bold]{w.path}[/] (same bytes); using it")
        else:
            out.print(f"{f} -> [bold]{w.path}[/] (workload {w.name}, family {w.spec.family})")
            for n in imported.notes:
                out.print(f"  - {n}", highlight=False, markup=False)
        folders.append(w.path)
    return folders


def _run(runs: list, as_json: bool) -> None:
    """Run or resume searches (a (config, resume run id or None) pair each: one per hardware
    target, or the runs resumed together) with the live display; Ctrl-C or SIGTERM stop them cleanly."""
    import signal

    from harness.workload import WorkloadError
    from kscout.display import SearchDisplay, summary_table
    from kscout.run import ClusterError, ResumeError, lane_labels, run_searches
    from memory.gitexport import GitExportError
    from memory.store import StoreOpenError

    for cfg, _ in runs:
        if cfg.agents.proposer == "llm":   # a bad model string or a missing key fails here, not mid-run
            from agents.models import ModelConfigError, preflight
            try:
                for spec in cfg.agents.models:
                    preflight(spec)
            except ModelConfigError as e:
                _fail(str(e))

    def _sigterm(*_):   # SIGTERM stops like Ctrl-C: in-flight work is dropped, the log stays consistent
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _sigterm)
    quiet = Console(file=sys.stderr) if as_json else console
    labels = lane_labels(runs)
    display = SearchDisplay(quiet, runs[0][0].search.attempts, runs[0][0].workload,
                            lanes={label: cfg.search.attempts for label, (cfg, _) in zip(labels, runs)})
    for label, (cfg, resume) in zip(labels, runs):
        if resume:   # the view starts from the run's totals, not from zero
            with _run_log(resume, cfg.memory.runs_dir, cfg.memory.db) as (_, store, _info):
                display.seed_from_log(store.verdict_counts(resume), store.best_attempt(resume), store.spend(resume),
                                      lane=label)
    run_ids: list[str] = [r for _, r in runs if r]
    runs_dir = runs[0][0].memory.runs_dir
    again = (lambda ids: "kscout resume " + " ".join(ids)
             + (f" --runs-dir {runs_dir}" if str(runs_dir) != "runs" else ""))
    try:
        with display:
            summaries = run_searches(runs, on_attempt=display.attempt, on_status=display.status,
                                     on_run=lambda r: r in run_ids or run_ids.append(r))
    except (WorkloadError, GitExportError, ResumeError, ClusterError, StoreOpenError, KeyError) as e:
        _fail(str(e).strip("'\""))
    except KeyboardInterrupt:
        _fail("interrupted" + (f"; continue with: {again(run_ids)}" if run_ids else ""), 130)
    if as_json:
        outs = [_summary_json(summary, cfg) for summary, (cfg, _) in zip(summaries, runs)]
        print(json.dumps(outs[0] if len(outs) == 1 else outs, indent=2))
    else:
        for summary in summaries:
            console.print(summary_table(summary))
    if any(s.stop_reason.startswith("interrupted") for s in summaries):
        quiet.print(f"stopped; continue with: [bold]{again([s.run_id for s in summaries])}[/]")
    if any(s.best is None and not s.not_ranked for s in summaries):   # verified but untimed by design is not a failure
        raise typer.Exit(1)


def _summary_json(summary, cfg) -> dict:
    return {"run_id": summary.run_id, "workload": summary.workload, "run_dir": summary.run_dir,
            "db": summary.db, "branch": summary.branch, "branches": summary.branches, "repo": summary.repo,
            "stop_reason": summary.stop_reason, "wall_s": summary.wall_s,
            "baselines_ms": {k: v.median_s * 1e3 for k, v in summary.baselines.items()},
            "baseline_errors": summary.baseline_errors,
            "machine_peaks": summary.peaks.model_dump() if summary.peaks else None,
            "best": summary.best.model_dump(mode="json") if summary.best else None,
            "not_ranked": summary.not_ranked, "backend": cfg.backend, "target": summary.target,
            "counts": summary.counts, "failures": summary.failures,
            "models": [u.model_dump() for u in summary.models], "cluster": summary.cluster}


@app.command()
def resume(
    run_ids: list[str] = typer.Argument(..., metavar="RUN...", help="The run to continue (its folder name under "
                                        "--runs-dir); several (e.g. the runs of one search over several "
                                        "--target) continue together, their workers kept busy by one loop."),
    attempts: Optional[int] = typer.Option(None, "--attempts", "-n", min=1,
                                           help="New total attempt budget (to extend a finished run)."),
    time_budget: Optional[str] = typer.Option(None, "--time", "-t", help="New total searching-time budget."),
    device_hours: Optional[float] = typer.Option(None, "--device-hours", min=0.0,
                                                 help="Stop after this much hardware time (compile+verify+bench)."),
    max_dollars: Optional[float] = typer.Option(None, "--max-dollars", min=0.0,
                                                help="Stop when model calls have cost this much."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1,
                                             help="Stop when model calls have used this many tokens."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if it was not the run "
                                                        "folder's SQLite file."),
    address: Optional[str] = typer.Option(None, "--address", help="Join this Ray cluster instead of a local one."),
    executor: Optional[str] = typer.Option(None, "--executor", help="ray or local (see `kscout search --help`); "
                                           "default: what the run was started with."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary instead of tables."),
) -> None:
    """Continue RUN (or several) after any stop (Ctrl-C, SIGTERM, kill -9, reboot) from its experiment log alone.

    The strategy tree, the budgets (minus what was spent) and the best kernel come from the log;
    attempts that were in flight run again exactly once; recorded attempts are never repeated.
    """
    from kscout.config import RunConfig
    if len(set(run_ids)) != len(run_ids):
        _fail(f"a run is named twice: {' '.join(run_ids)}")
    runs = []
    for run_id in run_ids:
        with _run_log(run_id, runs_dir, db) as (_, _, info):
            pass
        cfg = RunConfig.model_validate(info.config)
        cfg.memory.runs_dir = runs_dir
        cfg.memory.db = db
        _budgets(cfg, attempts, time_budget, device_hours, max_dollars, max_tokens)
        if address is not None:
            cfg.cluster.address = address
        if executor is not None:
            cfg.cluster.executor = _executor(executor)
        runs.append((cfg, run_id))
    _run(runs, as_json)


@app.command()
def status(
    run_id: str = typer.Argument(..., help="The run (its folder name under --runs-dir)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if not the folder's SQLite file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Where RUN stands, from its log; works while it runs, from another terminal.

    Progress against the budgets, best so far, spend, rejections by failure class, frontier size,
    attempts in flight."""
    from kscout.run import ResumeError, locate_run, run_status
    try:
        _, url = locate_run(run_id, runs_dir, db)
        st = run_status(run_id, url)
    except ResumeError as e:
        _fail(str(e))
    if as_json:
        print(json.dumps(st, indent=2, default=str))
        return
    t = Table(title=f"run {run_id}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    from kscout.display import usage_line
    for k, v in st.items():
        if k == "models":
            for u in v:
                t.add_row(f"model {u['model']}", usage_line(u))
            continue
        t.add_row(k.replace("_", " "), json.dumps(v) if isinstance(v, (dict, list)) else str(v))
    console.print(t)


@app.command()
def runs(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON status object per run."),
) -> None:
    """List the runs under --runs-dir with their status, progress and best speedup."""
    from kscout.run import run_status
    found = []
    for db_file in sorted(runs_dir.glob("*/kscout.db")) if runs_dir.is_dir() else []:
        try:
            found.append(run_status(db_file.parent.name, f"sqlite:///{db_file.resolve()}"))
        except Exception as e:   # one unreadable run must not hide the others
            found.append({"run": db_file.parent.name, "error": str(e)})
    if as_json:
        print(json.dumps(found, indent=2, default=str))
        return
    t = Table(title=f"runs in {runs_dir}")
    for col in ("run", "workload", "status", "attempts", "best vs eager", "elapsed"):
        t.add_column(col)
    for st in found:
        if "error" in st:
            t.add_row(st["run"], "", f"[red]unreadable[/]: {st['error'][:80]}", "", "", "")
            continue
        best = st.get("best_speedup_vs_eager")
        t.add_row(st["run"], st["workload"], st["status"], f"{st['attempts']}/{st['attempt_budget']}",
                  f"{best:.2f}x" if best else "-", f"{st['elapsed_s']:.0f} s")
    console.print(t)


@app.command()
def replay(
    packet: Path = typer.Argument(..., help="An evidence packet: runs/<run>/packets/<id>.json, or "
                                            "evidence.json from a winner branch."),
    workload: Optional[str] = typer.Option(None, "--workload", help="Workload folder, if it moved since the run."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Re-run one attempt from its packet: verify on every shape again and re-time it here."""
    from harness.replay import load_packet
    from harness.replay import replay as do_replay
    from harness.workload import WorkloadError
    from kscout.display import replay_panel
    try:
        original = load_packet(packet)
        with console.status("re-verifying and re-timing…"):
            r = do_replay(original, workload_path=workload)
    except (ValueError, WorkloadError) as e:
        _fail(str(e))
    old, new = r.original, r.replayed
    lines = [f"attempt {old.id} · workload {old.candidate.workload} · {old.candidate.strategy}",
             f"workload contract: {'same' if r.fingerprint_matches else '[red]CHANGED since the run[/]'}",
             f"verdict: recorded {old.verdict.value}"
             f"{' (' + old.failure_class.value + ')' if old.failure_class else ''}, now {new.verdict.value}"
             f"{' (' + new.failure_class.value + ')' if new.failure_class else ''}"]
    if old.bench and new.bench:
        o, n = old.bench.candidate, new.bench.candidate
        lines.append(f"median: recorded {o.median_s * 1e3:.3f} ms (IQR {o.q1_s * 1e3:.3f}–{o.q3_s * 1e3:.3f}), "
                     f"now {n.median_s * 1e3:.3f} ms; band {r.band_s[0] * 1e3:.3f}–{r.band_s[1] * 1e3:.3f} ms → "
                     f"{'within' if r.timing_within_spread else 'OUTSIDE'}")
        for k, v in new.bench.speedup.items():
            lines.append(f"speedup vs {k}: recorded {old.bench.speedup.get(k, float('nan')):.2f}x, now {v:.2f}x")
    elif new.failure_message:
        lines.append(f"now: {new.failure_message[:300]}")
    if as_json:
        print(json.dumps({"reproduced": r.reproduced, "verified": r.verified,
                          "fingerprint_matches": r.fingerprint_matches,
                          "timing_within_spread": r.timing_within_spread,
                          "recorded_median_s": old.bench.candidate.median_s if old.bench else None,
                          "replayed_median_s": new.bench.candidate.median_s if new.bench else None,
                          "verdict": new.verdict.value,
                          "failure_class": new.failure_class.value if new.failure_class else None}, indent=2))
    else:
        console.print(replay_panel(lines, r.reproduced))
    if not r.reproduced:
        raise typer.Exit(1)


memory_app = typer.Typer(no_args_is_help=True, help="What earlier runs learned (facts, dead ends, best kernels).")
app.add_typer(memory_app, name="memory")

from kscout.skills_cli import skills_app  # noqa: E402  (its commands import this module's helpers lazily)

app.add_typer(skills_app, name="skills")


@memory_app.command("show")
def memory_show(
    workload: Optional[str] = typer.Option(None, "--workload", "-w", help="Only this workload's op family "
                                                                            "(a shipped name or a folder)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="Also read this shared database."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """What earlier runs proved: facts, dead ends and best-known kernels per op family and machine.

    Facts are moves that helped (by how much, with evidence ids); dead ends, moves that never
    verified or never helped, and why. Derived from every run log under --runs-dir; a new search
    starts from them (warm start; `search --config` with memory.warm_start = false turns it off)."""
    from harness import workload as wl
    from memory.knowledge import gather
    from memory.store import StoreOpenError
    try:
        k = gather(runs_dir, [db] if db else [])
    except StoreOpenError as e:
        _fail(str(e))
    if workload:
        try:
            family = wl.load(workload).spec.family
        except wl.WorkloadError as e:
            _fail(str(e))
        k.facts = [f for f in k.facts if f.family == family]
        k.dead_ends = [d for d in k.dead_ends if d.family == family]
        k.best = [b for b in k.best if b.family == family]
    if as_json:
        print(k.model_dump_json(indent=2))
        return
    if k.empty():
        console.print(f"no knowledge yet: no finished attempts in {runs_dir}/*/kscout.db"
                      + (f" or {db}" if db else ""))
        return
    t = Table(title="facts: moves that helped")
    for col in ("family", "hardware", "move", "gain", "obs", "evidence (attempt ids)"):
        t.add_column(col)
    for f in sorted(k.facts, key=lambda f: (f.family, -f.gain)):
        t.add_row(f.family, f.hardware, f.move, f"{f.gain:.2f}x", str(f.observations), ", ".join(f.evidence[:4]))
    console.print(t)
    t = Table(title="dead ends")
    for col in ("family", "hardware", "move", "why", "obs"):
        t.add_column(col)
    for d in k.dead_ends:
        t.add_row(d.family, d.hardware, d.move, d.reason[:120], str(d.observations))
    console.print(t)
    t = Table(title="best-known kernels")
    for col in ("family", "workload", "vs eager", "strategy", "run / attempt"):
        t.add_column(col)
    for b in sorted(k.best, key=lambda b: (b.family, -b.speedup_eager)):
        t.add_row(b.family, b.workload, f"{b.speedup_eager:.2f}x", b.strategy[:80], f"{b.run_id} / {b.attempt_id}")
    console.print(t)


@app.command()
def export(
    run_id: str = typer.Argument(..., help="The run to export."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write (default runs/<run>/export)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if not the folder's SQLite file."),
) -> None:
    """Write RUN's log in the common layout: history.jsonl, frontier.csv, memory.json.

    history.jsonl has one row per attempt; frontier.csv, tried vs untried values of every axis;
    memory.json, the facts and dead ends the run supports."""
    from kscout.export import export_run
    with _run_log(run_id, runs_dir, db) as (run_dir, store, _):
        paths = export_run(store, run_id, out or run_dir / "export")
    for name, p in paths.items():
        console.print(f"{name}: {p}")


@app.command()
def review(
    run_id: str = typer.Argument(..., help="The run to review (its folder name under --runs-dir)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if not the folder's SQLite file."),
    top: int = typer.Option(3, "--top", "-k", min=1, help="How many winners to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The run's winners: speedups over every baseline, SOL, spread, and their branches.

    Rank r is branch kscout/<workload>/<run-id>/<r> (for r up to memory.top_k); `kscout show
    ATTEMPT` prints one winner with its diff against its parent."""
    with _run_log(run_id, runs_dir, db) as (_, store, info):
        packets = [store.packet(a.id) for a in store.top_attempts(run_id, top)]
    rows = []
    for rank, p in enumerate(packets, start=1):
        b = p.bench
        rows.append({"rank": rank, "attempt": p.id, "strategy": p.candidate.strategy, "median_ms": b.candidate.median_s * 1e3,
                     "iqr": b.candidate.iqr_rel, "speedup": dict(b.speedup),
                     "sol": b.roofline.sol if b.roofline else None,
                     "branch": f"kscout/{info.workload}/{run_id}/{rank}"})
    if as_json:
        print(json.dumps({"run": run_id, "workload": info.workload, "status": info.status.value, "winners": rows},
                         indent=2))
        return
    if not rows:
        console.print(f"run {run_id} ({info.workload}) has no verified kernel yet")
        raise typer.Exit(1)
    names = sorted({k for r in rows for k in r["speedup"]})
    t = Table(title=f"winners of {run_id} ({info.workload}, {info.status.value})")
    for col in ("rank", "median", "IQR", *[f"vs {n}" for n in names], "SOL", "strategy", "branch / attempt"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(str(r["rank"]), f"{r['median_ms']:.4g} ms", f"{r['iqr']:.1%}",
                  *[f"{r['speedup'][n]:.2f}x" if n in r["speedup"] else "-" for n in names],
                  f"{r['sol']:.2f}" if r["sol"] is not None else "-", r["strategy"][:70],
                  f"{r['branch']}\n{r['attempt']}")
    console.print(t)


@app.command()
def report(
    run_id: str = typer.Argument(..., help="The run to report on (its folder name under --runs-dir)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default runs/<run>/report.html)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if not the folder's SQLite file."),
) -> None:
    """Write RUN's report: one self-contained HTML file (plotly inlined; opens offline).

    Summary, best speedup over attempts and over time per baseline, the strategy tree coloured by
    verdict, rejections by failure class, the roofline of the accepted kernels, and the cost.
    Works on a run in progress too (it reads the log as it stands)."""
    from kscout.report import write_report
    with _run_log(run_id, runs_dir, db) as (run_dir, store, _):
        path = write_report(store, run_id, out or run_dir / "report.html")
    console.print(f"report: {path}", highlight=False, soft_wrap=True)


@app.command("show")
def show_attempt(
    attempt_id: str = typer.Argument(..., help="An attempt id (from kscout status, packets/ or history.jsonl)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="Look in this database instead of the run folders."),
    as_json: bool = typer.Option(False, "--json", help="Print the packet, the parent's id and the diff as JSON."),
) -> None:
    """One attempt: its verdict and numbers, its source, and the diff against its parent.

    The parent is the best attempt of the strategy node it was refined from."""
    from rich.syntax import Syntax

    from kscout.show import find_attempt, show
    from memory.store import StoreOpenError
    try:
        _, store = find_attempt(attempt_id, runs_dir, db)
    except (KeyError, StoreOpenError) as e:
        _fail(str(e).strip("'\""))
    try:
        s = show(store, attempt_id)
    finally:
        store.close()
    p = s.packet
    if as_json:
        print(json.dumps({"run_id": s.run_id, "packet": p.model_dump(mode="json"),
                          "parent_id": s.parent.id if s.parent else None, "diff": s.diff}, indent=2))
        return
    t = Table(title=f"attempt {p.id} (run {s.run_id})", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("strategy", p.candidate.strategy)
    t.add_row("verdict", p.verdict.value + (f" ({p.failure_class.value}): {p.failure_message[:300]}"
                                            if p.failure_class else ""))
    if p.bench:
        t.add_row("median", f"{p.bench.candidate.median_s * 1e3:.4g} ms (IQR {p.bench.candidate.iqr_rel:.1%})")
        for k, v in p.bench.speedup.items():
            t.add_row(f"vs {k}", f"{v:.2f}x")
        if p.bench.roofline and p.bench.roofline.sol is not None:
            t.add_row("SOL", f"{p.bench.roofline.sol:.2f} of the roofline bound")
    if p.profile is not None:
        t.add_row("profile", p.profile.digest())
    elif p.profile_error:
        t.add_row("profile", f"none: {p.profile_error}")
    for fact in p.candidate.knowledge:
        t.add_row("from memory", fact)
    t.add_row("parent", s.parent.id if s.parent else "(none: a root attempt)")
    t.add_row("replay", p.replay_command)
    console.print(t)
    lang = "python" if p.candidate.backend == "triton" else "cpp"
    console.print(Syntax(s.diff, "diff") if s.diff else Syntax(p.candidate.source, lang, line_numbers=True))


@app.command("workloads")
def list_workloads() -> None:
    """List the shipped workloads with their shapes, dtypes and backends."""
    from harness import workload as wl
    t = Table(title="shipped workloads (workloads/<name>/)")
    for col in ("name", "family", "shapes (bench *)", "dtypes", "backends", "description"):
        t.add_column(col)
    for name in wl.list_builtin():
        try:
            w = wl.load(name)
        except wl.WorkloadError as e:
            t.add_row(name, "[red]invalid[/]", str(e)[:80], "", "", "")
            continue
        shapes = ", ".join(("*" if s.bench else "") + "x".join(str(v) for v in s.dims.values())
                           for s in w.spec.shapes)
        t.add_row(name, w.spec.family, shapes, ",".join(w.spec.dtypes), ",".join(w.spec.backends),
                  w.spec.description)
    console.print(t)


@app.command("import")
def import_cmd(
    files: list[Path] = typer.Argument(..., help="KernelBench problem files (Model, get_inputs, get_init_inputs, "
                                                 "module-level sizes), used unchanged."),
    out: Path = typer.Option(Path("workloads_imported"), "--out", "-o",
                             help="Folder to write workload folders into (one <name>-<hash>/ per file)."),
    max_mib: Optional[float] = typer.Option(None, "--max-mib", min=1,
                                            help="Working-set budget of the timed shape in MiB (default 128); "
                                                 "larger problems are scaled down."),
    max_gflop: Optional[float] = typer.Option(None, "--max-gflop", min=0.001,
                                              help="FLOP budget of one call of the timed shape in GFLOP "
                                                   "(default 20); larger problems are scaled down."),
) -> None:
    """Turn KernelBench problem files into workload folders you can edit and search.

    Each folder gets the file unchanged as reference.py and an inferred workload.toml: the shape
    suite (the file's sizes, scaled down to the budgets if needed, plus mid and tiny variants with
    odd sizes), sizes hidden shapes must keep, tolerances measured against float64, input
    distributions, FLOP and byte counts (torch's FLOP counter) and the op family whose offline
    templates compute the same function ('generic' if none: search it with --model). Every
    inference is written as a comment at the top of workload.toml. Then: kscout search FOLDER.
    """
    for folder in _import_problems(files, out, console, max_mib, max_gflop):
        console.print(f"search it: [bold]kscout search {folder}[/]")


if __name__ == "__main__":
    app()
