"""`python -m harness`: the harness on its own (no ray, sqlalchemy, dspy or litellm needed).

Runs with only torch, pydantic (and triton for Triton candidates), e.g. on a GPU box:

    python -m harness env-info                                   # machine, GPU, which backends work here
    python -m harness verify kernel.cu --workload bias_gelu      # compile + verify, no timing
    python -m harness bench kernel.cu --workload bias_gelu --out packet.json
    python -m harness bench kernel.py --workload softmax --profile   # + Nsight Compute counters (NVIDIA GPU, ncu)
    python -m harness replay PACKET.json [--workload DIR]
    python -m harness cheats                                     # the named-cheat catalog as a markdown table
    python -m harness gpu-compile kernel.py --workload matmul --target sm_90 --target gfx942
                                                                 # would this Triton kernel launch there? (no GPU needed)

The backend follows the file's suffix (.cpp/.cc: cpu_cpp, .py: triton, .cu: cuda, .hip: hip) unless
--backend says otherwise. `bench` measures the baselines (torch eager and torch.compile) and the
roofline on the device the backend runs on, then times the candidate exactly as a search does.
Exit status: 0 when the candidate is accepted (or a replay reproduced), 1 when rejected, 2 on bad
input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SUFFIXES = {".cpp": "cpu_cpp", ".cc": "cpu_cpp", ".cxx": "cpu_cpp", ".c": "cpu_cpp", ".py": "triton",
            ".cu": "cuda", ".hip": "hip"}


def _backend_for(path: Path, given: str | None) -> str:
    from harness import backends
    if given:
        if given not in backends.names():
            raise SystemExit(_bad(f"--backend {given}: not a harness backend; use one of {', '.join(backends.names())}"))
        return given
    if path.suffix not in SUFFIXES:
        raise SystemExit(_bad(f"{path}: cannot tell the backend from the suffix '{path.suffix}'; name the file "
                              f"{', '.join(sorted(SUFFIXES))} or pass --backend"))
    return SUFFIXES[path.suffix]


def _bad(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def _summary(p, as_json: bool) -> str:
    b = p.bench
    doc = {"verdict": p.verdict.value, "failure_class": p.failure_class.value if p.failure_class else None,
           "message": p.failure_message, "correctness_only": p.correctness_only,
           "backend": p.candidate.backend, "toolchain": p.environment.compiler if p.environment else None,
           "gpu": p.environment.gpu.model_dump() if p.environment and p.environment.gpu else None,
           "median_ms": b.candidate.median_s * 1e3 if b else None,
           "iqr_rel": b.candidate.iqr_rel if b else None,
           "speedup": dict(b.speedup) if b else {},
           "baselines_ms": {k: v.median_s * 1e3 for k, v in b.baselines.items()} if b else {},
           "sol": b.roofline.sol if b and b.roofline else None,
           "profile": p.profile.model_dump() if p.profile else None, "profile_error": p.profile_error,
           "cases": [{"shape": c.shape, "seed": c.seed, "distribution": c.distribution, "kind": c.kind,
                      "passed": c.passed} for c in p.verify.cases] if p.verify else []}
    if as_json:
        return json.dumps(doc, indent=2)
    lines = [f"verdict: {doc['verdict']}" + (f" ({doc['failure_class']}: {doc['message']})" if doc["failure_class"]
                                              else "")]
    lines.append(f"backend: {doc['backend']} ({doc['toolchain']})")
    if doc["gpu"]:
        g = doc["gpu"]
        lines.append(f"gpu: {g['name']} ({g['vendor']}, {g['arch']}, warp {g['warp_size']}, {g['runtime']})")
    if p.verify:
        lines.append(f"verified: {sum(c.passed for c in p.verify.cases)}/{len(p.verify.cases)} cases")
    if doc["correctness_only"]:
        lines.append(f"not timed: {doc['correctness_only']}")
    if b:
        lines.append(f"median: {doc['median_ms']:.4g} ms (IQR {100 * doc['iqr_rel']:.1f}%)")
        lines += [f"vs {k}: {v:.2f}x ({doc['baselines_ms'].get(k, float('nan')):.4g} ms)" for k, v in doc["speedup"].items()]
        if doc["sol"] is not None:
            lines.append(f"SOL: {doc['sol']:.2f} of the roofline bound ({b.roofline.peak_method})")
    if p.profile:
        lines.append("profile: " + p.profile.digest())
    elif p.profile_error:
        lines.append(f"profile: none ({p.profile_error})")
    return "\n".join(lines)


def _evaluate(args, timed: bool) -> int:
    from harness import backends, workload
    from harness.attempt import Evaluator
    from harness.config import HarnessConfig
    from harness.evidence import Candidate, Verdict
    path = Path(args.candidate)
    if not path.is_file():
        return _bad(f"{path}: no such candidate file")
    backend = _backend_for(path, args.backend)
    try:
        wl = workload.load(args.workload)
    except workload.WorkloadError as e:
        return _bad(str(e))
    if backend not in wl.spec.backends:
        return _bad(f"{wl.path / 'workload.toml'}: backend '{backend}' is not in backends {wl.spec.backends}")
    if args.dtype not in wl.spec.dtypes:
        return _bad(f"{wl.path / 'workload.toml'}: dtype '{args.dtype}' is not in dtypes {wl.spec.dtypes}")
    cfg = HarnessConfig(**({"gpu_arch": args.gpu_arch} if args.gpu_arch else {}),
                        profile=bool(getattr(args, "profile", False)))
    device = backends.get(backend).device(cfg)
    ev = Evaluator(wl, args.dtype, cfg, device=device)
    try:
        if timed:
            print(f"measuring the roofline and torch baselines on the {device} ...", file=sys.stderr)
            ev.measure_roofline()
            ev.measure_eager()
            if not args.no_compiled:
                ev.measure_compiled()
        p = ev.evaluate(Candidate(source=path.read_text(), backend=backend, workload=wl.name, dtype=args.dtype),
                        replay_command="python -m harness replay PACKET.json", bench=timed)
    finally:
        ev.close()
    if args.out:
        Path(args.out).write_text(p.model_dump_json(indent=2))
    print(_summary(p, args.json))
    return 0 if p.verdict == Verdict.accepted else 1


def _gpu_compile(args) -> int:
    from harness import gpu_compile, workload
    path = Path(args.candidate)
    if not path.is_file() or path.suffix != ".py":
        return _bad(f"{path}: not a Triton candidate file (kernel.py)")
    targets = args.target or ["sm_90"]
    unknown = [t for t in targets if t not in gpu_compile.TARGETS]
    if unknown:
        return _bad(f"--target {unknown[0]}: unknown; use one of {', '.join(gpu_compile.TARGETS)}")
    try:
        wl = workload.load(args.workload)
    except workload.WorkloadError as e:
        return _bad(str(e))
    if args.dtype and args.dtype not in wl.spec.dtypes:
        return _bad(f"{wl.path / 'workload.toml'}: dtype '{args.dtype}' is not in dtypes {wl.spec.dtypes}")
    reports = []
    for t in targets:
        print(f"compiling {path.name} for {t} ({gpu_compile.TARGETS[t].parts}) ...", file=sys.stderr)
        reports.append(gpu_compile.check(path, "kscout_forward", wl.path, t, dtype=args.dtype))
    if args.json:
        print(json.dumps([r.model_dump() for r in reports], indent=2))
    else:
        print("\n".join(("ok    " if r.ok else "FAIL  ") + r.summary() for r in reports))
    return 0 if all(r.ok for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("env-info", help="print this machine's environment, its GPU and which backends work here, as JSON")
    sub.add_parser("cheats", help="print the named-cheat catalog (what is caught, as what, by which defence)")
    for name, what in (("verify", "compile and verify one candidate on every case of the workload (no timing)"),
                       ("bench", "verify, then time one candidate against torch eager, torch.compile and the roofline")):
        p = sub.add_parser(name, help=what)
        p.add_argument("candidate", help="source file: kernel.cpp, kernel.py (Triton), kernel.cu, kernel.hip")
        p.add_argument("--workload", "-w", required=True, help="a shipped workload's name or a workload folder")
        p.add_argument("--backend", "-b", default=None, help="override the backend the suffix implies")
        p.add_argument("--dtype", default="float32")
        p.add_argument("--gpu-arch", default=None, help="compile for this architecture (sm_90, gfx942)")
        p.add_argument("--out", default=None, help="write the evidence packet (JSON) here")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        if name == "bench":
            p.add_argument("--no-compiled", action="store_true", help="skip the torch.compile baseline")
            p.add_argument("--profile", action="store_true", help="if accepted, profile the kernel once with Nsight "
                           "Compute (ncu) on the bench shape (NVIDIA GPU backends)")
    gp = sub.add_parser("gpu-compile", help="compile a Triton candidate for GPU targets this machine lacks (no GPU "
                        "needed) and report each kernel's shared memory, registers and spills against the "
                        "target's limits")
    gp.add_argument("candidate", help="a Triton candidate module (kernel.py)")
    gp.add_argument("--workload", "-w", required=True, help="a shipped workload's name or a workload folder: its "
                    "bench shape is what the launcher sizes its blocks for")
    gp.add_argument("--target", "-t", action="append", default=None,
                    help="sm_80, sm_86, sm_89, sm_90, sm_100, gfx90a, gfx942, gfx950 (repeatable; default sm_90)")
    gp.add_argument("--dtype", default=None, help="default: the workload's first dtype")
    gp.add_argument("--json", action="store_true", help="print the reports as JSON")
    rp = sub.add_parser("replay", help="re-verify and re-time one evidence packet")
    rp.add_argument("packet")
    rp.add_argument("--workload", default=None, help="workload folder, if it moved since the run")
    args = ap.parse_args(argv)

    if args.cmd == "env-info":
        from harness import backends, gpu
        from harness.backends import cpu_cpp
        from harness.config import HarnessConfig
        from harness.envinfo import environment
        cfg = HarnessConfig()
        env = environment(cfg.threads, cpu_cpp.compiler_version(cfg.cxx))
        env.gpu = gpu.detect()
        doc = json.loads(env.model_dump_json())
        doc["backends"] = {n: dict(zip(("available", "detail"), backends.get(n).available())) for n in backends.names()}
        print(json.dumps(doc, indent=2))
        return 0
    if args.cmd == "cheats":
        from harness.cheats import markdown_table
        print(markdown_table())
        return 0
    if args.cmd in ("verify", "bench"):
        return _evaluate(args, timed=args.cmd == "bench")
    if args.cmd == "gpu-compile":
        return _gpu_compile(args)
    from harness.replay import load_packet, replay
    r = replay(load_packet(args.packet), workload_path=args.workload)
    print(json.dumps({"reproduced": r.reproduced, "verified": r.verified,
                      "timing_within_spread": r.timing_within_spread, "verdict": r.replayed.verdict.value,
                      "failure_class": r.replayed.failure_class.value if r.replayed.failure_class else None,
                      "median_s": r.replayed.bench.candidate.median_s if r.replayed.bench else None}, indent=2))
    return 0 if r.reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
