"""Search and cluster settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

from search.planner import PlannerConfig


class SearchConfig(BaseModel):
    attempts: int = Field(30, ge=1, description="stop after this many attempts (every verdict counts)")
    time_s: float = Field(300.0, gt=0, description="stop submitting new attempts after this many seconds")
    device_hours: float | None = Field(None, gt=0, description="stop after this much time on the hardware "
                                       "(compile + verify + benchmark child processes), summed over attempts")
    max_dollars: float | None = Field(None, ge=0, description="stop when model calls have cost this much "
                                      "(litellm's offline cost map; the offline proposer costs nothing)")
    max_tokens: int | None = Field(None, ge=1, description="stop when model calls have used this many tokens "
                                   "(in + out, every call including failed ones)")
    queue_depth: int = Field(2, ge=1, description="attempts in flight per hardware worker (keeps it busy)")
    planner: PlannerConfig = Field(default_factory=PlannerConfig)


class ClusterConfig(BaseModel):
    address: str | None = Field(None, description="Ray cluster to join ('auto', 'ray://host:10001'); "
                                                  "None starts a local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (default: all)")
    hardware_workers: int = Field(1, ge=1, description="CPU bench slots; one per machine keeps timings clean")
