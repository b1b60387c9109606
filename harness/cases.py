"""Verification cases: inputs drawn from the declared distributions, and the reference output.

A case is one shape x seed x input distribution. The reference runs here, in the harness's own
process, never in the candidate's. Candidate inputs are the forward arguments followed by the
Model's parameters and buffers (state_dict order), all contiguous and in the dtype under test.

Besides the declared suite, a worker adds cases the candidate cannot anticipate:

- hidden shapes: dims drawn at random (from the OS's entropy, per worker) near the declared ones;
- reruns: the first case of each shape again, on the *same* buffers with some input elements
  overwritten in place, so a cache keyed by pointer or by a sampled fingerprint returns stale data;
- rotation sets: several seeds of the bench shape, cycled through the timed calls.

Each case also carries a float64 reference (when the dtype is narrower), so a kernel that
computes in lower precision than asked shows up even when the tolerance would let it through.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import torch

from harness.workload import ShapeCase, Workload

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}
# Matches enum ks_dtype in include/kscout.h.
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3,
               torch.int32: 4, torch.int64: 5, torch.int8: 6, torch.uint8: 7}


@dataclass
class Case:
    shape: ShapeCase
    seed: int
    distribution: str
    inputs: list[torch.Tensor]          # what the candidate receives
    forward_args: list[torch.Tensor]    # what Model.forward receives
    model: torch.nn.Module
    reference: torch.Tensor
    reference64: torch.Tensor | None = None   # the same forward in float64, when dtype is narrower
    kind: str = "suite"                        # suite | hidden | rerun | rotation
    rerun_of: int | None = None                # rerun: index of the case whose buffers it reuses
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:12])   # names its staged input files
    stats: dict = field(default_factory=dict)   # reference-side figures verify.py computes once per case

    def label(self) -> str:
        extra = "" if self.kind == "suite" else f" [{self.kind}]"
        return f"{self.shape.name} {self.shape.dims} seed={self.seed} dist={self.distribution}{extra}"


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
    elif distribution == "outliers":
        # LLM activations: mostly N(0,1), but a few feature channels (last dim) carry values
        # ~50x larger in every row (Dettmers et al., LLM.int8()). Catches kernels that lose
        # precision on wide dynamic range within a row (one-pass variance, fp16 accumulators).
        f.normal_(generator=gen)
        if f.dim() >= 1 and f.shape[-1] >= 8:
            cols = torch.randperm(f.shape[-1], generator=gen)[:max(1, f.shape[-1] // 64)]
            f[..., cols] *= 50.0
    elif distribution == "offset":
        # A large common offset over a unit spread (100 + N(0,1)), as in un-centred activations or
        # positions: E[x^2] - E[x]^2 loses ~4 digits to cancellation in fp32, and exp(x) overflows
        # unless the row max is subtracted first.
        f.normal_(generator=gen).add_(100.0)
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
    return _finish(Case(shape=shape, seed=seed, distribution=distribution, inputs=[], forward_args=args,
                        model=model, reference=torch.empty(0)), workload)


def _finish(case: Case, workload: Workload) -> Case:
    """Run the reference (in the dtype, and in float64) and lay out the candidate's inputs."""
    model, args = case.model, case.forward_args
    with torch.no_grad():
        reference = model(*args)
    if not torch.is_tensor(reference):
        raise TypeError(f"{workload.reference_path}: Model.forward must return one tensor, got {type(reference)}")
    case.reference = reference.detach().contiguous()
    if case.reference.is_floating_point() and case.reference.dtype != torch.float64:
        import copy
        m64 = copy.deepcopy(model).double()
        a64 = [a.double() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
        with torch.no_grad():
            case.reference64 = m64(*a64).detach().contiguous()
    params = [p.detach().contiguous() for p in model.state_dict().values()]
    case.inputs = [a for a in args if torch.is_tensor(a)] + params
    return case


def rerun_variant(base: Case, base_index: int, workload: Workload, gen: torch.Generator) -> Case:
    """The base case's forward inputs with a sparse set of elements replaced, to be written into
    the base case's own buffers before calling again. The changed elements avoid the first and last
    64 and every multiple of 8: the places a sampled fingerprint looks (about 1 in 64 of the rest
    change, at least one)."""
    args = []
    for a in base.forward_args:
        if torch.is_tensor(a) and a.is_floating_point() and a.numel():
            fresh = a.clone()
            fill(fresh, base.distribution, gen)
            n = a.numel()
            idx = torch.arange(n)
            allowed = idx[(idx >= 64) & (idx < n - 64) & (idx % 8 != 0)]
            if allowed.numel() == 0:
                allowed = idx[(idx % 8 != 0)] if n > 1 else idx
            pick = allowed[torch.rand(allowed.numel(), generator=gen) < 1 / 64]
            forced = allowed[torch.randint(allowed.numel(), (1,), generator=gen)]
            mask = torch.zeros(n, dtype=torch.bool)
            mask[pick] = True
            mask[forced] = True
            a = torch.where(mask.view(a.shape), fresh, a).contiguous()
        args.append(a)
    case = Case(shape=base.shape, seed=base.seed, distribution=base.distribution, inputs=[], forward_args=args,
                model=base.model, reference=torch.empty(0), kind="rerun", rerun_of=base_index)
    return _finish(case, workload)


def hidden_shapes(workload: Workload, count: int, rng: random.Random | None = None) -> list[ShapeCase]:
    """Shapes the candidate was never shown: each dim of the smallest declared shape moved by up to
    a quarter (at least one dim changed), drawn from OS entropy unless an rng is given."""
    rng = rng or random.SystemRandom()
    base = min(workload.spec.shapes, key=lambda s: _numel(s.dims))
    fixed = set(workload.spec.verify.fixed_dims)
    declared = {tuple(sorted(s.dims.items())) for s in workload.spec.shapes}
    out: list[ShapeCase] = []
    for i in range(count * 20):
        if len(out) == count:
            break
        dims = {k: (v if k in fixed else max(1, v + rng.randint(-max(1, v // 4), max(1, v // 4))))
                for k, v in base.dims.items()}
        if tuple(sorted(dims.items())) in declared:
            continue
        declared.add(tuple(sorted(dims.items())))
        out.append(ShapeCase(name=f"hidden-{len(out)}", dims=dims, distributions=[workload.spec.inputs.distributions[0]]))
    return out


def _numel(dims: dict[str, int]) -> int:
    n = 1
    for v in dims.values():
        n *= v
    return n


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


def build_cases(workload: Workload, dtype: str, hidden: int = 0, rng: random.Random | None = None) -> list[Case]:
    """The declared suite, plus `hidden` unseen shapes, plus one in-place rerun per shape."""
    plan = verify_plan(workload)
    for shape in hidden_shapes(workload, hidden, rng):
        plan.append((shape, workload.spec.inputs.seeds[0], shape.distributions[0]))
    cases: list[Case] = []
    gen = torch.Generator().manual_seed(7919)
    seen: set[str] = set()
    for shape, seed, dist in plan:
        case = build_case(workload, shape, seed, dist, dtype)
        if shape.name.startswith("hidden-"):
            case.kind = "hidden"
        cases.append(case)
        if shape.name not in seen and not shape.bench:   # the bench shape gets rotation sets instead
            seen.add(shape.name)
            cases.append(rerun_variant(case, len(cases) - 1, workload, gen))
    return cases


def rotation_sets(workload: Workload, dtype: str, count: int) -> list[Case]:
    """The bench shape with `count` different seeds: timed calls cycle through them."""
    shape = workload.spec.bench_shape
    dist = (shape.distributions or workload.spec.inputs.distributions)[0]
    seed0 = workload.spec.inputs.seeds[0]
    sets = []
    for i in range(count):
        case = build_case(workload, shape, seed0 + 1000 * i, dist, dtype)
        case.kind = "rotation"
        sets.append(case)
    return sets
