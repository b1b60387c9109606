"""The Triton backend on the real harness, through Triton's CPU interpreter (no GPU needed).

Candidates here are hand-written modules; the shipped workloads' template families are verified
in tests/agents/test_triton_templates.py. `gpu` tests run the device path and skip without one.
"""

from __future__ import annotations

import pytest

from agents import templates
from harness import backends, workload
from harness.attempt import EAGER, Evaluator
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, FailureClass, Verdict
from tests.conftest import TINY_REFERENCE, TINY_TOML

pytestmark = pytest.mark.slow

AXPY_TRITON = '''
import torch
import triton
import triton.language as tl


@triton.jit
def _axpy(x_ptr, y_ptr, o_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + offs, mask=m, other=0.0).to(tl.float32)
    tl.store(o_ptr + offs, 2.0 * x + y, mask=m)


def kscout_forward(x, y, out):
    n = x.numel()
    _axpy[(triton.cdiv(n, 1024),)](x, y, out, n, BLOCK=1024)
'''


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    d = tmp_path_factory.mktemp("wl") / "axpy"
    d.mkdir()
    (d / "reference.py").write_text(TINY_REFERENCE)
    # the interpreter child imports torch and triton (2-4 s on a busy machine): a roomier run limit
    (d / "workload.toml").write_text(TINY_TOML.replace('backends = ["cpu_cpp"]', 'backends = ["cpu_cpp", "triton"]')
                                     .replace("run_s = 4", "run_s = 60"))
    cfg = HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"), triton_interpret=True,
                        timing=TimingPolicy(warmup=1, min_repeats=3, max_repeats=5, min_time_s=0.01, max_time_s=0.5))
    e = Evaluator(workload.load(d), cfg=cfg)
    e.measure_eager()
    yield e
    e.close()


def run(ev, source: str):
    return ev.evaluate(Candidate(source=source, backend="triton", workload="axpy"))


def test_backend_is_registered_and_describes_itself():
    b = backends.get("triton")
    ok, why = b.available()
    assert ok, why
    assert "triton" in why
    assert "interpreter" in b.toolchain(HarnessConfig(triton_interpret=True))


def test_correct_kernel_verifies_in_the_interpreter_and_is_never_timed(ev):
    p = run(ev, AXPY_TRITON)
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("candidate_traceback"))
    assert p.verify.ok and p.verify.varies_with_input
    assert {c.shape for c in p.verify.cases} == {"small", "odd", "bench", "hidden-0"}
    assert {c.kind for c in p.verify.cases} == {"suite", "hidden", "rerun"}
    assert all(c.passed for c in p.verify.cases)
    # correctness only: no BenchResult, so no speedup exists for the search to rank
    assert p.bench is None and p.speedup(EAGER) is None
    assert "interpreter" in p.correctness_only and "never ranked" in p.correctness_only
    assert "interpreter" in p.environment.compiler
    assert any(f.startswith("seccomp") for f in p.environment.sandbox), p.environment.sandbox
    assert p.compile.ok and p.compile.artifact.endswith("kernel.py")
    # harness.triton_targets (default sm_90): compiled for an H100 too, at the bench shape, and it fits
    (h100,) = p.gpu_compile
    assert h100.target == "sm_90" and h100.ok and [k.kernel for k in h100.kernels] == ["_axpy"]


def test_second_compile_of_same_source_is_cached(ev):
    a, b = run(ev, AXPY_TRITON + "\n# cache probe\n"), run(ev, AXPY_TRITON + "\n# cache probe\n")
    assert not a.compile.cached and b.compile.cached
    assert b.verdict == Verdict.accepted, b.failure_message


def test_wrong_kernel_is_wrong_result(ev):
    p = run(ev, AXPY_TRITON.replace("2.0 * x + y", "2.0 * x - y"))
    assert p.failure_class == FailureClass.wrong_result, p.failure_message
    assert "outside atol" in p.failure_message


