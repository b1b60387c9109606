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


def families(rendering: bool = False) -> list[str]:
    """Registered families; `rendering=True`: only those the offline proposer can instantiate."""
    return sorted(k for k, f in _FAMILIES.items() if f.renders or not rendering)


def _discover() -> None:
    """Import every family module in this package, so adding agents/templates/<family>.py is
    all it takes to register one."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "snippets"):
            importlib.import_module(f"{__name__}.{info.name}")


_discover()

__all__ = ["Axis", "Move", "TemplateFamily", "get", "families", "register"]
