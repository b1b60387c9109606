"""Registry of offline template families, keyed by the workload's `family` and the backend.

A family renders for one backend (`TemplateFamily.backend`, cpu_cpp unless it says otherwise):
`bias_gelu` for cpu_cpp is C++ with OpenMP and AVX2 axes, `bias_gelu` for triton is a Python
module with @triton.jit kernels and block-size axes. `get("bias_gelu", "triton")` picks one; the
key `bias_gelu@triton` (what a triton run's strategy tree records) names the same family.
"""

from __future__ import annotations

from agents.templates.base import Axis, Move, TemplateFamily

_FAMILIES: dict[tuple[str, str], TemplateFamily] = {}


def register(cls: type[TemplateFamily]) -> type[TemplateFamily]:
    _FAMILIES[(cls.family, cls.backend)] = cls()
    return cls


def get(family: str, backend: str = "cpu_cpp") -> TemplateFamily:
    if "@" in family:                      # a tree's key: "softmax@triton"
        family, backend = family.split("@", 1)
    if (family, backend) not in _FAMILIES:
        have = sorted(f for f, b in _FAMILIES if b == backend)
        other = sorted(b for f, b in _FAMILIES if f == family)
        raise KeyError(f"no offline templates for op family '{family}' on backend '{backend}' "
                       f"(families for {backend}: {have or 'none'}"
                       + (f"; '{family}' has templates for {other}" if other else "")
                       + "); add agents/templates/<family>.py (see README: Extending)")
    return _FAMILIES[(family, backend)]


def families(rendering: bool = False, backend: str = "cpu_cpp") -> list[str]:
    """Registered families for a backend; `rendering=True`: only those the offline proposer can instantiate."""
    return sorted(f for (f, b), fam in _FAMILIES.items() if b == backend and (fam.renders or not rendering))


def backends_of(family: str) -> list[str]:
    """The backends a family has templates for."""
    return sorted(b for f, b in _FAMILIES if f == family)


def _discover() -> None:
    """Import every family module in this package, so adding agents/templates/<family>.py is
    all it takes to register one."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base", "snippets"):
            importlib.import_module(f"{__name__}.{info.name}")


_discover()

__all__ = ["Axis", "Move", "TemplateFamily", "backends_of", "get", "families", "register"]
