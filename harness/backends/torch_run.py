"""Running a candidate in harness/torch_child.py: shared by the Triton, CUDA and HIP backends.

These backends keep inputs and the output in torch tensors (on cuda:0, or on the CPU under
Triton's interpreter), so one child does the poisoning, canaries, input checks and device-event
timing for all three; they differ only in how the candidate is loaded (`loader`: a Python module,
or a shared library with the kscout_gpu.h ABI). The same child, under Nsight Compute, gives the
profile of an accepted kernel (`profile_in_torch_child`, harness/profile.py).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from harness import forkserver, gpu, profile
from harness.backends.base import RunOutput
from harness.backends.cpu_cpp import _events, _outputs, write_manifest
from harness.cases import Case
from harness.config import HarnessConfig, SandboxLimits
from harness.profile import ProfileSummary
from harness.sandbox import ChildExit, ExitKind, network_namespace_available, python_argv

CHILD = Path(__file__).resolve().parent.parent / "torch_child.py"


def device_limits(cfg: HarnessConfig, on_device: bool) -> SandboxLimits:
    if not on_device:
        return cfg.limits
    # The CUDA/ROCm driver reserves tens of GB of virtual memory at init, and a user namespace can
    # hide the device files: on a GPU the address-space limit and network namespace are off.
    return cfg.limits.model_copy(update={"address_space_gb": 1 << 20, "network_namespace": False})


def sandbox_features(cfg: HarnessConfig, on_device: bool, why_no_seccomp: str) -> list[str]:
    feats = ["process-group-kill", "env-allowlist", "empty-cwd", "poisoned-output", "canaries(4KiB each side)"]
    if not on_device:
        feats.insert(0, f"rlimits(as={cfg.limits.address_space_gb:g}G,nofile={cfg.limits.open_files},cpu)")
        if cfg.limits.seccomp:
            feats.append("seccomp(no-net,no-exec,no-fork,no-write-open,no-exec-memory)")
        if cfg.limits.network_namespace and network_namespace_available():
            feats.append("network-namespace")
    else:
        feats.insert(0, f"rlimits(nofile={cfg.limits.open_files},cpu)")
        feats.append(f"no seccomp on GPU ({why_no_seccomp})")
    return feats


@lru_cache(maxsize=1)
def l2_flush_bytes() -> int:
    """Twice the GPU's L2 cache: written between timed calls so each starts cold."""
    info = gpu.detect()
    return 2 * (info.l2_bytes if info and info.l2_bytes else 64 << 20)


def _child(load: dict, cases: list[Case], mode: str, cfg: HarnessConfig, workdir: Path, stage_dir: Path, *,
           interpret: bool, env: dict[str, str], seccomp: bool, timeout_s: float, flush_bytes: int,
           prefix: list[str] | None = None) -> tuple[dict, ChildExit, dict]:
    """Write the child's manifest, run it (under `prefix`, e.g. ncu, if given) and read what it
    left in result.json ({} when it left nothing readable). Shared by the verify/bench runs and
    the profiled run, so both stage and confine the child the same way."""
    workdir.mkdir(parents=True, exist_ok=True)
    cwd = workdir / "cwd"
    cwd.mkdir(exist_ok=True)
    manifest = write_manifest(workdir, cases, stage_dir, {
        **load, "mode": mode, "interpret": interpret, "timing": cfg.timing.model_dump(), "flush_bytes": flush_bytes,
        "sandbox": {"seccomp": seccomp}})
    # The manifest's choice, in the environment too: a forked child has imported triton under it.
    env = {**env, "TRITON_INTERPRET": "1" if interpret else "0"}
    # Under a prefix (ncu) the child must be that tool's own process: never forked from the server.
    ex = forkserver.run("torch_child", workdir / "manifest.json",
                        [*(prefix or []), *python_argv(CHILD, str(workdir / "manifest.json"))],
                        use_server=forkserver.enabled(cfg.fork_server, not interpret) and not prefix, cwd=cwd,
                        timeout_s=timeout_s, limits=device_limits(cfg, not interpret), extra_env=env, confine=True,
                        threads=cfg.threads)
    res_file = workdir / "result.json"
    try:   # a child killed mid-write leaves a partial file: nothing to read, as from one that wrote none
        result = json.loads(res_file.read_text()) if res_file.is_file() and res_file.stat().st_size else {}
    except ValueError:
        result = {}
    return manifest, ex, result


