"""`kscout show ATTEMPT`: one attempt's evidence, its source, and what changed from its parent.

The parent of an attempt is the step before it in its lineage (kscout.branches.lineage): the best
attempt of its strategy node's parent node, the kernel the planner refined from; the root's
attempts have none. Attempts are found by id across every run
database under the runs folder, or in one given database.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from pydantic import BaseModel

from harness.evidence import EvidencePacket
from kscout.branches import lineage
from memory.store import Store


class Shown(BaseModel):
    run_id: str
    packet: EvidencePacket
    parent: EvidencePacket | None = None
    diff: str = ""


def find_attempt(attempt_id: str, runs_dir: Path, db: str | None) -> tuple[str, Store]:
    """The URL of the log holding `attempt_id`, and an open Store on it (caller closes)."""
    urls = [db] if db else [f"sqlite:///{p.resolve()}" for p in sorted(runs_dir.glob("*/kscout.db"))] \
        if runs_dir.is_dir() else []
    for url in urls:
        store = Store.open(url)
        try:
            store.packet(attempt_id)
            return url, store
        except KeyError:
            store.close()
    where = db or f"{runs_dir}/*/kscout.db"
    raise KeyError(f"no attempt '{attempt_id}' in {where}; attempt ids are in `kscout status`, the run's "
                   "packets/ folder and history.jsonl from `kscout export`")


def show(store: Store, attempt_id: str) -> Shown:
    packet = store.packet(attempt_id)
    run_id = packet.run_id or ""
    chain = lineage(store, run_id, attempt_id) if run_id else [packet]
    parent = chain[-2] if len(chain) > 1 else None
    diff = ""
    if parent is not None:
        diff = "".join(difflib.unified_diff(parent.candidate.source.splitlines(keepends=True),
                                            packet.candidate.source.splitlines(keepends=True),
                                            fromfile=f"parent {parent.id}", tofile=f"attempt {packet.id}"))
    return Shown(run_id=run_id, packet=packet, parent=parent, diff=diff)
