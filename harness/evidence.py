"""The evidence packet: one typed record per attempt, pass or fail.

Stages hand typed records to each other (CompileResult -> VerifyResult -> BenchResult) and the
attempt runner folds them into one EvidencePacket. A rejected attempt carries a named
FailureClass and the text that explains it; nothing is ever a bare score of zero.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

from harness.gpu import GpuInfo
from harness.gpu_compile import CompileCheck
from harness.profile import ProfileSummary


class Verdict(str, Enum):
    accepted = "accepted"
    rejected = "rejected"


class FailureClass(str, Enum):
    """Why an attempt was rejected. Ordered roughly by the stage that detects it; the cheat
    catalog (harness/cheats.py) names the behaviour behind each class."""

    # The proposal stage: a model's answer never became a kernel (nothing reached the hardware).
    model_error = "model_error"                  # the provider failed after retries (rate limit, timeout, 5xx, auth)
    no_code = "no_code"                          # the answer held no code (prose only, or empty)
    wrong_language = "wrong_language"            # code, but not for this backend (e.g. Python for cpu_cpp)
    truncated_output = "truncated_output"        # the answer stopped mid-code (max tokens reached)
    output_too_large = "output_too_large"        # the answer or its code exceeded the size limit
    bad_candidate = "bad_candidate"              # empty, binary or unusable source
    unsupported_backend = "unsupported_backend"  # backend not allowed or not available here
    compile_error = "compile_error"
    compile_timeout = "compile_timeout"
    missing_entry_point = "missing_entry_point"  # compiled, but kscout_forward is not exported
    forbidden_symbol = "forbidden_symbol"        # object imports or contains what a kernel must not use
    load_error = "load_error"                    # the shared object could not be loaded
    sandbox_violation = "sandbox_violation"      # made a system call the sandbox forbids (SIGSYS)
    memory_limit = "memory_limit"                # ran out of its address-space limit
    runtime_crash = "runtime_crash"              # killed by a signal (segfault, abort, ...)
    timeout = "timeout"                          # ran past its time limit; process group killed
    runtime_error = "runtime_error"              # returned a non-zero status
    out_of_bounds_write = "out_of_bounds_write"  # wrote outside its output (canary changed)
    input_mutated = "input_mutated"              # changed an input tensor
    async_work = "async_work"                    # output still changing after the call returned
    output_not_written = "output_not_written"    # some output still holds the poison pattern
    nan_inf = "nan_inf"                          # NaN or Inf where the reference is finite
    wrong_result = "wrong_result"                # outside tolerance on some shape / seed / distribution
    hidden_shape = "hidden_shape"                # right on the declared shapes, wrong on an unseen one
    stale_output = "stale_output"                # output depends on something besides the current inputs
    precision_loss = "precision_loss"            # within tolerance, but far less exact than the dtype allows
    degenerate_output = "degenerate_output"      # passes only because the reference is near zero
    constant_output = "constant_output"          # output does not vary with the input
    input_caching = "input_caching"              # repeated inputs run much faster than fresh ones
    measurement_fault = "measurement_fault"      # faster than the roofline allows: the timing is wrong
    harness_error = "harness_error"              # our fault, not the candidate's; never silent
    hardware_fault = "hardware_fault"            # the worker or its node died mid-attempt, on every retry


class LLMCall(BaseModel):
    """One request to a model provider, successful or not (retries are separate calls)."""

    model: str
    role: str = "propose"              # propose | diagnose | world_model | reflect
    tokens_in: int = 0
    tokens_out: int = 0
    dollars: float = 0.0               # litellm's offline cost map; 0 for models it does not price
    priced: bool = True                # False: the model is not in the cost map, dollars are unknown
    latency_s: float = 0.0
    outcome: str = "ok"                # ok | rate_limited | timeout | server_error | auth_error | bad_request | error
    error: str = ""                    # provider message, keys scrubbed
    finish_reason: str = ""
    started_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class Candidate(BaseModel):
    """A kernel to try: source plus where it came from in the search."""

    source: str
    backend: str = "cpu_cpp"
    entry_point: str = "kscout_forward"
    workload: str
    dtype: str = "float32"
    strategy: str = ""                 # human-readable strategy (the tree node's description)
    params: dict[str, Any] = Field(default_factory=dict)
    node_id: str | None = None
    parent_attempt_id: str | None = None
    proposer: str = "offline"
    knowledge: list[str] = Field(default_factory=list)   # facts from earlier runs that shaped its strategy
    # Model-written candidates: which program version proposed it, the calls it took, what the model
    # said, and (when no usable source came back) why; such a candidate never reaches the hardware.
    program: str = ""                  # e.g. "propose@3f2a9c1d" (default or optimized skill program)
    rationale: str = ""
    extraction: str = ""               # how the source was cut out of the answer
    llm_calls: list[LLMCall] = Field(default_factory=list)
    proposal_failure: FailureClass | None = None
    proposal_error: str = ""


class CompileResult(BaseModel):
    ok: bool
    failure: FailureClass | None = None
    command: list[str] = Field(default_factory=list)
    log: str = ""
    seconds: float = 0.0
    cached: bool = False
    artifact: str | None = None        # path of the built shared object
    source_hash: str = ""


class CaseResult(BaseModel):
    """One verification case: a shape, a seed, an input distribution."""

    shape: str
    dims: dict[str, int]
    seed: int
    distribution: str
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    nan_inf: bool = False
    passed: bool = False
    message: str = ""
    kind: str = "suite"                  # suite | hidden | rerun (inputs overwritten in place) | rotation
    err_vs_fp64: float | None = None     # max |out - fp64 reference| / (|ref| + mean|ref|), in units of eps
    ref_err_vs_fp64: float | None = None  # the same for the reference computed in the dtype under test
    rel_l2: float | None = None          # ||out - ref|| / ||ref||


class VerifyResult(BaseModel):
    ok: bool
    failure: FailureClass | None = None
    message: str = ""
    cases: list[CaseResult] = Field(default_factory=list)
    varies_with_input: bool | None = None
    notes: list[str] = Field(default_factory=list)   # e.g. a near-zero (degenerate) case was found
    case_index: int | None = None      # which call decided a per-case failure
    seconds: float = 0.0


class Timing(BaseModel):
    """Summary of repeated wall-clock timings of one callable (seconds)."""

    warmup: int
    repeats: int
    median_s: float
    q1_s: float
    q3_s: float
    min_s: float
    mean_s: float

    @property
    def iqr_rel(self) -> float:
        """Interquartile range relative to the median: the spread we report."""
        return (self.q3_s - self.q1_s) / self.median_s if self.median_s > 0 else 0.0


class Roofline(BaseModel):
    flops: float
    bytes: float
    achieved_gflops: float
    achieved_gbps: float
    arithmetic_intensity: float
    peak_gbps: float | None = None      # this machine's measured bandwidth (harness.roofline)
    peak_gflops: float | None = None    # this machine's measured FLOP/s for the dtype under test
    peak_method: str = ""
    bound_s: float | None = None        # max(bytes / bandwidth, flops / peak): the fastest possible
    sol: float | None = None            # bound_s / measured median; 1.0 is the roofline


class MemoRecheck(BaseModel):
    """The memoization recheck: a second process, where every first-seen input set comes after a
    lead-in of repeated calls as long as the first run, judged against the time the first run
    claims (its median). The candidate cannot make a first-seen call faster than the work, and a
    process that behaves differently once it spots the recheck cannot reproduce the claim."""

    calls: int                           # timed calls in the recheck
    lead_in: int                         # repeats of set 0 before the first new set
    fresh_over_claim: float | None = None    # fastest first-seen call / the claimed median
    repeat_over_claim: float | None = None   # median repeat after the lead-in / the claimed median


class BenchResult(BaseModel):
    shape: str
    dims: dict[str, int]
    candidate: Timing
    baselines: dict[str, Timing] = Field(default_factory=dict)
    speedup: dict[str, float] = Field(default_factory=dict)   # baseline name -> baseline/candidate
    roofline: Roofline | None = None
    # Baselines re-timed right after the candidate (same minute, same machine load). Speedups use
    # the faster of this and the run-start figure (a load spike in either never inflates a
    # speedup); drift = interleaved / run-start median shows how much the machine moved.
    interleaved: dict[str, Timing] = Field(default_factory=dict)
    drift: dict[str, float] = Field(default_factory=dict)
    rotation_sets: int = 1               # distinct input sets cycled through the timed calls
    cache_flush_bytes: int = 0           # bytes written between timed calls to evict caches (0: none)
    cache_eviction: str = ""             # how each timed call started cold ("": it did not need to)
    fresh_over_repeat: float | None = None   # fastest call on first-seen inputs / median on repeated inputs
    memo_recheck: MemoRecheck | None = None  # run when fresh_over_repeat is above timing.caching_ratio
    seconds: float = 0.0


class Environment(BaseModel):
    hostname: str
    platform: str
    cpu: str
    cores: int
    threads: int
    python: str
    torch: str | None = None
    compiler: str | None = None
    harness: str
    niceness: int = 0                  # the measuring process's nice value (Ray's default for workers is 15)
    harness_digest: str = ""           # sha256 over the harness's own files (checked before each attempt)
    sandbox: list[str] = Field(default_factory=list)   # the defences that were active
    tolerances: dict[str, dict[str, Any]] = Field(default_factory=dict)   # per dtype: atol, rtol, by_distribution
    # The device a GPU backend ran on (vendor, architecture, warp size 32 or 64); None on the CPU.
    gpu: GpuInfo | None = None


class Placement(BaseModel):
    """Which hardware worker produced a packet, in a cluster (set by the driver, not the harness)."""

    node_id: str                       # the Ray node
    host: str = ""
    target: str = ""                   # the hardware target the worker was placed by (a Ray resource)
    tries: int = 1                     # workers this attempt was sent to (more than 1: retried after a loss)


class Cost(BaseModel):
    wall_s: float = 0.0
    compile_s: float = 0.0
    verify_s: float = 0.0
    bench_s: float = 0.0
    device_s: float = 0.0
    llm_tokens_in: int = 0
    llm_tokens_out: int = 0
    llm_dollars: float = 0.0


class EvidencePacket(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    run_id: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    candidate: Candidate
    workload_path: str = ""
    workload_fingerprint: str = ""     # hash of reference.py + workload.toml it was judged against
    environment: Environment | None = None
    placement: Placement | None = None
    compile: CompileResult | None = None
    verify: VerifyResult | None = None
    bench: BenchResult | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)   # name -> text (logs, stderr)
    cost: Cost = Field(default_factory=Cost)
    verdict: Verdict = Verdict.rejected
    # Non-empty: verified, and deliberately not timed (e.g. Triton's CPU interpreter, where times
    # mean nothing); `bench` is then None, so no speedup exists and the search can never rank it.
    correctness_only: str = ""
    # harness.profile: the accepted kernel's Nsight Compute counters on the bench shape, or why
    # there are none (no ncu, not an NVIDIA GPU, the interpreter). Never affects the verdict.
    profile: ProfileSummary | None = None
    profile_error: str = ""
    # harness.triton_targets: a Triton kernel verified in the interpreter, compiled for each target
    # GPU (shared memory, registers, spills per kernel); one that would not launch there is rejected.
    gpu_compile: list[CompileCheck] = Field(default_factory=list)
    failure_class: FailureClass | None = None
    failure_message: str = ""
    replay_command: str = ""

    def reject(self, failure: FailureClass, message: str) -> "EvidencePacket":
        self.verdict = Verdict.rejected
        self.failure_class = failure
        self.failure_message = message
        return self

    def speedup(self, baseline: str) -> float | None:
        return self.bench.speedup.get(baseline) if self.bench else None
