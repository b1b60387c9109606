"""The offline proposer: parametric kernel templates (C++, or Triton modules) instantiated from a strategy node's parameters.

No model, no network, no key: this is what the default run uses. The search space is the
template family's axes; the planner decides which point of it to try.
"""

from __future__ import annotations

from agents import templates
from harness.evidence import Candidate
from search.strategy import Proposal


class OfflineProposer:
    name = "offline"

    def __init__(self, workload: str, family: "str | templates.TemplateFamily", backend: str = "cpu_cpp",
                 dtype: str = "float32"):
        self.workload = workload
        self.family = templates.get(family, backend) if isinstance(family, str) else family
        if not self.family.renders:
            raise KeyError(f"workload {workload}: op family '{self.family.family}' has no offline templates "
                           f"(families with templates: {', '.join(templates.families(rendering=True, backend=backend))}); "
                           "search it with a model writing the kernels: --model provider/model")
        self.backend = backend
        self.dtype = dtype

    def propose(self, proposal: Proposal) -> Candidate:
        params = self.family.validate_params(proposal.params)
        strategy = proposal.strategy + (f" [refine: {proposal.refinement}]" if proposal.refinement else "")
        # The strategy line lets a reviewer read how the kernel was reached, right in its source.
        source = f"{self.family.comment} strategy: {strategy}\n" + self.family.render(params)
        return Candidate(source=source,
                         backend=self.backend, workload=self.workload, dtype=self.dtype, strategy=strategy,
                         params=params, node_id=proposal.node_id, proposer=self.name,
                         knowledge=list(proposal.knowledge))

    def naive(self) -> Candidate:
        """The root of the tree, which is also the naive C++ baseline."""
        return self.propose(Proposal(node_id="n0", params=self.family.defaults(), strategy="naive"))

