"""The offline proposer renders a candidate per proposal from the family's templates."""

from __future__ import annotations

import pytest

from agents import templates
from agents.offline import OfflineProposer
from search.strategy import Proposal


@pytest.mark.parametrize("workload, family", [("bias_gelu", "bias_gelu"), ("softmax", "softmax"),
                                              ("rmsnorm", "rmsnorm"), ("matmul", "matmul")])
def test_naive_and_moved_candidates_are_distinct_sources(workload, family):
    prop = OfflineProposer(workload, family)
    naive = prop.naive()
    assert "kscout_forward" in naive.source and naive.params == templates.get(family).defaults()
    fam = templates.get(family)
    move = next(m for m in fam.moves if fam.applicable(m, fam.defaults()))
    moved = prop.propose(Proposal(node_id="n1", params=dict(fam.defaults(), **move.assigns), strategy=move.description))
    assert moved.source != naive.source
    assert moved.strategy == move.description and moved.node_id == "n1"
    assert moved.source.startswith(f"// strategy: {move.description}")


def test_out_of_range_params_are_refused_naming_the_axis():
    prop = OfflineProposer("bias_gelu", "bias_gelu")
    axis = prop.family.axes[0]
    with pytest.raises(ValueError, match=axis.name):
        prop.propose(Proposal(node_id="n1", params={axis.name: "no-such-value"}, strategy="x"))


def test_unknown_family_names_the_known_ones():
    with pytest.raises(KeyError, match="bias_gelu"):
        OfflineProposer("w", "no_such_family")
