"""`kscout skills …`: see which skills an agent reads, and optimize the agents' programs with GEPA."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

skills_app = typer.Typer(no_args_is_help=True, help="The agents' skills (SKILL.md) and their optimized programs.")
console = Console()
status_out = Console(stderr=True)   # progress never mixes with --json on stdout


@skills_app.command("list")
def list_skills(
    workload: Optional[str] = typer.Argument(None, help="Show what a proposal for this workload reads."),
    backend: str = typer.Option("cpu_cpp", "--backend", help="Backend the kernels are written for."),
    budget: int = typer.Option(6000, "--budget", help="Context budget in tokens (agents.skills_budget_tokens)."),
) -> None:
    """Every skill under skills/, or the ones a proposal for WORKLOAD reads, in the order it reads them."""
    from agents import skills
    from kscout.cli import _fail
    try:
        if workload is None:
            chosen, left = list(skills.load_all()), []
        else:
            from harness import workload as workloads
            sel = skills.select(backend, workloads.load(workload).spec.family, budget)
            chosen, left = sel.skills, sel.left_out
    except (skills.SkillError, ValueError) as e:
        _fail(str(e))
    t = Table(title="skills" + (f" for {workload} on {backend}" if workload else ""))
    for col in ("name", "kind", "for", "tokens", "description"):
        t.add_column(col)
    for s in chosen:
        t.add_row(s.name, s.kind, ", ".join(s.backends or s.families), str(s.tokens), s.description)
    console.print(t)
    if left:
        console.print(f"[yellow]left out (over the {budget}-token budget):[/] {', '.join(left)}")


def _hardware_worker(cfg, wl, out: Console):
    """A hardware worker like a search's (Ray actor, bench slot, interleaved baselines); its
    evaluate judges each kernel GEPA's program writes. torch.compile is not timed: the metric
    compares with torch eager and with the run's best kernel."""
    import ray

    from kscout.run import start_ray
    from search.workers import HardwareWorker
    out.print("[kscout] starting Ray and a hardware worker (baseline: torch eager)", highlight=False)
    start_ray(cfg)
    harness_cfg = cfg.harness.model_copy(update={"compiled_baseline": False})
    worker = HardwareWorker.remote(str(wl.path), cfg.dtype, harness_cfg, "skills-optimize",
                                   niceness=os.getpriority(os.PRIO_PROCESS, 0))
    ray.get(worker.baselines.remote())
    return lambda candidate: ray.get(worker.evaluate.remote(candidate))


@skills_app.command("optimize")
def optimize(
    run: str = typer.Option(..., "--run", help="The logged run to learn from (its folder name under --runs-dir)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model that writes kernels during "
                                        "optimization (default: the run's first model)."),
    reflection_model: Optional[str] = typer.Option(None, "--reflection-model", help="Model that reads the "
                                                   "harness's feedback and rewrites the instructions (default: --model)."),
    api_base: Optional[str] = typer.Option(None, "--api-base", help="Endpoint for self-hosted models."),
    max_metric_calls: int = typer.Option(24, "--max-metric-calls", min=2, help="Kernels GEPA may have "
                                         "evaluated (each is compiled, verified and timed)."),
    examples: int = typer.Option(6, "--examples", min=2, help="Strategy nodes of the run used as examples."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where the optimized program goes "
                                       "(default skills/optimized/, which searches load)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run folders are (default ./runs)."),
    db: Optional[str] = typer.Option(None, "--db", help="The run's database URL, if not the folder's SQLite file."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Optimize the propose program with DSPy's GEPA on RUN's attempts.

    Each example is a strategy the run tried; each kernel the program writes is judged by the
    harness, and the verdict (failure class and message, or speedup) is the feedback the
    reflection model learns from. The program is saved only if it scores better than before;
    later searches load it, and each packet records the program version that wrote its kernel.
    """
    from agents.models import ModelConfigError, parse_model_arg, preflight
    from agents.optimize import OptimizeError
    from agents.optimize import optimize as run_gepa
    from agents.programs import OPTIMIZED_DIR
    from harness import workload as workloads
    from kscout.cli import _fail, _run_log
    from kscout.config import RunConfig
    with _run_log(run, runs_dir, db) as (_, store, info):
        cfg = RunConfig.model_validate(info.config)
        name = model or (cfg.agents.models[0].model if cfg.agents.models else None)
        if name is None:
            _fail(f"run {run} used no model; pass --model provider/model for the kernels written while optimizing")
        base = api_base or (cfg.agents.models[0].api_base if cfg.agents.models and model is None else None)
        try:
            task = parse_model_arg(name, base)
            reflect = parse_model_arg(reflection_model, api_base or base) if reflection_model else task
            for spec in {task.model: task, reflect.model: reflect}.values():
                preflight(spec)
            wl = workloads.load(cfg.workload)
        except (ModelConfigError, workloads.WorkloadError) as e:
            _fail(str(e))
        try:
            # DSPy's progress bars print to stdout: keep stdout for the report (--json).
            with contextlib.redirect_stdout(sys.stderr):
                evaluate = _hardware_worker(cfg, wl, status_out)
                report = run_gepa(store, run, wl, backend=cfg.backend, dtype=cfg.dtype, evaluate=evaluate,
                                  model=task, reflection=reflect, out_dir=out or OPTIMIZED_DIR,
                                  max_metric_calls=max_metric_calls, examples=examples,
                                  on_status=lambda s: status_out.print(f"[kscout] {s}", highlight=False))
        except OptimizeError as e:
            _fail(str(e))
        store.record_llm_calls(run, report.calls, program=report.before)   # GEPA's spend, in the run's log
    if as_json:
        print(json.dumps(report.model_dump(mode="json", exclude={"calls"}), indent=2))
        return
    t = Table(title=f"GEPA on {report.program} — run {report.run_id}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("examples", str(report.examples))
    t.add_row("kernels judged", f"{report.metric_calls} (compiled, verified, timed by the harness)")
    t.add_row("score before", f"{report.baseline_score:.3f}")
    t.add_row("score after", f"{report.best_score:.3f}")
    t.add_row("program", f"{report.before} -> {report.after}" if report.changed else f"{report.before} (unchanged)")
    t.add_row("saved to", report.saved_to or "[yellow]not saved: no improvement[/]")
    t.add_row("model calls", f"{len(report.calls)} ({sum(c.tokens_in + c.tokens_out for c in report.calls):,} tokens, "
                             f"${sum(c.dollars for c in report.calls):.4f})")
    t.add_row("time", f"{report.seconds:.0f} s")
    console.print(t)
