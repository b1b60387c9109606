"""The proposer protocol: turn a planner Proposal into a Candidate kernel."""

from __future__ import annotations

from typing import Protocol

from harness.evidence import Candidate
from search.strategy import Proposal


class Proposer(Protocol):
    name: str

    def propose(self, proposal: Proposal) -> Candidate: ...