def test_syntax_error_is_a_compile_error_with_the_traceback(ev):
    p = run(ev, AXPY_TRITON.replace("def kscout_forward(x, y, out):", "def kscout_forward(x, y, out)"))
    assert p.failure_class == FailureClass.compile_error
    assert "SyntaxError" in p.compile.log and "kernel.py" in p.compile.log


def test_import_error_is_a_compile_error(ev):
    p = run(ev, "import no_such_module_kscout\n" + AXPY_TRITON)
    assert p.failure_class == FailureClass.compile_error
    assert "no_such_module_kscout" in p.failure_message


def test_module_without_entry_point_is_missing_entry_point(ev):
    p = run(ev, AXPY_TRITON.replace("def kscout_forward(", "def forward("))
    assert p.failure_class == FailureClass.missing_entry_point
    assert "kscout_forward" in p.failure_message


def test_exception_at_launch_is_a_runtime_error_naming_the_case(ev):
    p = run(ev, AXPY_TRITON.replace("    n = x.numel()\n", "    n = x.numel()\n    if n > 20:\n"
                                                           "        raise ValueError('too big for me')\n"))
    assert p.failure_class == FailureClass.runtime_error, p.failure_message
    assert "too big for me" in p.failure_message and "odd" in p.failure_message
    assert "ValueError" in p.artifacts["candidate_traceback"]


def test_returning_a_new_tensor_instead_of_writing_out_is_rejected(ev):
    src = AXPY_TRITON.replace("def kscout_forward(x, y, out):\n    n = x.numel()\n",
                              "def kscout_forward(x, y, out):\n    out = torch.empty_like(x)\n    n = x.numel()\n")
    src = src.replace("BLOCK=1024)\n", "BLOCK=1024)\n    return out\n")
    p = run(ev, src)
    assert p.failure_class == FailureClass.runtime_error, p.failure_message
    assert "must write into `out`" in p.failure_message


def test_unmasked_tail_left_unwritten_is_output_not_written(ev):
    # stores only whole blocks of 16: the tail of 7x33 keeps the poison
    src = AXPY_TRITON.replace("tl.store(o_ptr + offs, 2.0 * x + y, mask=m)",
                              "tl.store(o_ptr + offs, 2.0 * x + y, mask=offs < (n // 16) * 16)")
    p = run(ev, src)
    assert p.failure_class == FailureClass.output_not_written, p.failure_message


def test_writing_an_input_is_input_mutated(ev):
    src = AXPY_TRITON.replace("tl.store(o_ptr + offs, 2.0 * x + y, mask=m)",
                              "tl.store(o_ptr + offs, 2.0 * x + y, mask=m)\n    tl.store(y_ptr + offs, x, mask=m)")
    p = run(ev, src)
    assert p.failure_class == FailureClass.input_mutated, p.failure_message


def test_writing_past_the_output_hits_the_canary(ev):
    src = AXPY_TRITON.replace("tl.store(o_ptr + offs, 2.0 * x + y, mask=m)",
                              "tl.store(o_ptr + offs, 2.0 * x + y, mask=offs < n + 8)")
    p = run(ev, src)
    assert p.failure_class == FailureClass.out_of_bounds_write, p.failure_message


