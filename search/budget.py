"""Budgets: when a run stops submitting new attempts."""

from __future__ import annotations

import time


class Budget:
    def __init__(self, max_attempts: int, max_seconds: float, clock=time.monotonic):
        self.max_attempts = max_attempts
        self.max_seconds = max_seconds
        self.clock = clock
        self.started = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def stop_reason(self, attempts_submitted: int) -> str | None:
        if attempts_submitted >= self.max_attempts:
            return f"attempt budget reached ({self.max_attempts})"
        if self.elapsed() >= self.max_seconds:
            return f"time budget reached ({self.max_seconds:.0f} s)"
        return None
