"""The harness checks its own files before every attempt.

A candidate that managed to rewrite the timer or the verifier (harness/*.py, the ABI header)
would change every verdict after it. The sandbox forbids writing files, and this is the second
line: a digest taken when the worker starts, compared before each attempt. A mismatch is a
harness_error that stops trust in the worker, never a silent pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if p.suffix in (".py", ".h") and p.is_file()
                  and "__pycache__" not in p.parts)


def digest() -> str:
    h = hashlib.sha256()
    for p in _files():
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


class HarnessTampered(RuntimeError):
    pass


class Guard:
    """Remembers the digest at construction; `check()` raises if any harness file changed."""

    def __init__(self) -> None:
        self.expected = digest()

    def check(self) -> None:
        now = digest()
        if now != self.expected:
            raise HarnessTampered(f"harness files changed since this worker started (digest {self.expected[:12]} -> "
                                  f"{now[:12]}); results from this worker can no longer be trusted")
