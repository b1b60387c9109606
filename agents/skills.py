"""Skills: SKILL.md documents the agent reads — per backend, per op family, and hard rules.

Each skill is `skills/<name>/SKILL.md` with YAML frontmatter (name, description, kind: backend |
op | rules, and backend/backends or families). For a proposal the agent takes, in this order,
the rules for the backend, the backend's skill, and the op family's skill, as long as they fit the
context budget (a skill that does not fit is left out whole and named, never cut mid-sentence).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from agents.paths import SKILLS_DIR
CHARS_PER_TOKEN = 4     # rough, provider-independent; the budget is a guard, not a bill


class SkillError(ValueError):
    pass


class Skill(BaseModel):
    name: str
    description: str
    kind: str                                    # backend | op | rules
    backends: list[str] = Field(default_factory=list)
    families: list[str] = Field(default_factory=list)
    body: str
    path: str

    @property
    def tokens(self) -> int:
        return len(self.body) // CHARS_PER_TOKEN


def parse(path: Path) -> Skill:
    text = path.read_text()
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        raise SkillError(f"{path}: a SKILL.md starts with YAML frontmatter between '---' lines "
                         "(name, description, kind, backend or families)")
    head, body = text[4:].split("\n---", 1)
    try:
        meta = yaml.safe_load(head) or {}
    except yaml.YAMLError as e:
        raise SkillError(f"{path}: frontmatter is not valid YAML: {e}") from None
    for key in ("name", "description", "kind"):
        if not meta.get(key):
            raise SkillError(f"{path}: frontmatter lacks '{key}'")
    if meta["kind"] not in ("backend", "op", "rules"):
        raise SkillError(f"{path}: kind must be backend, op or rules, not {meta['kind']!r}")
    backends = meta.get("backends") or ([meta["backend"]] if meta.get("backend") else [])
    families = meta.get("families") or []
    if meta["kind"] in ("backend", "rules") and not backends:
        raise SkillError(f"{path}: a {meta['kind']} skill names its backend ('backend: cpu_cpp')")
    if meta["kind"] == "op" and not families:
        raise SkillError(f"{path}: an op skill names its op families ('families: [softmax]')")
    return Skill(name=str(meta["name"]), description=str(meta["description"]), kind=meta["kind"],
                 backends=[str(b) for b in backends], families=[str(f) for f in families],
                 body=body.lstrip("\n"), path=str(path))


@lru_cache(maxsize=8)
def load_all(root: Path = SKILLS_DIR) -> tuple[Skill, ...]:
    return tuple(parse(p) for p in sorted(root.glob("*/SKILL.md")))


class Selection(BaseModel):
    skills: list[Skill]
    left_out: list[str] = Field(default_factory=list)   # names that did not fit the budget

    def text(self) -> str:
        return "\n\n".join(f"## Skill: {s.name}\n{s.body.strip()}" for s in self.skills)

    def names(self) -> list[str]:
        return [s.name for s in self.skills]


def select(backend: str, family: str, budget_tokens: int = 6000, root: Path = SKILLS_DIR) -> Selection:
    """Rules first (they decide what gets rejected), then the backend, then the op family."""
    order = {"rules": 0, "backend": 1, "op": 2}
    fits = [s for s in load_all(root)
            if (s.kind in ("rules", "backend") and backend in s.backends) or (s.kind == "op" and family in s.families)]
    chosen, left, used = [], [], 0
    for s in sorted(fits, key=lambda s: (order[s.kind], s.name)):
        if used + s.tokens <= budget_tokens:
            chosen.append(s)
            used += s.tokens
        else:
            left.append(s.name)
    return Selection(skills=chosen, left_out=left)
