"""One attempt end to end: compile -> verify -> benchmark, folded into an EvidencePacket.

An `Evaluator` serves one workload and dtype on one bench slot. It builds the verification
cases (declared, hidden and in-place reruns), the bench rotation sets, and times the baselines
once; then it evaluates candidates one at a time, re-timing the baselines right after each so
speedups compare like with like. Every outcome, including our own errors, becomes a packet with a
verdict; nothing raises out of `evaluate`.
"""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import time
import traceback
from pathlib import Path

from harness import backends, gpu_compile
from harness.backends import triton as triton_backend
from harness.benchmark import (OnDevice, compile_reference, faster_baselines, roofline, speedups, time_compiled,
                               time_eager, timing_from_samples)
from harness.cases import Case, build_cases, rotation_sets
from harness.config import HarnessConfig, TimingPolicy
from harness.envinfo import environment
from harness.evidence import BenchResult, Candidate, EvidencePacket, FailureClass, MemoRecheck, Timing, Verdict
from harness.integrity import Guard, HarnessTampered
from harness.profile import ProfileUnavailable
from harness.verify import degenerate_notes, exit_failure, verify
from harness.workload import Workload

# A result this far above the roofline bound is a broken measurement, not a fast kernel.
ROOFLINE_MARGIN = 1.10
# Interleaved baseline re-timing: short, since it runs after every accepted candidate.
INTERLEAVE_POLICY = TimingPolicy(warmup=1, min_repeats=3, max_repeats=10, min_time_s=0.15, max_time_s=1.0,
                                 rotation_sets=1)

# A candidate timed on one device while the baselines and roofline were measured on another.
DEVICE_MISMATCH = ("timed on {ran_on}: median {median_ms:.4g} ms over {n} calls, but not ranked: this evaluator's "
                   "torch baselines (eager, torch.compile) and roofline were measured on the {device}, so a speedup "
                   "would compare different hardware (start the evaluator with device='cuda' for GPU backends; "
                   "kscout search does)")
EAGER = "torch_eager"
COMPILED = "torch_compile"
NAIVE = "naive_cpp"


