"""The fork server (harness/forkserver.py): a forked candidate process is confined exactly like a
fresh interpreter, and a timeout, a crash, a stray grandchild or a dead server are handled the same.

Each test runs a real Triton-interpreter child through harness/backends/torch_run.py; the
candidate reports what it sees by raising, so its traceback (result.json's `error`) carries it.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from harness import forkserver, workload
from harness.backends.torch_run import run_in_torch_child
from harness.cases import build_cases
from harness.config import HarnessConfig
from harness.sandbox import network_namespace_available

pytestmark = pytest.mark.slow

FACTS = '''
import json, os, resource


def kscout_forward(*args):
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    lim = {n: resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_CORE")}
    raise RuntimeError("FACTS" + json.dumps({
        "session_leader": os.getsid(0) == os.getpid(), "group_leader": os.getpgid(0) == os.getpid(),
        "limits": lim, "cpu_limit_set": resource.getrlimit(resource.RLIMIT_CPU)[0] != resource.RLIM_INFINITY,
        "fd_targets": sorted(v for k, v in fds.items() if int(k) > 2 and not v.isdigit()),
        "stdin": fds.get("0"), "cwd": os.path.basename(os.getcwd()), "env": sorted(os.environ),
        "netns": os.readlink("/proc/self/ns/net"), "pid": os.getpid()}) + "END")
'''

SPIN = '''
def kscout_forward(*args):
    while True:
        pass
'''

STRAY = '''
import subprocess


def kscout_forward(*args):
    p = subprocess.Popen(["sleep", "300"])
    raise RuntimeError(f"STRAY{p.pid}END")
'''

SEGV = '''
import os, signal


def kscout_forward(*args):
    os.kill(os.getpid(), signal.SIGSEGV)
'''


@pytest.fixture
def setup(tiny_workload_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KSCOUT_TEST_SECRET", "must-not-reach-a-candidate")
    cases = build_cases(workload.load(tiny_workload_dir), "float32", hidden=0)[:1]

    def run(source: str, *, fork_server: bool, timeout_s: float = 120, tag: str = "", threads: str = "1"):
        name = f"{'fork' if fork_server else 'exec'}{tag}"
        module = tmp_path / f"{name}.py"
        module.write_text(source)
        cfg = HarnessConfig(cache_dir=tmp_path / "build", fork_server=fork_server)
        return run_in_torch_child({"loader": "python", "module": str(module), "entry_point": "kscout_forward"},
                                  cases, "verify", cfg, tmp_path / name, timeout_s, tmp_path / "stage",
                                  interpret=True, env={"OMP_NUM_THREADS": threads}, sandbox=[], seccomp=False)
    yield run
    forkserver._close_all()


def _between(text: str, start: str) -> str:
    """The candidate's message: after the last `start` (the traceback quotes the source line first)."""
    return text.rsplit(start, 1)[1].split("END", 1)[0]


def test_a_forked_child_is_confined_like_a_fresh_interpreter(setup):
    outs = {f: setup(FACTS, fork_server=f) for f in (False, True)}
    assert [outs[f].exit.forked for f in (False, True)] == [False, True]
    assert "forked-from-warm-server" in outs[True].sandbox and "forked-from-warm-server" not in outs[False].sandbox
    fresh, forked = (json.loads(_between(outs[f].error, "FACTS")) for f in (False, True))
    for facts in (fresh, forked):
        assert facts["session_leader"] and facts["group_leader"]
        assert facts["cpu_limit_set"] and facts["stdin"] == "null" and facts["cwd"] == "cwd"
        assert "KSCOUT_TEST_SECRET" not in facts["env"]
        if network_namespace_available():
            assert facts["netns"] != os.readlink("/proc/self/ns/net")
    for k in ("limits", "fd_targets", "env"):
        assert forked[k] == fresh[k], k
    assert forked["limits"]["RLIMIT_AS"][0] == int(HarnessConfig().limits.address_space_gb * (1 << 30))


def test_the_server_is_reused_and_survives_a_timeout_and_a_crash(setup):
    setup(FACTS, fork_server=True, tag="warm")               # starts the server (imports torch, triton)
    t0 = time.monotonic()
    spun = setup(SPIN, fork_server=True, timeout_s=2)
    assert spun.exit.kind.value == "timeout" and time.monotonic() - t0 < 30
    crashed = setup(SEGV, fork_server=True)
    assert crashed.exit.kind.value == "signal" and crashed.exit.signal_name == "SIGSEGV"
    pids = [json.loads(_between(setup(FACTS, fork_server=True, tag=str(i)).error, "FACTS"))["pid"] for i in range(2)]
    assert pids[0] != pids[1]                                  # a fresh fork per request
    assert sum(len(v) for v in forkserver._idle.values()) == 1  # one server did all of it


def test_idle_servers_beyond_the_cap_are_closed_least_recently_used_first(setup, monkeypatch):
    monkeypatch.setattr(forkserver, "MAX_IDLE", 1)
    setup(FACTS, fork_server=True, tag="one")
    (first,) = [s for pool in forkserver._idle.values() for s in pool]
    setup(FACTS, fork_server=True, tag="two", threads="2")     # another environment: another server
    (second,) = [s for pool in forkserver._idle.values() for s in pool]
    assert second is not first and first.proc.poll() is not None and second.proc.poll() is None


def test_a_stray_grandchild_is_killed_with_its_group(setup):
    out = setup(STRAY, fork_server=True)
    pid = int(_between(out.error, "STRAY"))
    time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    with open(f"/proc/{pid}/stat") as f:                       # a zombie awaiting its reaper is dead too
        assert f.read().split(")")[1].split()[0] == "Z"


def test_a_dead_server_falls_back_to_a_fresh_interpreter(setup, capfd):
    setup(FACTS, fork_server=True, tag="warm")
    (server,) = [s for pool in forkserver._idle.values() for s in pool]
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    facts = json.loads(_between(setup(FACTS, fork_server=True).error, "FACTS"))
    assert facts["session_leader"]
    assert "running this child in a fresh interpreter" in capfd.readouterr().err
    setup(FACTS, fork_server=True, tag="again")                # a new server starts for the next one
    assert sum(len(v) for v in forkserver._idle.values()) == 1


@pytest.mark.gpu
def test_on_a_gpu_a_forked_child_gives_the_verdict_a_fresh_one_gives(tiny_workload_dir, tmp_path):
    """harness.fork_server = true on a GPU (the default forks only children that use none): the
    server imports torch and triton without touching CUDA, and each child initialises its own."""
    from harness.attempt import Evaluator
    from harness.evidence import Candidate, Verdict
    from tests.harness.test_triton_backend import AXPY_TRITON
    d = tmp_path / "axpy"
    d.mkdir()
    (d / "reference.py").write_text((tiny_workload_dir / "reference.py").read_text())
    (d / "workload.toml").write_text((tiny_workload_dir / "workload.toml").read_text()
                                     .replace('backends = ["cpu_cpp"]', 'backends = ["cpu_cpp", "triton"]'))
    packets = {}
    for fork in (True, False):
        ev = Evaluator(workload.load(d), cfg=HarnessConfig(cache_dir=tmp_path / f"build-{fork}", triton_interpret=False,
                                                           fork_server=fork), device="cuda")
        ev.measure_eager()
        packets[fork] = ev.evaluate(Candidate(source=AXPY_TRITON, backend="triton", workload="axpy"))
        ev.close()
    forkserver._close_all()
    for p in packets.values():
        assert p.verdict == Verdict.accepted, (p.failure_class, p.failure_message, p.artifacts.get("candidate_traceback"))
        assert p.environment.gpu is not None and p.bench is not None
