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
    hardware_workers: int = Field(1, ge=1, description="CPU bench slots of a local Ray; one per machine keeps "
                                  "timings clean. On a cluster (address set) one worker per bench slot the "
                                  "cluster offers (ray start --resources '{\"kscout_bench_slot\": N}')")
    target: str | None = Field(None, description="hardware target: a Ray custom resource that the nodes of one "
                               "kind of hardware offer (e.g. 'H100'); workers are placed only there, and every "
                               "packet records it")
    max_retries: int = Field(2, ge=0, description="an attempt whose worker died (process or node) is sent to "
                             "this many more workers, on other nodes, before it is recorded as hardware_fault")
    quarantine_after: int = Field(2, ge=1, description="lost workers after which a node is quarantined (no more "
                                  "attempts go there; the status names it)")