class Evaluator:
    def __init__(self, workload: Workload, dtype: str = "float32", cfg: HarnessConfig | None = None,
                 run_id: str | None = None, device: str = "cpu"):
        self.workload = workload
        self.dtype = dtype
        self.cfg = cfg or HarnessConfig()
        self.run_id = run_id
        self.tol = workload.spec.tolerance[dtype]
        hidden = self.cfg.hidden_shapes if workload.spec.verify.hidden_shapes else 0
        self.cases: list[Case] = build_cases(workload, dtype, hidden=hidden)
        self.rotation: list[Case] = rotation_sets(workload, dtype, self.cfg.timing.rotation_sets)
        self.bench_case = self.rotation[0]
        # Where the baselines and the roofline are measured: "cpu", or "cuda" (cuda:0, NVIDIA or
        # ROCm) for the GPU backends. A candidate that runs elsewhere is verified but not ranked.
        self.device = device
        self.on = OnDevice(self.rotation, device)
        self.baselines: dict[str, Timing] = {}
        self.baseline_errors: dict[str, str] = {}
        self.peaks = None
        self.compiled = None               # the reference under torch.compile, built once per evaluator
        self.remeasure_roofline = True     # before rejecting a result above the bound, measure the bound again
        self.fingerprint = workload.fingerprint()
        self._recheck_rotation: list[Case] | None = None
        self.guard = Guard()
        if self.cfg.work_dir is not None:     # a configured scratch folder need not exist yet
            self.cfg.work_dir.mkdir(parents=True, exist_ok=True)
        # Inputs are written to disk once and shared by every candidate's child process.
        self.stage_dir = Path(tempfile.mkdtemp(prefix="kscout-stage-", dir=self.cfg.work_dir))
        atexit.register(shutil.rmtree, self.stage_dir, True)

    def recheck_rotation(self) -> list[Case]:
        """The bench shape under twice the rotation's seeds (the first ones are the rotation's
        own), built the first time a kernel looks like it memoizes."""
        if self._recheck_rotation is None:
            self._recheck_rotation = rotation_sets(self.workload, self.dtype, 2 * len(self.rotation))
        return self._recheck_rotation

    def close(self) -> None:
        shutil.rmtree(self.stage_dir, ignore_errors=True)

    def workload_notes(self) -> list[str]:
        """Warnings about the workload: cases whose reference is within atol of zero everywhere,
        where an all-zeros kernel passes the elementwise check (the relative-L2 check still holds)."""
        return [f"{self.workload.name}: {note}" for note in degenerate_notes(self.cases, self.tol)]

    # --- baselines ----------------------------------------------------------------------------

    def measure_eager(self) -> Timing:
        self.baselines[EAGER] = time_eager(self.rotation, self.cfg, self.on)
        return self.baselines[EAGER]

    def measure_compiled(self) -> Timing | None:
        """torch.compile of the reference; where inductor fails here, say why instead."""
        try:
            if self.compiled is None:
                self.compiled = compile_reference(self.on, self.cfg)
            self.baselines[COMPILED] = time_compiled(self.compiled, self.rotation, self.cfg, self.on)
        except Exception as e:  # inductor needs a working C++ toolchain; its absence is reported
            self.baseline_errors[COMPILED] = f"{type(e).__name__}: {str(e)[:500]}"
            return None
        return self.baselines[COMPILED]

    def interleaved_baselines(self) -> dict[str, Timing]:
        """Re-time the torch baselines now, briefly, so a candidate is compared with them under the
        same machine load (a shared machine's eager time can move 3x within a run)."""
        if not self.cfg.interleave_baselines:
            return {}
        cfg = self.cfg.model_copy(update={"timing": INTERLEAVE_POLICY})
        out = {EAGER: time_eager(self.rotation, cfg, self.on)}
        if COMPILED in self.baselines:
            try:
                out[COMPILED] = time_compiled(self.compiled, self.rotation, cfg, self.on)
            except Exception:  # it compiled at the start of the run; if it fails now, keep that figure
                pass
        return out

    def measure_roofline(self) -> None:
        from harness.roofline import measure, measure_gpu
        self.peaks = measure(self.cfg.threads, cxx=self.cfg.cxx, build_dir=self.cfg.cache_dir) \
            if self.device == "cpu" else measure_gpu()

    def add_baseline(self, name: str, timing: Timing) -> None:
        self.baselines[name] = timing

    # --- one attempt --------------------------------------------------------------------------

    def evaluate(self, candidate: Candidate, replay_command: str = "", bench: bool = True) -> EvidencePacket:
        """Compile, verify and (unless `bench` is False) time one candidate: always a packet, never a raise."""
        t0 = time.monotonic()
        packet = EvidencePacket(candidate=candidate, run_id=self.run_id, workload_path=str(self.workload.path),
                                workload_fingerprint=self.fingerprint, replay_command=replay_command)
        workdir = Path(tempfile.mkdtemp(prefix="kscout-", dir=self.cfg.work_dir))
        try:
            self.guard.check()
            self._evaluate(packet, workdir, bench)
        except HarnessTampered as e:
            packet.reject(FailureClass.harness_error, str(e))
        except backends.BackendUnavailable as e:   # e.g. compiled for a GPU this machine does not have
            packet.reject(FailureClass.unsupported_backend, str(e))
        except Exception as e:  # our bug, not the candidate's: recorded, never hidden
            packet.reject(FailureClass.harness_error, f"{type(e).__name__}: {e}")
            packet.artifacts["harness_traceback"] = traceback.format_exc()[-8000:]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            packet.cost.wall_s = time.monotonic() - t0
        return packet

    def _evaluate(self, packet: EvidencePacket, workdir: Path, timed: bool = True) -> None:
        cand, spec, cfg = packet.candidate, self.workload.spec, self.cfg
        try:
            backend = backends.get(cand.backend)
        except backends.BackendUnavailable as e:
            packet.reject(FailureClass.unsupported_backend, str(e))
            return
        packet.environment = environment(cfg.threads, backend.toolchain(cfg),
                                         {k: v.model_dump() for k, v in spec.tolerance.items()})
        packet.environment.harness_digest = self.guard.expected
        packet.environment.gpu = backend.device_info(cfg)
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
                          spec.limits.run_s, self.stage_dir)
        packet.environment.sandbox = run.sandbox
        ver = verify(run, self.cases, self.tol, spec.limits.run_s, cfg.precision_factor)
        if not ver.ok:
            ver = self._attribute_to_state(ver, backend, comp.artifact, cand.entry_point, workdir)
        ver.seconds = time.monotonic() - t
        packet.verify = ver
        packet.cost.verify_s = ver.seconds
        packet.cost.device_s += run.exit.seconds
        if run.exit.stderr:
            packet.artifacts["verify_stderr"] = run.exit.stderr
        if run.error:
            packet.artifacts["candidate_traceback"] = run.error[-8000:]
        if not ver.ok:
            packet.reject(ver.failure or FailureClass.harness_error, ver.message)
            return
        if not self._fits_target_gpus(packet, backend, comp.artifact):
            return

        if not timed:
            packet.correctness_only = "verified only (asked not to time it)"
            packet.verdict = Verdict.accepted
            return
        t = time.monotonic()
        bench = backend.run(comp.artifact, cand.entry_point, self.rotation, "bench", cfg, workdir / "bench",
                            spec.limits.run_s, self.stage_dir)
        packet.cost.device_s += bench.exit.seconds
        if bench.error:
            packet.artifacts["candidate_traceback"] = bench.error[-8000:]
        early = exit_failure(bench, self.rotation, spec.limits.run_s)
        if early:
            packet.reject(early[0], f"during benchmark: {early[1]}")
            return
        # The outputs left by the timed calls, one per rotation set: a kernel must stay correct
        # when repeated, with its output poisoned before every call.
        recheck = verify(bench, self.rotation, self.tol, spec.limits.run_s, cfg.precision_factor)
        if not recheck.ok and recheck.failure != FailureClass.constant_output:
            packet.reject(recheck.failure or FailureClass.wrong_result, f"after timing: {recheck.message}")
            return
        ran_on = "cpu" if packet.environment.gpu is None else "cuda"
        if bench.timing_meaningful and ran_on != self.device and bench.times:
            bench.timing_meaningful = False
            bench.timing_note = DEVICE_MISMATCH.format(
                ran_on=packet.environment.gpu.name if packet.environment.gpu else "the CPU",
                median_ms=statistics.median(bench.times) * 1e3, n=len(bench.times), device=self.device)
        if not bench.timing_meaningful:
            # Correct, but its times say nothing about the hardware (Triton's CPU interpreter), or
            # nothing comparable with the baselines: no BenchResult, so no speedup exists for the
            # planner, the log or the branches to rank.
            packet.correctness_only = bench.timing_note or "timings are not meaningful on this backend"
            packet.cost.bench_s = time.monotonic() - t
            packet.verdict = Verdict.accepted
            self._profile(packet, backend, comp.artifact, workdir)
            return
        timing = timing_from_samples(bench.times or [], cfg)
        fresh_ratio = _fresh_over_repeat(bench.times or [], bench.fresh)
        memo = None
        if fresh_ratio is not None and fresh_ratio > cfg.timing.caching_ratio:
            memo = self._memo_recheck(packet, backend, comp.artifact, cand.entry_point, cfg, workdir,
                                      spec.limits.run_s, len(bench.times or []), timing.median_s)
        interleaved = self.interleaved_baselines()
        dims = self.bench_case.shape.dims
        # Speedups are against the faster of the two figures for each torch baseline
        # (faster_baselines); `drift` keeps both visible.
        compare_to = faster_baselines(self.baselines, interleaved)
        packet.bench = BenchResult(
            shape=self.bench_case.shape.name, dims=dims, candidate=timing, baselines=dict(self.baselines),
            speedup=speedups(timing, compare_to), interleaved=interleaved,
            drift={k: v.median_s / self.baselines[k].median_s for k, v in interleaved.items() if k in self.baselines},
            roofline=roofline(spec, dims, timing, self.peaks, self.dtype), rotation_sets=len(self.rotation),
            cache_flush_bytes=bench.flush_bytes, cache_eviction=bench.cache_eviction, fresh_over_repeat=fresh_ratio,
            memo_recheck=memo, seconds=time.monotonic() - t)
        packet.cost.bench_s = packet.bench.seconds
        if fresh_ratio is not None and fresh_ratio > cfg.timing.caching_ratio:
            judged = _judge_memo(fresh_ratio, memo, cfg.timing.caching_ratio)
            if judged is not None:
                packet.reject(*judged)
                return
        sol = packet.bench.roofline.sol if packet.bench.roofline else None
        if cfg.timing.flush_cache is False and packet.bench.roofline:
            # Asked for warm caches: the bound is memory's (measured on evicted arrays), and these
            # calls may read their data from cache. The score stays, as a ratio; it judges nothing.
            packet.bench.roofline.peak_method += ("; these calls ran with warm caches (timing.flush_cache = false): "
                                                  "SOL may exceed 1 and is not checked")
            sol = None
        if sol is not None and sol > ROOFLINE_MARGIN and self.peaks is not None and self.remeasure_roofline:
            # The bound may be stale (measured while the machine was busy): measure it again now
            # (the cache keeps the best figure) and judge against that before calling it a fault.
            self.measure_roofline()
            packet.bench.roofline = roofline(spec, dims, timing, self.peaks, self.dtype)
            sol = packet.bench.roofline.sol
        if sol is not None and sol > ROOFLINE_MARGIN:
            packet.reject(FailureClass.measurement_fault,
                          f"measured {timing.median_s * 1e3:.4g} ms is {sol:.2f}x faster than this machine's roofline "
                          f"bound allows ({packet.bench.roofline.bound_s * 1e3:.4g} ms): the timing, the cost model or "
                          "the measured peak is wrong; not reported as a win")
            return
        packet.verdict = Verdict.accepted
        self._profile(packet, backend, comp.artifact, workdir)

    def _memo_recheck(self, packet: EvidencePacket, backend, artifact: str, entry_point: str, cfg: HarnessConfig,
                      workdir: Path, run_s: float, main_calls: int, claimed_s: float) -> MemoRecheck | None:
        """The first run's first-seen calls were slower than its repeats by more than
        timing.caching_ratio. Few calls see fresh inputs, and they are the first timed calls, so
        a preempted OpenMP thread or a slow start (a loaded 2-core machine timed a kernel that
        starts threads each call 100x slower on its first ~30 calls than after) can look the same
        as memoization. So: a new child process (its memory starts empty), set 0 repeated for as
        many calls as the first run timed (a slow start that left that run's median fast is over
        by then), then twice as many first-seen sets, each followed by a repeat. Judged against
        the first run's median: a kernel that computes cannot make a first-seen call faster than
        its work, and one that pads its calls, or computes honestly once it spots a recheck,
        cannot reproduce the median it claimed. None where the recheck could not run."""
        sets = self.recheck_rotation()
        lead = max(main_calls, 1)
        schedule = memo_recheck_schedule(lead, len(sets))
        calls = len(schedule)
        pol = cfg.timing
        # exactly that many timed calls; the time cap scales with them (the lead-in alone is as
        # long as the first run, and first-seen calls of a memoizer cost the whole work)
        recheck_cfg = cfg.model_copy(update={"timing": pol.model_copy(update={
            "min_repeats": calls, "max_repeats": calls, "schedule": schedule,
            "max_time_s": pol.max_time_s * (2 + calls / lead)})})
        # and the child's wall-clock limit with them: the first run's calls fitted in run_s
        limit_s = run_s * max(1.0, (calls + pol.warmup) / (lead + pol.warmup))
        again = backend.run(artifact, entry_point, sets, "bench", recheck_cfg, workdir / "bench-recheck",
                            limit_s, self.stage_dir)
        packet.cost.device_s += again.exit.seconds
        if exit_failure(again, sets, limit_s):
            return None
        fresh_over, repeat_over = _over_claim(again.times or [], again.fresh, lead, claimed_s)
        return MemoRecheck(calls=len(again.times or []), lead_in=lead, fresh_over_claim=fresh_over,
                           repeat_over_claim=repeat_over)

    def _fits_target_gpus(self, packet: EvidencePacket, backend, artifact: str) -> bool:
        """Triton in the interpreter: would the verified kernel launch on the GPUs it is meant for?"""
        cfg = self.cfg
        if backend.name != "triton" or not cfg.triton_targets or not triton_backend.interpreted(cfg):
            return True
        t = time.monotonic()
        for target in cfg.triton_targets:
            rep = gpu_compile.check(Path(artifact), packet.candidate.entry_point, self.workload.path, target,
                                    dtype=packet.candidate.dtype, cfg=cfg)
            packet.gpu_compile.append(rep)
            if not rep.ok:
                packet.cost.compile_s += time.monotonic() - t
                packet.reject(FailureClass.compile_error, "verified in Triton's CPU interpreter, but would not launch "
                              f"on {target} ({gpu_compile.TARGETS[target].parts}): {rep.summary()}")
                return False
        packet.cost.compile_s += time.monotonic() - t
        return True

    def _profile(self, packet: EvidencePacket, backend, artifact: str, workdir: Path) -> None:
        """harness.profile: one more run of the accepted kernel under Nsight Compute, on the bench
        shape; where that is impossible, the packet says why. The verdict stands either way."""
        if not self.cfg.profile:
            return
        run = getattr(backend, "profile", None)
        if run is None:
            packet.profile_error = (f"the {backend.name} backend has no profiler (Nsight Compute profiles GPU "
                                    "kernels: use the triton or cuda backend on an NVIDIA GPU)")
            return
        try:
            packet.profile = run(artifact, packet.candidate.entry_point, self.bench_case, self.cfg,
                                 workdir / "profile", self.stage_dir)
            packet.cost.device_s += packet.profile.seconds
        except ProfileUnavailable as e:
            packet.profile_error = str(e)

    # Failures that a fresh process might not reproduce: the kernel's state from earlier calls.
    _STATEFUL = (FailureClass.wrong_result, FailureClass.nan_inf, FailureClass.hidden_shape,
                 FailureClass.output_not_written)

    def _attribute_to_state(self, ver, backend, artifact: str, entry_point: str, workdir: Path):
        """A case that failed after other calls in the same process is run again alone, in a
        fresh process. If it passes there, the kernel carries state between calls: stale_output."""
        bad = ver.case_index
        if ver.failure not in self._STATEFUL or not bad:   # the first call of a process has no earlier state
            return ver
        case = self.cases[bad]
        if case.rerun_of is not None:
            return ver
        alone = backend.run(artifact, entry_point, [case], "verify", self.cfg, workdir / "alone",
                            self.workload.spec.limits.run_s, self.stage_dir)
        again = verify(alone, [case], self.tol, self.workload.spec.limits.run_s, self.cfg.precision_factor)
        if again.ok or again.failure == FailureClass.constant_output:   # one case cannot show variation
            ver.failure = FailureClass.stale_output
            ver.message = (f"wrong after {bad} earlier call(s) in the same process, right when called first in a "
                           f"fresh one: state persists between calls ({ver.message})")
        return ver


