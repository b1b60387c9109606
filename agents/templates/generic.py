"""generic: the strategy space for an op no template family covers (e.g. an imported KernelBench
problem whose function matches no shipped workload).

The axes name the optimizations a kernel engineer tries on any CPU op, so the planner can grow
and rank a tree over them, but there is no renderer: a model writes each kernel (`--model`),
reading the node's strategy and parameters. The offline proposer refuses this family up front
(`renders = False`), before a run starts.
"""

from __future__ import annotations

from typing import Any

from agents.templates import register
from agents.templates.base import Axis, Move, TemplateFamily


@register
class GenericStrategies(TemplateFamily):
    family = "generic"
    renders = False
    axes = [
        Axis(name="passes", values=["as_reference", "fused"], default="as_reference",
             doc="as_reference: one loop nest per torch op; fused: every input read once, no temporaries"),
        Axis(name="threads", values=["none", "outer"], default="none",
             doc="OpenMP over the outermost independent loop (rows, batch, output channels)"),
        Axis(name="vector", values=["scalar", "omp_simd", "avx2"], default="scalar",
             doc="plain loops, `#pragma omp simd`, or AVX2/FMA intrinsics with several accumulators"),
        Axis(name="blocking", values=["none", "cache"], default="none",
             doc="tile loops so each block's working set stays in L1/L2 (reductions, matmul-like ops)"),
        Axis(name="store", values=["normal", "stream"], default="normal",
             doc="non-temporal stores for outputs larger than the last-level cache"),
    ]
    moves = [
        Move(name="fuse", description="fuse the reference's ops into one pass: each input read once, no "
             "intermediate tensors", assigns={"passes": "fused"}, prior_gain=1.5),
        Move(name="omp-outer", description="OpenMP parallel for over the outermost independent loop",
             assigns={"threads": "outer"}, prior_gain=1.7),
        Move(name="vec-omp-simd", description="#pragma omp simd on the innermost loop", assigns={"vector": "omp_simd"},
             prior_gain=1.4),
        Move(name="vec-avx2", description="AVX2/FMA intrinsics with several independent accumulators",
             assigns={"vector": "avx2"}, prior_gain=1.8),
        Move(name="cache-block", description="block the loops for L1/L2 reuse", assigns={"blocking": "cache"},
             prior_gain=1.3),
        Move(name="nt-stores", description="streaming (non-temporal) stores for the output",
             assigns={"store": "stream"}, prior_gain=1.1, requires={"vector": "avx2"}),
    ]

    def render(self, params: dict[str, Any]) -> str:
        raise NotImplementedError(
            "op family 'generic' has no offline templates: no shipped template computes this workload's function. "
            "Search it with a model writing the kernels: kscout search WORKLOAD --model provider/model")
