"""One attempt end to end: compile -> verify -> benchmark, folded into an EvidencePacket.

An `Evaluator` serves one workload and dtype on one bench slot. It builds the verification
cases and times the baselines once, then evaluates candidates one at a time. Every outcome,
including our own errors, becomes a packet with a verdict; nothing raises out of `evaluate`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from pathlib import Path

from harness import backends
from harness.benchmark import roofline, speedups, time_compiled, time_eager, timing_from_samples
from harness.cases import Case, build_cases
from harness.config import HarnessConfig
from harness.envinfo import environment
from harness.evidence import BenchResult, Candidate, EvidencePacket, FailureClass, Timing, Verdict
from harness.verify import exit_failure, verify
from harness.workload import Workload

EAGER = "torch_eager"
COMPILED = "torch_compile"
NAIVE = "naive_cpp"


class Evaluator:
    def __init__(self, workload: Workload, dtype: str = "float32", cfg: HarnessConfig | None = None,
                 run_id: str | None = None):
        self.workload = workload
        self.dtype = dtype
        self.cfg = cfg or HarnessConfig()
        self.run_id = run_id
        self.tol = workload.spec.tolerance[dtype]
        self.cases: list[Case] = build_cases(workload, dtype)
        self.bench_case = next(c for c in self.cases if c.shape.bench)
        self.baselines: dict[str, Timing] = {}
        self.baseline_errors: dict[str, str] = {}
        self.peaks = None
        self.fingerprint = workload.fingerprint()

    # --- baselines ----------------------------------------------------------------------------

    def measure_eager(self) -> Timing:
        self.baselines[EAGER] = time_eager(self.bench_case, self.cfg)
        return self.baselines[EAGER]

    def measure_compiled(self) -> Timing | None:
        """torch.compile of the reference; where inductor fails here, say why instead."""
        try:
            self.baselines[COMPILED] = time_compiled(self.bench_case, self.cfg)
        except Exception as e:  # inductor needs a working C++ toolchain; its absence is reported
            self.baseline_errors[COMPILED] = f"{type(e).__name__}: {str(e)[:500]}"
            return None
        return self.baselines[COMPILED]

    def measure_roofline(self) -> None:
        from harness.roofline import measure
        self.peaks = measure(self.cfg.threads)

    def add_baseline(self, name: str, timing: Timing) -> None:
        self.baselines[name] = timing

    # --- one attempt --------------------------------------------------------------------------

    def evaluate(self, candidate: Candidate, replay_command: str = "") -> EvidencePacket:
        t0 = time.monotonic()
        packet = EvidencePacket(candidate=candidate, run_id=self.run_id, workload_path=str(self.workload.path),
                                workload_fingerprint=self.fingerprint, replay_command=replay_command)
        workdir = Path(tempfile.mkdtemp(prefix="kscout-", dir=self.cfg.work_dir))
        try:
            self._evaluate(packet, workdir)
        except Exception as e:  # our bug, not the candidate's: recorded, never hidden
            packet.reject(FailureClass.harness_error, f"{type(e).__name__}: {e}")
            packet.artifacts["harness_traceback"] = traceback.format_exc()[-8000:]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            packet.cost.wall_s = time.monotonic() - t0
        return packet

    def _evaluate(self, packet: EvidencePacket, workdir: Path) -> None:
        cand, spec, cfg = packet.candidate, self.workload.spec, self.cfg
        try:
            backend = backends.get(cand.backend)
        except backends.BackendUnavailable as e:
            packet.reject(FailureClass.unsupported_backend, str(e))
            return
        packet.environment = environment(cfg.threads, backend.toolchain(cfg),
                                         {k: v.model_dump() for k, v in spec.tolerance.items()})
        if cand.backend not in spec.backends:
            packet.reject(FailureClass.unsupported_backend,
                          f"workload '{spec.name}' allows backends {spec.backends}, not '{cand.backend}'")
            return
        problem = _source_problem(cand.source)
        if problem:
            packet.reject(FailureClass.bad_candidate, problem)
            return

        comp = backend.compile(cand.source, cand.entry_point, cfg, spec.limits.compile_s)
        packet.compile = comp
        packet.cost.compile_s = comp.seconds
        packet.artifacts["compile_log"] = comp.log
        if not comp.ok:
            packet.reject(comp.failure or FailureClass.compile_error, _last_lines(comp.log))
            return

        t = time.monotonic()
        run = backend.run(comp.artifact, cand.entry_point, self.cases, "verify", cfg, workdir / "verify",
                          spec.limits.run_s)
        ver = verify(run, self.cases, self.tol, spec.limits.run_s)
        ver.seconds = time.monotonic() - t
        packet.verify = ver
        packet.cost.verify_s = ver.seconds
        packet.cost.device_s += run.exit.seconds
        if run.exit.stderr:
            packet.artifacts["verify_stderr"] = run.exit.stderr
        if not ver.ok:
            packet.reject(ver.failure or FailureClass.harness_error, ver.message)
            return

        t = time.monotonic()
        bench = backend.run(comp.artifact, cand.entry_point, [self.bench_case], "bench", cfg, workdir / "bench",
                            spec.limits.run_s)
        packet.cost.device_s += bench.exit.seconds
        early = exit_failure(bench, [self.bench_case], spec.limits.run_s)
        if early:
            packet.reject(early[0], f"during benchmark: {early[1]}")
            return
        # Re-check the output left by the last timed call: a kernel must stay correct when repeated.
        recheck = verify(bench, [self.bench_case], self.tol, spec.limits.run_s)
        if not recheck.ok and recheck.failure != FailureClass.constant_output:
            packet.reject(recheck.failure or FailureClass.wrong_result, f"after timing: {recheck.message}")
            return
        timing = timing_from_samples(bench.times or [], cfg)
        dims = self.bench_case.shape.dims
        packet.bench = BenchResult(shape=self.bench_case.shape.name, dims=dims, candidate=timing,
                                   baselines=dict(self.baselines), speedup=speedups(timing, self.baselines),
                                   roofline=roofline(spec, dims, timing, self.peaks), seconds=time.monotonic() - t)
        packet.cost.bench_s = packet.bench.seconds
        packet.verdict = Verdict.accepted


def _source_problem(source: str) -> str | None:
    if not source.strip():
        return "empty source"
    if "\0" in source or sum(not (c.isprintable() or c in "\n\r\t") for c in source[:4096]) > 8:
        return "source is not text (binary or control characters)"
    if len(source) > 1_000_000:
        return f"source is {len(source)} characters; the limit is 1,000,000"
    return None


def _last_lines(text: str, n: int = 12) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(lines[-n:])[:4000] or "(no compiler output)"

