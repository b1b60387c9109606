"""Verification cases: inputs drawn from the declared distributions, and the reference output.

A case is one shape x seed x input distribution. The reference runs here, in the harness's own
process, never in the candidate's. Candidate inputs are the forward arguments followed by the
Model's parameters and buffers (state_dict order), all contiguous and in the dtype under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.workload import ShapeCase, Workload

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}
# Matches enum ks_dtype in include/kscout.h.
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3,
               torch.int32: 4, torch.int64: 5}


@dataclass
class Case:
    shape: ShapeCase
    seed: int
    distribution: str
    inputs: list[torch.Tensor]          # what the candidate receives
    forward_args: list[torch.Tensor]    # what Model.forward receives
    model: torch.nn.Module
    reference: torch.Tensor
    meta: dict = field(default_factory=dict)

    def label(self) -> str:
        return f"{self.shape.name} seed={self.seed} dist={self.distribution}"


def fill(t: torch.Tensor, distribution: str, gen: torch.Generator) -> None:
    """Overwrite a floating tensor in place with values from a named distribution."""
    if not t.is_floating_point():
        return
    f = torch.empty(t.shape, dtype=torch.float32)
    if distribution == "normal":
        f.normal_(generator=gen)
    elif distribution == "uniform":
        f.uniform_(0.0, 1.0, generator=gen)
    elif distribution == "large":
        f.normal_(generator=gen).mul_(100.0)
    elif distribution == "small":
        f.normal_(generator=gen).mul_(1e-3)
    elif distribution == "negative":
        f.uniform_(0.0, 1.0, generator=gen).add_(0.01).neg_()
    elif distribution == "zipf":
        # Heavy-tailed magnitudes with random signs: 1/u^1.2 for u ~ U(0,1], clipped.
        u = torch.rand(t.shape, generator=gen).clamp_min(1e-4)
        sign = torch.randint(0, 2, t.shape, generator=gen).mul(2).sub(1)
        f = u.pow(-1.2).clamp_max(1e4).mul(sign)
    else:
        raise ValueError(f"unknown input distribution '{distribution}'")
    t.copy_(f)


def build_case(workload: Workload, shape: ShapeCase, seed: int, distribution: str, dtype: str) -> Case:
    tdtype = TORCH_DTYPES[dtype]
    module = workload.load_reference(shape.dims)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = module.Model(*module.get_init_inputs()).eval()
    model = model.to(tdtype)
    args = [a.to(tdtype) if torch.is_tensor(a) and a.is_floating_point() else a for a in module.get_inputs()]
    for a in args:
        if torch.is_tensor(a):
            fill(a, distribution, gen)
    args = [a.contiguous() if torch.is_tensor(a) else a for a in args]
    with torch.no_grad():
        reference = model(*args)
    if not torch.is_tensor(reference):
        raise TypeError(f"{workload.reference_path}: Model.forward must return one tensor, got {type(reference)}")
    params = [p.detach().contiguous() for p in model.state_dict().values()]
    inputs = [a for a in args if torch.is_tensor(a)] + params
    return Case(shape=shape, seed=seed, distribution=distribution, inputs=inputs, forward_args=args,
                model=model, reference=reference.detach().contiguous())


def verify_plan(workload: Workload) -> list[tuple[ShapeCase, int, str]]:
    """Every shape gets every distribution it declares; the first distribution also runs with
    every seed, so each shape is checked on at least two different inputs."""
    spec = workload.spec
    plan = []
    for shape in spec.shapes:
        dists = shape.distributions or spec.inputs.distributions
        seeds = spec.inputs.seeds
        plan += [(shape, seeds[0], d) for d in dists]
        plan += [(shape, s, dists[0]) for s in seeds[1:]]
    return plan


def build_cases(workload: Workload, dtype: str) -> list[Case]:
    return [build_case(workload, shape, seed, dist, dtype) for shape, seed, dist in verify_plan(workload)]
