"""Shipped workloads: one folder each, with reference.py and workload.toml (see harness.workload)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEFAULT = "bias_gelu"
