"""The named-cheat suite: every cheat in harness/cheats.py rejected with its class, every honest
twin accepted, on the real compiler, sandbox and timing loop (nothing of ours is mocked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import workload
from harness.attempt import Evaluator
from harness.cheats import CATALOG, by_name
from harness.config import HarnessConfig, TimingPolicy
from harness.evidence import Candidate, FailureClass, Verdict

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
HEADER = re.compile(r"//\s*workload:\s*(\S+)\s+twin:\s*(\S+)")


def _header(path: Path) -> tuple[str, str]:
    m = HEADER.search(path.read_text().splitlines()[0])
    assert m, f"{path}: first line must be '// workload: NAME  twin: HONEST'"
    return m.group(1), m.group(2)


CHEATS = {p.stem: _header(p) for p in sorted((HERE / "cheats").glob("*.cpp"))}
TWINS = sorted({(w, t) for w, t in CHEATS.values()})


@pytest.fixture(scope="module")
def evaluators(tmp_path_factory):
    cfg = HarnessConfig(cache_dir=tmp_path_factory.mktemp("build"),
                        timing=TimingPolicy(warmup=1, min_repeats=6, max_repeats=12, min_time_s=0.02, max_time_s=1.0))
    made: dict[str, Evaluator] = {}

    def get(name: str) -> Evaluator:
        if name not in made:
            made[name] = Evaluator(workload.load(HERE / "workloads" / name), cfg=cfg)
            made[name].measure_eager()
        return made[name]
    yield get
    for ev in made.values():
        ev.close()


def _evaluate(ev: Evaluator, source: str):
    return ev.evaluate(Candidate(source=source, workload=ev.workload.name))


def test_catalog_and_suite_match():
    """Every catalogued cheat has a candidate, every candidate is catalogued, and the catalog
    covers at least 20 distinct behaviours."""
    cpu = {n for n, c in by_name().items() if c.backend == "cpu_cpp"}
    assert set(CHEATS) == cpu, set(CHEATS) ^ cpu
    assert len(CATALOG) >= 20
    for w, t in CHEATS.values():
        assert (HERE / "workloads" / w / "workload.toml").is_file() and (HERE / "honest" / f"{t}.cpp").is_file()


@pytest.mark.parametrize("name", sorted(CHEATS))
def test_cheat_is_rejected_with_its_class(evaluators, name):
    w, _ = CHEATS[name]
    p = _evaluate(evaluators(w), (HERE / "cheats" / f"{name}.cpp").read_text())
    expected = by_name()[name].caught_as
    assert p.verdict == Verdict.rejected, f"{name} was accepted: {p.bench}"
    assert p.failure_class == expected, f"{name}: got {p.failure_class}: {p.failure_message}"
    assert p.failure_message


@pytest.mark.parametrize("wl,twin", TWINS, ids=[f"{w}-{t}" for w, t in TWINS])
def test_honest_twin_is_accepted(evaluators, wl, twin):
    p = _evaluate(evaluators(wl), (HERE / "honest" / f"{twin}.cpp").read_text())
    assert p.verdict == Verdict.accepted, f"{twin} on {wl}: {p.failure_class}: {p.failure_message}"
    assert p.bench.speedup and p.bench.fresh_over_repeat is not None


def test_static_scan_off_still_stops_socket_at_runtime(tmp_path):
    """Defence in depth: with the static scan disabled, seccomp still kills a libc socket() call."""
    cfg = HarnessConfig(cache_dir=tmp_path / "build", timing=TimingPolicy(warmup=1, min_repeats=3, max_repeats=4,
                                                                           min_time_s=0.01, max_time_s=0.3))
    cfg.limits.static_scan = False
    ev = Evaluator(workload.load(HERE / "workloads" / "axpy"), cfg=cfg)
    try:
        p = _evaluate(ev, (HERE / "cheats" / "opens_socket.cpp").read_text())
    finally:
        ev.close()
    assert p.failure_class == FailureClass.sandbox_violation, p.failure_message
