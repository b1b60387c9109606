"""`--executor local`: a whole search, Ctrl-C and resume with Ray made unimportable, as on a GPU
box that has torch, triton and kscout's pure-Python dependencies but no Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from kscout.run import run_status
from memory.store import Store
from tests.cli.test_resume import _run_id, _wait_for
from tests.cli.test_search_e2e import KEEP_TREE, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# `import ray` raises ImportError in this interpreter: anything that reaches for Ray fails loudly.
NO_RAY = [sys.executable, "-c", "import sys; sys.modules['ray'] = None; from kscout.cli import app; app()"]
ENV = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*NO_RAY, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_a_search_without_ray_runs_stops_on_ctrl_c_and_resumes(tmp_path):
    wl = small_copy("rmsnorm", tmp_path, "{ M = 64, N = 1024 }")
    runs = tmp_path / "runs"
    keep = tmp_path / "keep.toml"   # a budget Ctrl-C lands inside, and a tree that cannot run dry first
    keep.write_text(KEEP_TREE)
    proc = subprocess.Popen([*NO_RAY, "search", str(wl), "--executor", "local", "--attempts", "20",
                             "--config", str(keep), "--runs-dir", str(runs)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_id = _run_id(runs)
    url = f"sqlite:///{runs / run_id / 'kscout.db'}"
    _wait_for(run_id, url, lambda s: s["attempts"] >= 2, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)   # the worker threads are daemons: Ctrl-C is not held up by them
    said = " ".join(out.split())
    assert "local executor" in said and "starting Ray" not in said, said[-2000:]
    assert f"kscout resume {run_id}" in said, said[-2000:]
    st = run_status(run_id, url)
    assert st["status"] == "interrupted" and 2 <= st["attempts"] < 20

    # the run remembers its executor: resume needs no flag, and still no Ray. Its budget becomes
    # three attempts past the interrupted ones (the rest of the 20 would only repeat what ran).
    total = st["attempts"] + 3
    done = _cli("resume", run_id, "--attempts", str(total), "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["counts"]["attempts"] == total and summary["best"] is not None
    assert summary["best"]["speedup"]["torch_eager"] > 0
    with Store.open(url) as store:
        attempts = store.attempts(run_id)
        assert [a.seq for a in attempts] == list(range(1, total + 1))
        packets = [store.packet(a.id) for a in attempts]
        assert store.get_run(run_id).config["cluster"]["executor"] == "local"
    assert {p.placement.node_id for p in packets if p.placement} == {"local"}
    params = [json.dumps(p.candidate.params, sort_keys=True) for p in packets]
    assert len(set(params)) == len(params)   # nothing in flight at Ctrl-C ran twice


def test_the_local_executor_refuses_what_only_ray_can_do(tmp_path):
    r = _cli("search", "rmsnorm", "--executor", "local", "--address", "auto", "--runs-dir", str(tmp_path), cwd=tmp_path)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "cannot join a Ray cluster" in said and "--executor ray" in said, said
    r = _cli("search", "rmsnorm", "--executor", "local", "--target", "H100", "--target", "A100",
             "--runs-dir", str(tmp_path), cwd=tmp_path)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "cluster.executor 'local'" in said, said
    r = _cli("search", "rmsnorm", "--executor", "threads", "--runs-dir", str(tmp_path), cwd=tmp_path)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "--executor threads: use ray" in said, said
    assert not (tmp_path / "rmsnorm").exists() and not list(tmp_path.glob("rmsnorm-*"))   # no run was created
