"""Budgets: when a run stops submitting new attempts."""

from __future__ import annotations

import time


class Budget:
    """Attempts and searching time. A resumed run passes what earlier sessions spent
    (`spent_s`; attempts are counted by the driver from the log), so limits hold across crashes."""

    def __init__(self, max_attempts: int, max_seconds: float, clock=time.monotonic, spent_s: float = 0.0):
        self.max_attempts = max_attempts
        self.max_seconds = max_seconds
        self.clock = clock
        self.started = clock()
        self.spent_s = spent_s

    def elapsed(self) -> float:
        """Searching time over all sessions of the run."""
        return self.spent_s + self.clock() - self.started

    def stop_reason(self, attempts_submitted: int) -> str | None:
        if attempts_submitted >= self.max_attempts:
            return f"attempt budget reached ({self.max_attempts})"
        if self.elapsed() >= self.max_seconds:
            return f"time budget reached ({self.max_seconds:.0f} s)"
        return None
