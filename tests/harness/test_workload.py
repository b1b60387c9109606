"""Workload loading: the shipped ones validate, malformed files name file, field and fix."""

from __future__ import annotations

import shutil

import pytest

from harness import workload
from harness.cases import build_case, verify_plan

SHIPPED = workload.list_builtin()


def test_at_least_four_shipped_workloads_validate():
    assert {"bias_gelu", "softmax", "rmsnorm", "matmul"} <= set(SHIPPED)
    for name in SHIPPED:
        w = workload.load(name)
        assert len(w.spec.shapes) >= 3
        assert w.spec.bench_shape.bench
        dims = w.spec.bench_shape.dims
        assert w.spec.flops(dims) > 0 and w.spec.bytes_moved(dims) > 0


@pytest.mark.parametrize("name", SHIPPED)
def test_reference_runs_on_its_smallest_shape(name):
    w = workload.load(name)
    shape = w.spec.shapes[0]
    case = build_case(w, shape, 0, "normal", "float32")
    assert case.reference.dtype.is_floating_point and case.reference.numel() > 0


def test_shape_dims_override_module_globals(tiny_workload_dir):
    w = workload.load(tiny_workload_dir)
    case = build_case(w, w.spec.shapes[1], 0, "normal", "float32")
    assert tuple(case.reference.shape) == (7, 33)


def test_verify_plan_covers_every_shape_distribution_and_seed(tiny_workload_dir):
    plan = verify_plan(workload.load(tiny_workload_dir))
    assert {(s.name, seed, d) for s, seed, d in plan} >= {("small", 0, "normal"), ("small", 0, "large"),
                                                          ("small", 1, "normal"), ("bench", 1, "normal")}


def _broken(tmp_path, tiny_workload_dir, old: str, new: str):
    d = tmp_path / "w"
    shutil.copytree(tiny_workload_dir, d)
    toml = d / "workload.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new))
    return d


@pytest.mark.parametrize("old, new, expect", [
    ('dtypes = ["float32"]', 'dtypes = ["float33"]', "field 'dtypes'"),
    ("atol = 1e-5", "atol = -1", "field 'tolerance.float32.atol'"),
    ('flops = "2*M*N"', 'flops = "__import__(1)"', "field 'cost.flops'"),
    ("bench = true", "bench = false", "exactly one shape must have bench = true"),
    ('name = "odd"', 'name = "small"', "shape names must be unique"),
    ("seeds = [0, 1]", "seeds = [0]", "field 'inputs.seeds'"),
    ('distributions = ["normal", "large"]', 'distributions = ["gaussian"]', "inputs.distributions"),
    ("[limits]", "[limits]\nrun_sec = 3", "field 'limits.run_sec'"),
    ("dims = { M = 3, N = 5 }", "dims = { M = 0, N = 5 }", "must be positive"),
    ('name = "axpy"', 'name = "axpy"\nname = "twice"', "not valid TOML"),
])
def test_malformed_workload_names_file_field_and_fix(tmp_path, tiny_workload_dir, old, new, expect):
    d = _broken(tmp_path, tiny_workload_dir, old, new)
    with pytest.raises(workload.WorkloadError) as e:
        workload.load(d)
    msg = str(e.value)
    assert str(d / "workload.toml") in msg
    assert expect in msg
    assert "fix" in msg


def test_missing_tolerance_for_a_dtype_says_what_to_add(tmp_path, tiny_workload_dir):
    d = _broken(tmp_path, tiny_workload_dir, 'dtypes = ["float32"]', 'dtypes = ["float32", "float16"]')
    with pytest.raises(workload.WorkloadError, match=r"add \[tolerance.float16\]"):
        workload.load(d)


def test_unknown_workload_lists_the_shipped_ones():
    with pytest.raises(workload.WorkloadError, match="shipped: .*bias_gelu"):
        workload.load("no_such_workload")


def test_missing_reference_is_named(tmp_path, tiny_workload_dir):
    d = tmp_path / "w"
    shutil.copytree(tiny_workload_dir, d)
    (d / "reference.py").unlink()
    with pytest.raises(workload.WorkloadError, match="reference.py: missing"):
        workload.load(d)