def _fresh_over_repeat(times: list[float], fresh: list[bool]) -> float | None:
    """The fastest timed call on first-seen inputs over the median on repeated inputs. A kernel
    that memoizes is slow on every first-seen set, so the fastest of them shows it; an honest
    kernel with one fresh call preempted (few calls are fresh) does not look like one."""
    f = [t for t, is_fresh in zip(times, fresh) if is_fresh]
    r = [t for t, is_fresh in zip(times, fresh) if not is_fresh]
    if not f or len(r) < 2:
        return None
    rep = statistics.median(r)
    return min(f) / rep if rep > 0 else None


def memo_recheck_schedule(lead: int, n_sets: int) -> list[int]:
    """The recheck's input sets: set 0 `lead` times (it was the warmup's), then each new set once,
    each followed by a repeat of set 0."""
    return [0] * lead + [k for j in range(1, n_sets) for k in (j, 0)]


def _over_claim(times: list[float], fresh: list[bool], lead: int,
                claimed_s: float) -> tuple[float | None, float | None]:
    """After the lead-in: the fastest first-seen call and the median repeat, over the claimed
    median. (None, None) where the recheck stopped before its first new set."""
    tail = list(zip(times[lead:], fresh[lead:]))
    f = [t for t, is_fresh in tail if is_fresh]
    r = [t for t, is_fresh in tail if not is_fresh]
    if not f or claimed_s <= 0:
        return None, None
    return min(f) / claimed_s, (statistics.median(r) / claimed_s if r else None)


