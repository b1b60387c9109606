"""Backends register by name; the rest of the harness never branches on vendor."""

from __future__ import annotations

from harness.backends.base import Backend, BackendUnavailable, RunOutput

_REGISTRY: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> Backend:
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend '{name}'; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]()


def source_file(name: str) -> str:
    """kernel.cpp, kernel.py, kernel.cu, ...: the file name a backend's candidate source is kept under."""
    return _REGISTRY[name].source_file if name in _REGISTRY else "kernel.txt"


def names() -> list[str]:
    return sorted(_REGISTRY)


from harness.backends import cpu_cpp, native_gpu, triton  # noqa: E402,F401  (each registers itself)

__all__ = ["Backend", "BackendUnavailable", "RunOutput", "get", "names", "register", "source_file"]
