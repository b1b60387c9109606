"""The experiment log: every run, strategy node, attempt and baseline, in SQL.

`Store` (memory.store) is the only API the rest of kscout uses; the schema lives in
memory.models and is created and evolved by the Alembic migrations in memory/migrations.
`export_kernel` (memory.gitexport) publishes winning kernels to a git branch.
"""

from memory.gitexport import GitExportError, export_kernel
from memory.records import AttemptInfo, NodeStats, RunInfo, RunStatus, VerdictCounts
from memory.store import Store

__all__ = [
    "AttemptInfo",
    "GitExportError",
    "NodeStats",
    "RunInfo",
    "RunStatus",
    "Store",
    "VerdictCounts",
    "export_kernel",
]
