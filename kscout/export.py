"""`kscout export RUN`: a run's log in the common file layout other tools read.

- history.jsonl: one row per attempt (seq, id, node, strategy, params, verdict, failure class,
  speedups, median, SOL, cost, created_at);
- frontier.csv: per template axis and value, how many attempts tried it, how many verified, and
  the best speedup; values never tried are listed with zero attempts;
- memory.json: the facts, dead ends and best kernel this run alone supports (memory/knowledge.py).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

from agents import templates
from harness.evidence import EvidencePacket
from memory.knowledge import derive
from memory.records import AttemptInfo
from memory.store import Store


def run_packets(store: Store, run_id: str) -> list[tuple[AttemptInfo, EvidencePacket]]:
    """Every attempt of the run with its evidence packet, in seq order (export and report read this)."""
    return [(a, store.packet(a.id)) for a in store.attempts(run_id)]


def export_run(store: Store, run_id: str, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    pairs = run_packets(store, run_id)
    attempts, packets = [a for a, _ in pairs], [p for _, p in pairs]
    paths = {"history": out / "history.jsonl", "frontier": out / "frontier.csv", "memory": out / "memory.json"}
    with paths["history"].open("w") as f:
        for a, p in zip(attempts, packets):
            b = p.bench
            f.write(json.dumps({
                "seq": a.seq, "id": a.id, "node_id": a.node_id, "strategy": p.candidate.strategy,
                "params": p.candidate.params, "knowledge": p.candidate.knowledge, "verdict": p.verdict.value,
                "failure_class": p.failure_class.value if p.failure_class else None,
                "speedup": dict(b.speedup) if b else {}, "median_s": b.candidate.median_s if b else None,
                "sol": b.roofline.sol if b and b.roofline else None, "cost": p.cost.model_dump(),
                "created_at": p.created_at.isoformat()}) + "\n")
    nodes = store.nodes(run_id)
    family = templates.get(nodes[0].family) if nodes else None
    tally: dict[tuple[str, str], list] = defaultdict(lambda: [0, 0, None])
    for p in packets:
        for axis, value in p.candidate.params.items():
            t = tally[(axis, json.dumps(value))]
            t[0] += 1
            if p.verdict.value == "accepted":
                t[1] += 1
                sp = p.speedup("torch_eager")
                if sp is not None and (t[2] is None or sp > t[2]):
                    t[2] = sp
    with paths["frontier"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["axis", "value", "attempts", "verified", "best_speedup_eager", "tried"])
        axes = [(a.name, [json.dumps(v) for v in a.values]) for a in family.axes] if family else []
        listed = set()
        for name, values in axes:
            for v in values:
                n, ok, best = tally.get((name, v), [0, 0, None])
                w.writerow([name, v, n, ok, f"{best:.4f}" if best else "", "yes" if n else "no"])
                listed.add((name, v))
        for (name, v), (n, ok, best) in sorted(tally.items()):
            if (name, v) not in listed:   # params outside the family's axes (e.g. a model's own)
                w.writerow([name, v, n, ok, f"{best:.4f}" if best else "", "yes"])
    k = derive([(str(store.engine.url), _OneRun(store, run_id))])
    paths["memory"].write_text(k.model_dump_json(indent=2))
    return paths


class _OneRun:
    """A Store seen through one run, so knowledge is derived from that run alone."""

    def __init__(self, store: Store, run_id: str):
        self._s, self._id = store, run_id

    def runs(self):
        return [r for r in self._s.runs() if r.id == self._id]

    def __getattr__(self, name):
        return getattr(self._s, name)
