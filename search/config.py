"""Search and cluster settings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

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
    executor: Literal["ray", "local"] = Field(
        "ray", description="where the proposer and hardware workers run: 'ray' (a local Ray, or the cluster at "
        "`address`) or 'local' (threads of the kscout process, no Ray: one machine where Ray cannot be "
        "installed, e.g. a bare GPU box; one GPU worker at most, no address or targets)")
    address: str | None = Field(None, description="Ray cluster to join ('auto', 'ray://host:10001'); "
                                                  "None starts a local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (default: all)")
    hardware_workers: int = Field(1, ge=1, description="CPU bench slots of a local Ray; one per machine keeps "
                                  "timings clean. On a cluster (address set) one worker per bench slot the "
                                  "cluster offers (ray start --resources '{\"kscout_bench_slot\": N}')")
    target: str | None = Field(None, description="hardware target: a Ray custom resource that the nodes of one "
                               "kind of hardware offer (e.g. 'H100'); workers are placed only there, and every "
                               "packet records it")
    targets: list[str] = Field(default_factory=list, description="several hardware targets searched at once, "
                               "one run each (its own tree, workers, budget and branches), driven by one loop: "
                               "NAME or NAME=BACKEND (e.g. 'H100=cuda', 'MI300X=hip'); NAME is a Ray resource "
                               "(a custom one, or Ray's own 'accelerator_type:H100'). Replaces `target`")
    max_retries: int = Field(2, ge=0, description="an attempt whose worker died (process or node) is sent to "
                             "this many more workers, on other nodes, before it is recorded as hardware_fault")
    quarantine_after: int = Field(2, ge=1, description="lost workers after which a node is quarantined (no more "
                                  "attempts go there; the status names it)")

    @model_validator(mode="after")
    def _one_way_to_say_target(self) -> "ClusterConfig":
        if self.target and self.targets:
            raise ValueError(f"set cluster.target ('{self.target}') or cluster.targets ({self.targets}), not both")
        if self.executor == "local" and (self.address or self.target or self.targets):
            what = "address" if self.address else "target(s)"
            raise ValueError(f"cluster.executor 'local' runs every worker in this process, so it cannot use a Ray "
                             f"cluster's {what} ({self.address or self.target or self.targets}); drop one of them")
        names = [split_target(t)[0] for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError(f"cluster.targets names a target twice: {self.targets}")
        return self


def split_target(text: str) -> tuple[str, str | None]:
    """'H100=cuda' -> ('H100', 'cuda'); 'accelerator_type:H100' -> ('accelerator_type:H100', None)."""
    name, sep, backend = text.partition("=")
    name, backend = name.strip(), backend.strip()
    if not name or (sep and not backend):
        raise ValueError(f"hardware target '{text}': write NAME or NAME=BACKEND, e.g. H100 or H100=cuda")
    return name, backend or None