def run_in_torch_child(load: dict, cases: list[Case], mode: Literal["verify", "bench"], cfg: HarnessConfig,
                       workdir: Path, timeout_s: float, stage_dir: Path, *, interpret: bool, env: dict[str, str],
                       sandbox: list[str], seccomp: bool, interpreter_note: str = "") -> RunOutput:
    """`load` names the candidate for the child: {"loader": "python", "module": path} or
    {"loader": "native", "library": path}, plus "entry_point"."""
    manifest, ex, result = _child(load, cases, mode, cfg, workdir, stage_dir, interpret=interpret, env=env,
                                  seccomp=seccomp, timeout_s=timeout_s + (0 if interpret else cfg.device_startup_s),
                                  flush_bytes=l2_flush_bytes() if mode == "bench" and not interpret else 0)
    rcs, crashed = _events(workdir)
    if ex.kind != ExitKind.ok:
        result = {}
    error = result.get("error", "")
    if error and not any(rcs):
        rcs = rcs + [1]                     # the failing call was the timed loop (no per-case label)
    elif mode == "bench" and result and not error:
        rcs = [0] * len(cases)
    outputs = _outputs(workdir, cases, len(result.get("checks", [])) if result else 0)
    return RunOutput(exit=ex, return_codes=rcs, outputs=outputs, crashed_case=crashed,
                     times=result.get("times"), checks=result.get("checks", []), fresh=result.get("fresh", []),
                     sandbox=sandbox + (["forked-from-warm-server"] if ex.forked else []),
                     flush_bytes=manifest["flush_bytes"],
                     error=error, error_class=result.get("error_class"),
                     timing_meaningful=not interpret, timing_note=interpreter_note if interpret else "")


def profile_in_torch_child(load: dict, case: Case, cfg: HarnessConfig, workdir: Path, stage_dir: Path, *,
                           env: dict[str, str]) -> ProfileSummary:
    """Run the candidate once more under Nsight Compute on `case` (the bench shape) and read the
    counters of the kernels its profiled call launched. Raises ProfileUnavailable, saying why,
    when ncu is missing or the run gives no counters (e.g. a sandbox where ncu cannot read them)."""
    ncu = profile.require_ncu(cfg.ncu)
    log = workdir / "ncu.csv"
    prefix = profile.ncu_command(ncu, log)
    _, ex, result = _child(load, [case], "profile", cfg, workdir, stage_dir, interpret=False, env=env, seccomp=False,
                           timeout_s=cfg.profile_timeout_s + cfg.device_startup_s, flush_bytes=0, prefix=prefix)
    text = log.read_text(errors="replace") if log.is_file() else ""
    said = "\n".join(ln for ln in text.splitlines() if ln.startswith("==ERROR==") or ln.startswith("==WARNING=="))
    if ex.kind != ExitKind.ok or result.get("error") or not result.get("profiled"):
        if ex.kind == ExitKind.timeout:
            why = f"timed out after {ex.seconds:.0f} s (harness.profile_timeout_s)"
        elif result.get("error"):
            why = "the kernel raised: " + result["error"].strip().splitlines()[-1]
        else:
            why = f"ended with {ex.signal_name or f'status {ex.returncode}'}"
        raise profile.ProfileUnavailable(f"the profiled run under {ncu} failed: {why}"
                                         + (f"\n{said}" if said else f"\n{ex.stderr.strip()[-1500:]}"))
    try:
        kernels = profile.parse_csv(text)
    except ValueError as e:
        raise profile.ProfileUnavailable(f"ncu gave no counters ({e})" + (f":\n{said}" if said else "")) from None
    return ProfileSummary(tool=profile.ncu_version(ncu), command=prefix, kernels=kernels, seconds=ex.seconds)
