"""`python -m harness` on its own: env-info, verify and bench of one candidate file, with only the
harness's own dependencies (torch, pydantic) imported, as on a GPU box without the rest of kscout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import backends
from harness.config import HarnessConfig

REPO = Path(__file__).resolve().parents[2]
CHEATS = REPO / "tests" / "cheats"
AXPY = CHEATS / "workloads" / "axpy"
NOT_THE_HARNESS = ("ray", "sqlalchemy", "dspy", "litellm", "networkx", "git", "typer", "rich")


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # The entry point runs, then reports which of kscout's other dependencies got imported.
    code = ("import sys, runpy\n"
            f"sys.argv = ['harness', *{list(args)!r}]\n"
            "try:\n    runpy.run_module('harness', run_name='__main__')\n"
            "except SystemExit as e:\n    rc = e.code\n"
            f"bad = [m for m in {NOT_THE_HARNESS!r} if m in sys.modules]\n"
            "print('IMPORTED', ','.join(bad), file=sys.stderr)\n"
            "sys.exit(rc)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def imported(proc) -> list[str]:
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED")][-1]
    return [m for m in line.split(" ", 1)[1].split(",") if m]


def test_env_info_names_the_gpu_and_every_backend(tmp_path):
    proc = harness("env-info", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc["backends"]) == set(backends.names())
    assert all(set(v) == {"available", "detail"} and v["detail"] for v in doc["backends"].values())
    assert "gpu" in doc and doc["cores"] >= 1
    assert imported(proc) == []


@pytest.mark.slow
def test_verify_then_bench_a_cpp_candidate_with_only_the_harness_imported(tmp_path):
    src = tmp_path / "axpy.cpp"
    src.write_text((CHEATS / "honest" / "axpy.cpp").read_text())
    proc = harness("verify", str(src), "--workload", str(AXPY), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "verdict: accepted" in proc.stdout and "verified: 13/13 cases" in proc.stdout
    assert imported(proc) == []

    out = tmp_path / "packet.json"
    proc = harness("bench", str(src), "-w", str(AXPY), "--no-compiled", "--json", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "accepted" and doc["median_ms"] > 0 and doc["speedup"]["torch_eager"] > 0
    assert doc["sol"] is not None and doc["backend"] == "cpu_cpp" and doc["gpu"] is None
    packet = json.loads(out.read_text())
    assert packet["bench"]["candidate"]["median_s"] == pytest.approx(doc["median_ms"] / 1e3)
    assert imported(proc) == []


def test_bad_input_is_exit_2_naming_the_problem(tmp_path):
    (tmp_path / "k.txt").write_text("int x;")
    proc = harness("verify", str(tmp_path / "k.txt"), "-w", str(AXPY), cwd=tmp_path)
    assert proc.returncode == 2 and "cannot tell the backend from the suffix '.txt'" in proc.stderr
    proc = harness("verify", str(tmp_path / "missing.cu"), "-w", str(AXPY), cwd=tmp_path)
    assert proc.returncode == 2 and "no such candidate file" in proc.stderr
    (tmp_path / "k.py").write_text("def kscout_forward(x, y, out): pass\n")
    proc = harness("verify", str(tmp_path / "k.py"), "-w", str(AXPY), cwd=tmp_path)
    assert proc.returncode == 2 and "backend 'triton' is not in backends" in proc.stderr


@pytest.mark.skipif(backends.get("cuda").find_compiler(HarnessConfig()) is None, reason="needs nvcc")
def test_a_cuda_candidate_without_a_device_compiles_and_is_rejected_saying_why(tmp_path):
    from harness import gpu
    if gpu.detect() is not None:
        pytest.skip("a GPU is here")
    proc = harness("verify", str(CHEATS / "gpu_honest" / "axpy.cu"), "-w", str(AXPY), "--gpu-arch", "sm_90", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["failure_class"] == "unsupported_backend" and "compiled, but cannot run here" in doc["message"]
    assert "sm_90" in doc["toolchain"]
