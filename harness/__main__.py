"""`python -m harness`: the harness on its own (no ray, sqlalchemy, dspy or litellm needed).

    python -m harness env-info
    python -m harness replay PACKET.json [--workload DIR]
    python -m harness cheats          # the named-cheat catalog as a markdown table
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("env-info", help="print this machine's environment record as JSON")
    sub.add_parser("cheats", help="print the named-cheat catalog (what is caught, as what, by which defence)")
    rp = sub.add_parser("replay", help="re-verify and re-time one evidence packet")
    rp.add_argument("packet")
    rp.add_argument("--workload", default=None, help="workload folder, if it moved since the run")
    args = ap.parse_args(argv)

    if args.cmd == "env-info":
        from harness.backends import cpu_cpp
        from harness.config import HarnessConfig
        from harness.envinfo import environment
        cfg = HarnessConfig()
        print(environment(cfg.threads, cpu_cpp.compiler_version(cfg.cxx)).model_dump_json(indent=2))
        return 0
    if args.cmd == "cheats":
        from harness.cheats import markdown_table
        print(markdown_table())
        return 0
    from harness.replay import load_packet, replay
    r = replay(load_packet(args.packet), workload_path=args.workload)
    print(json.dumps({"reproduced": r.reproduced, "verified": r.verified,
                      "timing_within_spread": r.timing_within_spread, "verdict": r.replayed.verdict.value,
                      "failure_class": r.replayed.failure_class.value if r.replayed.failure_class else None,
                      "median_s": r.replayed.bench.candidate.median_s if r.replayed.bench else None}, indent=2))
    return 0 if r.reproduced else 1


if __name__ == "__main__":
    sys.exit(main())
