"""What the agent layer costs per proposal, apart from the model's own thinking time.

A scripted OpenAI-compatible server on 127.0.0.1 answers instantly, so the time measured per
proposal is kscout's: building the prompt (contract, skills, history), DSPy's formatting and
parsing, litellm's HTTP round trip, extraction and the call records. It is printed next to the
offline proposer's time and as a fraction of one attempt's hardware time (compile + verify + bench,
measured in the same run on the same workload), so the ratio, not the absolute, is the result.

    .venv/bin/python bench/agent_overhead.py [--workload rmsnorm] [--n 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents import templates  # noqa: E402
from agents.llm import LLMProposer  # noqa: E402
from agents.models import ModelSpec  # noqa: E402
from agents.offline import OfflineProposer  # noqa: E402
from harness import workload as workloads  # noqa: E402
from harness.attempt import Evaluator  # noqa: E402
from harness.config import HarnessConfig  # noqa: E402
from search.strategy import Proposal, ProposalContext  # noqa: E402
from tests.agents.scripted_server import Reply, ScriptedServer  # noqa: E402


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="rmsnorm")
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    wl = workloads.load(args.workload)
    family = templates.get(wl.spec.family)
    source = family.render(family.defaults())
    content = (f"[[ ## rationale ## ]]\nscalar loops\n\n[[ ## source ## ]]\n```cpp\n{source}\n```\n\n"
               "[[ ## completed ## ]]\n")
    proposal = Proposal(node_id="n1", params=family.defaults(), strategy="naive",
                        context=ProposalContext(parent_source=source, history=["attempt a1: accepted, 1.00x"] * 4))
    offline = OfflineProposer(wl.name, wl.spec.family)
    with ScriptedServer(lambda req: Reply(content=content)) as srv:
        llm = LLMProposer(wl.path, "cpu_cpp", "float32", [ModelSpec(model="openai/gpt-4o-mini", api_base=srv.api_base)])
        llm.propose(proposal)                                    # warm: imports, connection pool
        t_llm, t_off, prompt_chars = [], [], 0
        for _ in range(args.n):                                  # interleaved: same machine state for both
            t0 = time.perf_counter()
            cand = llm.propose(proposal)
            t_llm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            offline.propose(proposal)
            t_off.append(time.perf_counter() - t0)
        prompt_chars = len(srv.requests[-1].prompt)
        assert cand.proposal_failure is None, cand.proposal_error
    ev = Evaluator(wl, "float32", HarnessConfig())
    ev.measure_roofline()
    ev.measure_eager()
    t_hw = []
    for _ in range(3):
        t0 = time.perf_counter()
        packet = ev.evaluate(cand)
        t_hw.append(time.perf_counter() - t0)
        assert packet.verdict.value == "accepted", packet.failure_message
    llm_ms, off_ms, hw_ms = median_ms(t_llm), median_ms(t_off), median_ms(t_hw)
    print(f"workload {wl.name}: prompt {prompt_chars:,} chars (~{prompt_chars // 4:,} tokens), n={args.n}")
    print(f"{'':28}{'median ms':>12}{'p90 ms':>10}")
    print(f"{'offline proposer':28}{off_ms:12.2f}{sorted(t_off)[int(0.9 * len(t_off))] * 1e3:10.2f}")
    print(f"{'LLM proposer (0-latency)':28}{llm_ms:12.2f}{sorted(t_llm)[int(0.9 * len(t_llm))] * 1e3:10.2f}")
    print(f"{'one attempt on hardware':28}{hw_ms:12.1f}")
    print(f"agent overhead / hardware time per attempt: {llm_ms / hw_ms:.4f}")
    print(f"agent overhead / offline proposer: {llm_ms / off_ms:.1f}x")


if __name__ == "__main__":
    main()
