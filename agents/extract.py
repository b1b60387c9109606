"""Cut a kernel out of a model's answer. The answer is hostile input.

Missing code fences, several candidates, the wrong language, prose only, an answer truncated by
the token limit, a huge answer: each ends as a source to compile or as a named failure class with
a message the proposer sees next time, never as a crash.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from harness.evidence import FailureClass

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+#.-]*)[^\n]*\n(.*?)```", re.S)

# Fence tags accepted for each backend's language ("" = untagged), and what the code must contain.
LANGUAGES = {
    "cpu_cpp": {"", "c", "cpp", "c++", "cc", "cxx", "h", "hpp"},
    "cuda": {"", "cuda", "cu", "c", "cpp", "c++", "cc", "cxx"},
    "hip": {"", "hip", "cpp", "c++", "c", "cc", "cxx", "cuda", "cu"},
    "triton": {"", "python", "py", "python3", "triton"},
}
PYTHON_TAGS = {"python", "py", "python3", "triton"}


class Extraction(BaseModel):
    source: str | None = None
    failure: FailureClass | None = None
    message: str = ""                  # for a failure: what was wrong; for a source: how it was found


def _looks_python(code: str) -> bool:
    return bool(re.search(r"^\s*(import |from \S+ import |def |@triton\.jit)", code, re.M))


def _defines_entry(code: str, backend: str, entry: str) -> bool:
    if backend == "triton":
        return re.search(rf"^\s*def\s+{entry}\s*\(", code, re.M) is not None
    return re.search(rf"\b{entry}\s*\(", code) is not None and not _looks_python(code)


def extract_source(text: str | None, backend: str, *, entry: str = "kscout_forward",
                   finish_reason: str = "", max_chars: int = 200_000) -> Extraction:
    text = text or ""
    truncated = finish_reason == "length"
    if len(text) > max_chars:
        return Extraction(failure=FailureClass.output_too_large,
                          message=f"the answer is {len(text):,} characters; the limit is {max_chars:,}")
    if not text.strip():
        return Extraction(failure=FailureClass.truncated_output if truncated else FailureClass.no_code,
                          message="the answer was empty" + (" (stopped at the token limit)" if truncated else ""))
    langs = LANGUAGES.get(backend, LANGUAGES["cpu_cpp"])
    blocks = [(tag.lower(), body) for tag, body in FENCE.findall(text)]
    tail = FENCE.sub("", text)
    unclosed = "```" in tail   # a fence opened and never closed: the answer stopped mid-code
    if not blocks:
        if unclosed or truncated:
            return Extraction(failure=FailureClass.truncated_output,
                              message="the answer stopped before its code block was closed"
                              + (" (token limit reached)" if truncated else ""))
        if _defines_entry(text, backend, entry):
            return Extraction(source=text.strip() + "\n", message="no code fence; the whole answer is the code")
        return Extraction(failure=FailureClass.no_code,
                          message=f"the answer has no code block and does not define {entry}: prose only")
    right = [(i, b) for i, (tag, b) in enumerate(blocks, 1) if tag in langs]
    defining = [(i, b) for i, b in right if _defines_entry(b, backend, entry)]
    if defining:
        i, body = defining[-1]     # models revise as they go: the last complete kernel is the answer
        note = f"code block {i} of {len(blocks)}" + (f"; {len(defining)} blocks define {entry}, used the last"
                                                        if len(defining) > 1 else "")
        if truncated:
            note += "; the answer was cut at the token limit after this block"
        return Extraction(source=body.strip() + "\n", message=note)
    wrong = [tag for tag, b in blocks if tag not in langs or
             (backend != "triton" and _looks_python(b)) or (backend == "triton" and not _looks_python(b))]
    if wrong:
        return Extraction(failure=FailureClass.wrong_language,
                          message=f"code block(s) tagged {sorted(set(wrong))}: the {backend} backend needs "
                                  f"{'Python with @triton.jit kernels' if backend == 'triton' else 'C++'} "
                                  f"defining {entry}")
    if unclosed or truncated:
        return Extraction(failure=FailureClass.truncated_output,
                          message="the last code block was cut off at the token limit")
    return Extraction(failure=FailureClass.missing_entry_point,
                      message=f"{len(blocks)} code block(s), none defines {entry}")
