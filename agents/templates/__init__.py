"""Registry of offline template families, keyed by the workload's `family`."""

from __future__ import annotations

from agents.templates.base import Axis, Move, TemplateFamily

_FAMILIES: dict[str, TemplateFamily] = {}


def register(cls: type[TemplateFamily]) -> type[TemplateFamily]:
    _FAMILIES[cls.family] = cls()
    return cls


def get(family: str) -> TemplateFamily:
    if family not in _FAMILIES:
        raise KeyError(f"no offline templates for op family '{family}' (have: {sorted(_FAMILIES)}); "
                       "add agents/templates/<family>.py (see README: Extending)")
    return _FAMILIES[family]


def families() -> list[str]:
    return sorted(_FAMILIES)


from agents.templates import bias_gelu, matmul, rmsnorm, softmax  # noqa: E402,F401

__all__ = ["Axis", "Move", "TemplateFamily", "get", "families", "register"]
