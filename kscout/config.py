"""The run configuration: one pydantic model per concern, composed into RunConfig.

`kscout search --config FILE.toml` reads a file shaped like `kscout/default_config.toml` (every
field documented there); command-line flags override it. Secrets never go here: model keys come
from the providers' usual environment variables.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agents.models import CallPolicy, ModelSpec
from agents.paths import OPTIMIZED_DIR

from harness.config import HarnessConfig
from search.config import ClusterConfig, SearchConfig, split_target

DEFAULT_CONFIG = Path(__file__).with_name("default_config.toml")


class MemoryConfig(BaseModel):
    db: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<run dir>/kscout.db")
    runs_dir: Path = Field(Path("runs"), description="one folder per run is created under this")
    repo: Path | None = Field(None, description="git repository for winner branches; default <run dir>/repo")
    top_k: int = Field(3, ge=1, description="the best k kernels become branches kscout/<workload>/<run-id>/<rank>")
    warm_start: bool = Field(True, description="start from what earlier runs on this op family and hardware "
                                               "learned (runs under runs_dir, and db if shared)")


class AgentsConfig(BaseModel):
    proposer: Literal["offline", "llm"] = Field("offline", description="offline = parametric templates, no model; "
                                                "llm = models write the kernels (set by --model)")
    models: list[ModelSpec] = Field(default_factory=list, description="litellm models, chosen by weight")
    concurrency: int = Field(4, ge=1, description="model calls in flight at once (agent actor threads)")
    world_model: bool = Field(True, description="the model proposes the strategy tree's expansions "
                                                "(K-Search world-model update); false: the planner's rules")
    diagnose: bool = Field(True, description="before retrying a node whose latest kernel was rejected, "
                                             "ask the model why (one more call), and tell the proposer")
    call: CallPolicy = Field(default_factory=CallPolicy)
    skills_budget_tokens: int = Field(6000, ge=0, description="context budget for SKILL.md documents per proposal")
    max_answer_chars: int = Field(200_000, ge=1000, description="a longer answer is rejected as output_too_large")
    programs_dir: Path = Field(OPTIMIZED_DIR, description="optimized programs (kscout skills optimize) are "
                                                          "loaded from here when present")

    @model_validator(mode="after")
    def _models_for_llm(self) -> "AgentsConfig":
        if self.proposer == "llm" and not self.models:
            raise ValueError("proposer 'llm' needs at least one model: --model provider/model, or "
                             "[[agents.models]] model = \"openai/gpt-4o-mini\" in the config file")
        return self


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: str = Field("bias_gelu", description="shipped workload name or a workload folder")
    dtype: str = Field("float32", description="dtype under test; must be in the workload's dtypes")
    backend: str = Field("cpu_cpp", description="harness backend for candidates (cpu_cpp or triton); it must "
                         "be in the workload's backends")
    search: SearchConfig = Field(default_factory=SearchConfig)
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    agents: AgentsConfig = Field(default_factory=AgentsConfig)


    @model_validator(mode="after")
    def _known_backend(self) -> "RunConfig":
        from harness import backends
        if self.backend not in backends.names():
            raise ValueError(f"backend '{self.backend}' is not a harness backend; use one of {backends.names()}")
        for t in self.cluster.targets:
            backend = split_target(t)[1]
            if backend is not None and backend not in backends.names():
                raise ValueError(f"cluster.targets: '{t}' names backend '{backend}', not a harness backend; "
                                 f"use one of {backends.names()}")
        return self

    def per_target(self) -> list["RunConfig"]:
        """One config per hardware target (cluster.targets; each gets cluster.target and its
        backend), or [self] when there are none: what each of a search's runs is started with."""
        if not self.cluster.targets:
            return [self]
        out = []
        for t in self.cluster.targets:
            name, backend = split_target(t)
            out.append(self.model_copy(deep=True, update={
                "backend": backend or self.backend,
                "cluster": self.cluster.model_copy(update={"target": name, "targets": []})}))
        return out


class ConfigError(ValueError):
    pass


def load_config(path: Path | None) -> RunConfig:
    if path is None:
        return RunConfig()
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such config file") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        lines = [f"{path}: {e.error_count()} problem(s)"]
        for err in e.errors():
            loc = ".".join(str(x) for x in err["loc"])
            lines.append(f"  field '{loc}': {err['msg']} (see {DEFAULT_CONFIG.name} for every field)")
        raise ConfigError("\n".join(lines)) from e
