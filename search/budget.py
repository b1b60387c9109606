"""Budgets: when a run stops submitting new attempts."""

from __future__ import annotations

import time


class Budget:
    """Attempts and searching time. A resumed run passes what earlier sessions spent
    (`spent_s`; attempts are counted by the driver from the log), so limits hold across crashes."""

    def __init__(self, max_attempts: int, max_seconds: float, clock=time.monotonic, spent_s: float = 0.0,
                 device_hours: float | None = None, max_dollars: float | None = None,
                 max_tokens: int | None = None):
        self.max_attempts = max_attempts
        self.max_seconds = max_seconds
        self.clock = clock
        self.started = clock()
        self.spent_s = spent_s
        self.device_hours, self.max_dollars, self.max_tokens = device_hours, max_dollars, max_tokens
        self.device_s = 0.0      # hardware time of recorded attempts (all sessions: seeded from the log)
        self.dollars = 0.0       # model spend: recorded attempts' calls and the planner's
        self.tokens = 0          # model tokens, in + out

    def charge(self, device_s: float, dollars: float, tokens: int = 0) -> None:
        """Count one recorded attempt's hardware time and model spend (or a planner-side call's)."""
        self.device_s += device_s
        self.dollars += dollars
        self.tokens += tokens

    def elapsed(self) -> float:
        """Searching time over all sessions of the run."""
        return self.spent_s + self.clock() - self.started

    def stop_reason(self, attempts_submitted: int) -> str | None:
        if attempts_submitted >= self.max_attempts:
            return f"attempt budget reached ({self.max_attempts})"
        if self.elapsed() >= self.max_seconds:
            return f"time budget reached ({self.max_seconds:.0f} s)"
        if self.device_hours is not None and self.device_s >= self.device_hours * 3600:
            return f"device-time budget reached ({self.device_hours:g} h)"
        if self.max_dollars is not None and self.dollars >= self.max_dollars:
            return f"spend budget reached (${self.max_dollars:g})"
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            return f"token budget reached ({self.max_tokens:,} tokens)"
        return None
