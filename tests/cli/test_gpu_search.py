"""A real search on a GPU (skipped without one): Triton and CUDA kernels proposed by the planner,
verified, timed with device events and ranked against GPU torch eager and torch.compile. Runs with
`import ray` made to fail (--executor local), as the GPU box that scripts/gpu_session.sh drives
has no Ray."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_local_executor import _cli

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize("workload, backend", [("bias_gelu", "triton"), ("bias_gelu", "cuda"), ("matmul", "triton")])
def test_a_gpu_search_ranks_verified_kernels_against_gpu_baselines(tmp_path, workload, backend):
    r = _cli("search", workload, "--backend", backend, "--executor", "local", "--attempts", "4", "--json",
             "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout)
    assert out["counts"]["verified"] >= 1 and not out["not_ranked"], out
    best = out["best"]
    assert best["speedup"]["torch_eager"] > 0 and best["sol"] is not None and 0 < best["sol"] <= 1.1
    packet = json.loads(open(best["packet_path"]).read())
    assert packet["candidate"]["backend"] == backend and packet["placement"]["node_id"] == "local"
    assert packet["environment"]["gpu"]["vendor"], packet["environment"]   # the device it was timed on
