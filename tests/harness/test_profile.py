"""Nsight Compute profiles (harness/profile.py): reading ncu's CSV, finding ncu, and saying why
there is no profile wherever one cannot be taken. The profile itself needs an NVIDIA GPU and ncu:
that test carries the `gpu` marker (and skips where ncu is missing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import profile, workload
from harness.attempt import Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import BenchResult, Candidate, EvidencePacket, Roofline, Timing, Verdict
from memory.context import measured_text
from tests.conftest import AXPY_OK

ROOT = Path(__file__).resolve().parents[2]
HEADER = ('"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size",'
          '"Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"')


def row(kid: int, kernel: str, metric: str, unit: str, value: str) -> str:
    return (f'"{kid}","4242","python3","gpu-box","{kernel}","1","7","(256, 1, 1)","(8192, 1, 1)","0","9.0",'
            f'"Command line profiler metrics","{metric}","{unit}","{value}"')


# What `ncu --csv --print-units base --log-file F` writes for a call that launched two kernels: the
# tool's own ==PROF== lines around the table, numbers with thousands separators, one n/a.
NCU_LOG = "\n".join([
    "==PROF== Connected to process 4242 (/usr/bin/python3.12)",
    "==PROF== Profiling \"_fused\" - 0: 0%....50%....100% - 9 passes",
    HEADER,
    row(0, "_fused", "dram__bytes.sum", "byte", "67,117,056"),
    row(0, "_fused", "dram__throughput.avg.pct_of_peak_sustained_elapsed", "%", "86.41"),
    row(0, "_fused", "gpu__time_duration.sum", "nsecond", "16,224"),
    row(0, "_fused", "launch__registers_per_thread", "register/thread", "32"),
    row(0, "_fused", "sm__throughput.avg.pct_of_peak_sustained_elapsed", "%", "23.57"),
    row(0, "_fused", "sm__warps_active.avg.pct_of_peak_sustained_active", "%", "81.2"),
    row(1, "_tail", "dram__bytes.sum", "Kbyte", "4.10"),
    row(1, "_tail", "gpu__time_duration.sum", "usecond", "2.50"),
    row(1, "_tail", "sm__throughput.avg.pct_of_peak_sustained_elapsed", "%", "n/a"),
    "==PROF== Disconnected from process 4242",
])


def test_ncu_csv_is_read_per_kernel_in_base_units():
    kernels = profile.parse_csv(NCU_LOG)
    assert [k.name for k in kernels] == ["_fused", "_tail"]
    fused, tail = kernels
    assert fused.dram_bytes == 67_117_056 and fused.duration_ns == 16_224
    assert fused.dram_pct == pytest.approx(86.41) and fused.sm_pct == pytest.approx(23.57)
    assert fused.occupancy_pct == pytest.approx(81.2) and fused.registers == 32
    assert fused.grid == "(8192, 1, 1)" and fused.block == "(256, 1, 1)"
    assert fused.achieved_gbps == pytest.approx(67_117_056 / 16_224)          # bytes per ns = GB/s
    assert tail.duration_ns == pytest.approx(2500) and tail.dram_bytes == pytest.approx(4100)
    assert tail.sm_pct is None and tail.occupancy_pct is None                  # n/a and absent: unknown, not 0


def test_the_digest_names_the_longest_kernel_and_where_it_stands():
    s = profile.ProfileSummary(tool="ncu 2025.3.1.0", kernels=profile.parse_csv(NCU_LOG))
    assert s.duration_ns == pytest.approx(18_724)
    assert s.dram_gbps == pytest.approx((67_117_056 + 4100) / 18_724)
    d = s.digest()
    assert d.startswith("Nsight Compute (ncu 2025.3.1.0): 2 kernel launch(es), 18.72 us")
    assert "DRAM 3585 GB/s" in d and "longest kernel _fused: DRAM 86% of peak, SM 24% of peak" in d
    assert "occupancy 81%" in d and "32 registers/thread" in d
    assert "no kernel was launched" in profile.ProfileSummary(tool="ncu 2025.3.1.0").digest()


def test_output_without_counters_or_with_an_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="no CSV header"):
        profile.parse_csv("==ERROR== Failed to initialize the profiler: LibraryNotLoaded\n")
    with pytest.raises(ValueError, match="lacks columns"):
        profile.parse_csv('"ID","Kernel Name"\n"0","k"\n')
    with pytest.raises(ValueError, match="unknown unit 'fortnight'"):
        profile.parse_csv("\n".join([HEADER, row(0, "k", "gpu__time_duration.sum", "fortnight", "1")]))


def test_the_ncu_command_profiles_only_the_marked_call_at_the_gpus_own_clocks(tmp_path):
    cmd = profile.ncu_command("/opt/ncu", tmp_path / "ncu.csv")
    assert cmd[0] == "/opt/ncu" and "--csv" in cmd
    assert cmd[cmd.index("--profile-from-start") + 1] == "off"     # only cudaProfilerStart..Stop
    assert cmd[cmd.index("--clock-control") + 1] == "none"         # the bench timing ran at the GPU's clocks
    assert cmd[cmd.index("--print-units") + 1] == "base"
    assert set(cmd[cmd.index("--metrics") + 1].split(",")) == set(profile.METRICS)
    assert cmd[cmd.index("--log-file") + 1] == str(tmp_path / "ncu.csv")


def test_a_missing_ncu_is_named_with_the_fix(tmp_path):
    assert profile.find_ncu(str(tmp_path / "no-ncu")) is None
    with pytest.raises(profile.ProfileUnavailable, match="harness.ncu = '.*no-ncu' is not an executable"):
        profile.require_ncu(str(tmp_path / "no-ncu"))
    fake = tmp_path / "ncu"
    fake.write_text("#!/bin/sh\necho 'NVIDIA (R) Nsight Compute Command Line Profiler'\necho 'Version 2025.3.1.0 (build 36)'\n")
    fake.chmod(0o755)
    assert profile.require_ncu(str(fake)) == str(fake)
    assert profile.ncu_version(str(fake)) == "ncu 2025.3.1.0"


def _axpy_evaluator(tmp_path, tiny_workload_dir, **cfg) -> Evaluator:
    return Evaluator(workload.load(tiny_workload_dir), cfg=HarnessConfig(
        cache_dir=tmp_path / "build", profile=True, interleave_baselines=False, compiled_baseline=False,
        timing=TimingPolicy(warmup=0, min_repeats=3, max_repeats=3, min_time_s=1e-3, max_time_s=0.2), **cfg))


def test_a_cpu_kernel_is_accepted_and_its_packet_says_why_it_has_no_profile(tmp_path, tiny_workload_dir):
    ev = _axpy_evaluator(tmp_path, tiny_workload_dir)
    try:
        ev.measure_eager()
        p = ev.evaluate(Candidate(source=AXPY_OK, workload="axpy"))
    finally:
        ev.close()
    assert p.verdict == Verdict.accepted and p.bench is not None
    assert p.profile is None and "cpu_cpp backend has no profiler" in p.profile_error


@pytest.mark.slow
def test_under_the_triton_interpreter_there_is_nothing_to_profile(tmp_path):
    from tests.agents.test_templates import smallest_bench_copy
    from agents import templates
    fam = templates.get("bias_gelu", "triton")
    ev = Evaluator(smallest_bench_copy("bias_gelu", tmp_path), cfg=HarnessConfig(
        cache_dir=tmp_path / "build", triton_interpret=True, profile=True))
    try:
        p = ev.evaluate(Candidate(source=fam.render(fam.defaults()), backend="triton", workload="bias_gelu"))
    finally:
        ev.close()
    assert p.verdict == Verdict.accepted and p.correctness_only
    assert p.profile is None and "interpreter" in p.profile_error and "nothing for Nsight Compute" in p.profile_error


def test_the_proposer_reads_the_parent_kernels_measurements_and_profile():
    t = Timing(warmup=1, repeats=5, median_s=2.5e-3, q1_s=2.4e-3, q3_s=2.6e-3, min_s=2.4e-3, mean_s=2.5e-3)
    packet = EvidencePacket(candidate=Candidate(source="x", workload="softmax"), verdict=Verdict.accepted, bench=BenchResult(
        shape="bench", dims={"M": 2048, "N": 4096}, candidate=t, speedup={"torch_eager": 4.0},
        roofline=Roofline(flops=1e8, bytes=6.7e7, achieved_gflops=40.0, achieved_gbps=26.8, arithmetic_intensity=1.5,
                          sol=0.61)))
    line = measured_text(packet)
    assert "2.5 ms" in line and "4.00x over torch_eager" in line and "0.61 of the roofline bound" in line
    assert "Nsight" not in line
    packet.profile = profile.ProfileSummary(tool="ncu 2025.3.1.0", kernels=profile.parse_csv(NCU_LOG))
    assert measured_text(packet).endswith(packet.profile.digest())


def test_search_with_profile_on_the_cpu_backend_is_refused_before_it_starts(tmp_path):
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    proc = subprocess.run([sys.executable, "-m", "kscout.cli", "search", "bias_gelu", "--profile", "--attempts", "1",
                           "--runs-dir", str(tmp_path / "runs")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Nsight Compute profiles GPU kernels" in proc.stderr and "backend 'cpu_cpp'" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.gpu
def test_on_an_nvidia_gpu_an_accepted_triton_kernel_gets_its_counters(tmp_path):
    """The real thing: ncu around the child, on the bench shape of a small bias_gelu."""
    if profile.find_ncu() is None:
        pytest.skip("needs ncu (Nsight Compute)")
    from agents import templates
    fam = templates.get("bias_gelu", "triton")
    wl = workload.load("bias_gelu")
    ev = Evaluator(wl, cfg=HarnessConfig(cache_dir=tmp_path / "build", profile=True), device="cuda")
    try:
        ev.measure_roofline()
        ev.measure_eager()
        params = dict(fam.defaults(), fuse="fused", grid="rows")
        p = ev.evaluate(Candidate(source=fam.render(params), backend="triton", workload="bias_gelu", params=params))
    finally:
        ev.close()
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message)
    if p.profile is None and "LibraryNotLoaded" in p.profile_error:
        pytest.skip(f"ncu cannot read the counters in this sandbox: {p.profile_error}")
    assert p.profile is not None, p.profile_error
    k = max(p.profile.kernels, key=lambda k: k.duration_ns or 0)
    assert k.duration_ns > 0 and k.dram_bytes > 0 and 0 < k.dram_pct <= 100
    dims = p.bench.dims
    # one fused launch moves x, residual and out once: at least the bytes the cost model counts
    assert k.dram_bytes >= 0.9 * 3 * 4 * dims["M"] * dims["N"]
    print(json.dumps(p.profile.model_dump(), indent=1))