def _judge_memo(fresh_ratio: float, memo: MemoRecheck | None, limit: float) -> tuple[FailureClass, str] | None:
    """The verdict on a candidate whose first-seen calls were `fresh_ratio` times slower than its
    repeats: None (not memoization: the recheck's first-seen calls ran at the claimed speed) or
    the rejection."""
    first = f"calls on first-seen inputs took {fresh_ratio:.1f}x as long as calls on repeated inputs (limit {limit:g}x)"
    if memo is None or memo.fresh_over_claim is None:
        return FailureClass.input_caching, f"{first}, and the recheck in a second process did not complete: " \
            "the kernel remembers results instead of computing"
    if memo.fresh_over_claim <= limit:
        return None
    again = (f"in a second process, after {memo.lead_in} repeated calls, first-seen inputs took "
             f"{memo.fresh_over_claim:.1f}x the claimed median")
    if memo.repeat_over_claim is not None and memo.repeat_over_claim > limit:
        return FailureClass.measurement_fault, (
            f"{first}; {again} and repeated ones {memo.repeat_over_claim:.1f}x: the claimed time does not "
            "reproduce (a kernel that computes only when it is rechecked, or a machine that got much busier); "
            "not reported")
    return FailureClass.input_caching, f"{first}; {again}: the kernel remembers results instead of computing"


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

