"""`kscout search --backend triton` through the real CLI: real Ray, real SQLite, Triton's CPU
interpreter. Kernels verify; none is timed, so none is ranked and no branch is exported."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_search_e2e import small_copy

REPO = Path(__file__).resolve().parents[2]
KSCOUT = [sys.executable, "-m", "kscout.cli"]


def run_cli(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    # PYTHONPATH: this checkout's code, in the CLI and in the Ray workers it starts
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONPATH=str(REPO))
    return subprocess.run([*KSCOUT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_backend_not_allowed_by_the_workload_fails_clearly(tmp_path):
    # every shipped workload allows triton: a copy of one that allows only cpu_cpp
    wl = tmp_path / "rmsnorm"
    shutil.copytree(REPO / "workloads" / "rmsnorm", wl)
    toml = wl / "workload.toml"
    toml.write_text(re.sub(r"^backends = .*$", 'backends = ["cpu_cpp"]', toml.read_text(), count=1, flags=re.M))
    proc = run_cli("search", str(wl), "--backend", "triton", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2
    msg = " ".join(proc.stderr.split())
    assert "backend 'triton' is not in backends ['cpu_cpp']" in msg and "--backend" in msg


def test_unknown_backend_fails_clearly(tmp_path):
    proc = run_cli("search", "softmax", "--backend", "cuda-ish", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not a harness backend" in proc.stderr and "triton" in proc.stderr


def test_a_gpu_backend_without_its_device_fails_before_searching(tmp_path):
    """bias_gelu allows cuda and hip; without the device (and for hip the toolchain) the search
    stops before Ray starts, saying what is missing."""
    from harness import gpu
    if gpu.detect() is not None:
        pytest.skip("a GPU is here")
    for backend, missing in (("cuda", "CUDA"), ("hip", "HIP")):
        proc = run_cli("search", "bias_gelu", "--backend", backend, "--runs-dir", str(tmp_path / "runs"),
                       cwd=tmp_path, timeout=120)
        msg = " ".join(proc.stderr.split())
        assert proc.returncode == 2, msg
        assert f"backend '{backend}' cannot run here" in msg and (f"no {missing} device" in msg
                                                                   or f"{missing} toolchain not found" in msg)
        assert not list(tmp_path.rglob("*.db")), "no experiment log is started for a search that cannot run"


@pytest.mark.slow
@pytest.mark.integration
def test_triton_search_verifies_kernels_and_ranks_none(tmp_path):
    wl = small_copy("softmax", tmp_path, "{ M = 5, N = 17 }")
    cfg = tmp_path / "run.toml"
    cfg.write_text("[harness]\ncompiled_baseline = false\n")
    proc = run_cli("search", str(wl), "--backend", "triton", "--attempts", "3", "--json", "--config", str(cfg),
                   "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["backend"] == "triton"
    assert out["counts"]["attempts"] == 3 and out["counts"]["accepted"] >= 1, out
    assert out["best"] is None and out["branches"] == [] and out["branch"] is None
    assert "none timed" in out["not_ranked"] and "interpreter" in out["not_ranked"]
    packets = list((Path(out["run_dir"]) / "packets").glob("*.json"))
    assert packets
    for f in packets:
        p = json.loads(f.read_text())
        assert p["candidate"]["backend"] == "triton" and p["bench"] is None
        if p["verdict"] == "accepted":
            assert "interpreter" in p["correctness_only"]