def test_forced_gpu_without_one_fails_with_a_clear_message(ev, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: triton_interpret=false is satisfiable here")
    cfg = ev.cfg.model_copy(update={"triton_interpret": False})
    res = backends.get("triton").compile(AXPY_TRITON, "kscout_forward", cfg, 30)
    assert res.failure == FailureClass.unsupported_backend and "needs a GPU" in res.log


def test_an_interpreter_that_cannot_run_a_loop_is_refused_up_front(ev, tmp_path, monkeypatch):
    """Triton 3.6's interpreter with NumPy 2.4 fails every loop over a runtime bound (matmul's K
    loop: int() of a 1-element array). Such an interpreter would reject honest kernels as
    runtime errors; the backend says what is wrong instead. Here a stand-in triton on PYTHONPATH
    fails the probe the way 3.6 does (checked by hand against triton 3.6.0 + numpy 2.4.6)."""
    from harness.backends import triton as tb
    fake = tmp_path / "fake" / "triton"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise TypeError('only 0-dimensional arrays can be converted to Python scalars')\n")
    monkeypatch.setenv("PYTHONPATH", f"{fake.parent}:{__import__('os').environ.get('PYTHONPATH', '')}")
    tb.interpreter_problem.cache_clear()
    try:
        ok, why = backends.get("triton").available(ev.cfg)
        res = backends.get("triton").compile(AXPY_TRITON, "kscout_forward", ev.cfg, 30)
    finally:
        monkeypatch.undo()
        tb.interpreter_problem.cache_clear()
    assert not ok and "cannot run a loop over a runtime bound" in why and "numpy<2.4" in why
    assert res.failure == FailureClass.unsupported_backend and "only 0-dimensional arrays" in res.log
    assert tb.interpreter_problem() is None          # the real one, again


def _gpu_evaluator(tmp_path_factory, device: str) -> Evaluator:
    d = tmp_path_factory.mktemp("wlgpu") / "axpy"
    d.mkdir()
    (d / "reference.py").write_text(TINY_REFERENCE)
    (d / "workload.toml").write_text(TINY_TOML.replace('backends = ["cpu_cpp"]', 'backends = ["triton"]')
                                     .replace("run_s = 4", "run_s = 120"))
    cfg = HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"), triton_interpret=False,
                        timing=TimingPolicy(warmup=2, min_repeats=5, max_repeats=20, min_time_s=0.01, max_time_s=0.5))
    return Evaluator(workload.load(d), cfg=cfg, device=device)


@pytest.mark.gpu
def test_on_a_gpu_the_kernel_is_compiled_verified_and_timed(tmp_path_factory):
    e = _gpu_evaluator(tmp_path_factory, "cpu")      # baselines on the CPU: timed, not ranked
    e.measure_eager()
    p = e.evaluate(Candidate(source=AXPY_TRITON, backend="triton", workload="axpy"))
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("candidate_traceback"))
    # timed on the device, but not ranked until the baselines run on the GPU too
    assert p.bench is None and "timed on" in p.correctness_only and "ms over" in p.correctness_only
    assert "interpreter" not in p.environment.compiler


@pytest.mark.gpu
def test_on_a_gpu_with_gpu_baselines_the_kernel_is_ranked(tmp_path_factory):
    e = _gpu_evaluator(tmp_path_factory, "cuda")
    e.measure_roofline()
    e.measure_eager()
    e.measure_compiled()
    p = e.evaluate(Candidate(source=AXPY_TRITON, backend="triton", workload="axpy"))
    e.close()
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("candidate_traceback"))
    assert p.correctness_only is None and p.speedup(EAGER) > 0 and p.bench.roofline.sol is not None
    assert p.environment.gpu is not None and p.bench.cache_flush_bytes > 0


def oversized_matmul() -> str:
    """triton_matmul's largest tile asking for BLOCK_K 256: 768 KiB of shared memory at 4 stages,
    more than any GPU has; BLOCK_K 128 (384 KiB) too; BLOCK_K 64 (192 KiB) fits an H100."""
    fam = templates.get("matmul", "triton")
    src = fam.render(dict(fam.defaults(), tile="128x128", order="grouped", stages=4, block_k=64, num_warps=8))
    assert "BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 64\n" in src
    return src.replace("BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 64\n", "BLOCK_M, BLOCK_N, BLOCK_K = 128, 128, 256\n")


@pytest.mark.gpu
def test_on_a_gpu_the_launcher_steps_down_on_the_devices_own_out_of_resources(tmp_path):
    """The device's first launch raises OutOfResources for the (BLOCK_K, stages) pairs that do
    not fit (agents/templates/triton_fit.py); the kernel that then launches verifies on every
    shape of the matmul workload."""
    cfg = HarnessConfig(cache_dir=tmp_path / "cache", triton_interpret=False, triton_targets=[])
    ev = Evaluator(workload.load("matmul"), cfg=cfg, device="cuda")
    try:
        p = ev.evaluate(Candidate(source=oversized_matmul(), backend="triton", workload="matmul"), bench=False)
    finally:
        ev.close()
    assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("candidate_traceback"))
