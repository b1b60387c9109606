"""Shared fixtures: a tiny real workload and a real harness configuration."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from harness.config import HarnessConfig, TimingPolicy  # noqa: E402

# y = 2x + y: the same reference the cheat suite uses (tests/cheats/workloads/axpy).
TINY_REFERENCE = (Path(__file__).resolve().parent / "cheats" / "workloads" / "axpy" / "reference.py").read_text()

TINY_TOML = textwrap.dedent('''
    name = "axpy"
    family = "axpy"
    description = "y = 2x + y, for harness tests"
    backends = ["cpu_cpp"]
    dtypes = ["float32"]

    [[shapes]]
    name = "small"
    dims = { M = 3, N = 5 }

    [[shapes]]
    name = "odd"
    dims = { M = 7, N = 33 }

    [[shapes]]
    name = "bench"
    dims = { M = 64, N = 256 }
    bench = true

    [tolerance.float32]
    atol = 1e-5
    rtol = 1e-5

    [inputs]
    distributions = ["normal", "large"]
    seeds = [0, 1]

    [cost]
    flops = "2*M*N"
    bytes = "12*M*N"

    [limits]
    compile_s = 30
    run_s = 4
''')

AXPY_OK = r'''
#include "kscout.h"
KS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) {
    const float* x = (const float*)in[0].data;
    const float* y = (const float*)in[1].data;
    float* o = (float*)out->data;
    int64_t total = ks_numel(&in[0]);
    for (int64_t i = 0; i < total; ++i) o[i] = 2.0f * x[i] + y[i];
    return 0;
}
'''


@pytest.fixture(scope="session")
def tiny_workload_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("workloads") / "axpy"
    d.mkdir()
    (d / "reference.py").write_text(TINY_REFERENCE)
    (d / "workload.toml").write_text(TINY_TOML)
    return d


@pytest.fixture(scope="session")
def harness_cfg(tmp_path_factory) -> HarnessConfig:
    return HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"),
                         timing=TimingPolicy(warmup=1, min_repeats=3, max_repeats=5, min_time_s=0.01, max_time_s=0.5))


def pytest_collection_modifyitems(config, items):
    """`gpu` tests need a CUDA or ROCm device; without one they skip, saying so."""
    gpu_items = [i for i in items if "gpu" in i.keywords]
    if not gpu_items:
        return
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA or ROCm device (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)
