"""Model answers are hostile input: each malformed shape becomes a source or a named failure."""

from __future__ import annotations

import pytest

from agents.extract import extract_source
from harness.evidence import FailureClass

KERNEL = '#include "kscout.h"\nKS_EXPORT int kscout_forward(const ks_tensor* in, int32_t n, ks_tensor* out) { return 0; }\n'
TRITON = ("import triton\nimport triton.language as tl\n\n@triton.jit\ndef k(x):\n    pass\n\n"
          "def kscout_forward(x):\n    return x\n")


def fenced(code: str, tag: str = "cpp") -> str:
    return f"```{tag}\n{code}```"


def test_one_fenced_block_is_the_source():
    got = extract_source("Here it is:\n" + fenced(KERNEL) + "\nThis is fast.", "cpu_cpp")
    assert got.failure is None and got.source == KERNEL
    assert got.message == "code block 1 of 1"


def test_unfenced_code_is_taken_whole():
    got = extract_source(KERNEL, "cpu_cpp")
    assert got.failure is None and "kscout_forward" in got.source
    assert "no code fence" in got.message


def test_several_candidates_the_last_complete_one_wins():
    first = KERNEL.replace("return 0;", "return 1;")
    text = f"Draft:\n{fenced(first)}\nA helper:\n{fenced('static int helper();')}\nFinal:\n{fenced(KERNEL)}"
    got = extract_source(text, "cpu_cpp")
    assert got.source == KERNEL
    assert "code block 3 of 3" in got.message and "2 blocks define kscout_forward, used the last" in got.message


def test_prose_only_is_no_code():
    got = extract_source("I would vectorize the loop with AVX2 and use OpenMP over rows.", "cpu_cpp")
    assert got.failure == FailureClass.no_code and "prose only" in got.message


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_answer_is_no_code(text):
    assert extract_source(text, "cpu_cpp").failure == FailureClass.no_code


def test_python_for_a_cpp_backend_is_wrong_language():
    got = extract_source(fenced(TRITON, "python"), "cpu_cpp")
    assert got.failure == FailureClass.wrong_language and "'python'" in got.message


def test_cpp_for_triton_is_wrong_language_and_python_is_right():
    assert extract_source(fenced(KERNEL), "triton").failure == FailureClass.wrong_language
    got = extract_source(fenced(TRITON, "python"), "triton")
    assert got.failure is None and "@triton.jit" in got.source


def test_unclosed_fence_is_truncated():
    got = extract_source("```cpp\n" + KERNEL[:60], "cpu_cpp", finish_reason="length")
    assert got.failure == FailureClass.truncated_output and "token limit" in got.message
    # also without the provider saying so: the fence never closed
    assert extract_source("```cpp\n" + KERNEL[:60], "cpu_cpp").failure == FailureClass.truncated_output


def test_truncated_after_a_complete_block_keeps_the_block():
    got = extract_source(fenced(KERNEL) + "\nNow let me explain the tail handl", "cpu_cpp", finish_reason="length")
    assert got.failure is None and got.source == KERNEL and "cut at the token limit" in got.message


def test_huge_answer_is_refused_before_parsing():
    got = extract_source(fenced(KERNEL + "// pad\n" * 50_000), "cpu_cpp", max_chars=100_000)
    assert got.failure == FailureClass.output_too_large and "100,000" in got.message


def test_code_without_the_entry_point_is_named():
    got = extract_source(fenced("int forward(float* x) { return 0; }"), "cpu_cpp")
    assert got.failure == FailureClass.missing_entry_point and "none defines kscout_forward" in got.message
