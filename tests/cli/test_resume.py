"""Crash-proof resume, for real: `kscout search` in a subprocess, killed with SIGKILL (its whole
process group: driver, Ray, workers, candidate children) at several points, then `kscout resume`.
The set of completed attempts must be the union with no duplicates and no gaps, and nothing that
was in flight may be lost or run twice. Runs against SQLite here, and against PostgreSQL in
tests/cli/test_resume_postgresql.py when KSCOUT_TEST_PG_URL is set (scripts/test.sh starts one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kscout.run import run_status
from memory.store import Store
from tests.cli.test_search_e2e import KEEP_TREE, KSCOUT, run_cli, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ATTEMPTS = 12


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    return subprocess.Popen([*KSCOUT, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _run_id(runs: Path, timeout: float = 120) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = [p.name for p in runs.glob("*") if p.is_dir()] if runs.is_dir() else []
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("the run folder never appeared")


def _wait_for(run_id: str, url: str, pred, proc: subprocess.Popen, timeout: float = 240) -> dict:
    """Poll the log (as `kscout status` does) until pred(status) holds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "the search exited before it could be killed"
        try:
            st = run_status(run_id, url)
        except Exception:   # the database may not exist yet
            st = None
        if st and pred(st):
            return st
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting; last status {st}")




def _children_running(pattern: str, root: Path) -> bool:
    """Whether a process of this test (its command line or working directory under `root`) whose
    command line matches runs now. Candidate children run in their own sessions, so they are found
    by command line, not by the driver's process group; `root` keeps another test's compiles and
    benchmarks (pytest -n runs tests side by side) from counting."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    for pid in found:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:        # it ended meanwhile
            continue
        if cwd.startswith(str(root)) or str(root) in cmd:
            return True
    return False


# Where to kill, and how to know we are there. Each phase is waited for, then SIGKILL goes to the
# driver's whole process group (driver, Ray, workers). g++ runs in the build cache (under the
# test's tmp_path); the bench child's manifest lies in the run's work_dir (also under it).
PHASES = {
    "during compile": lambda st, base, root: _children_running(r"g\+\+ .*kernel\.cpp", root),
    "during benchmark": lambda st, base, root: _children_running(r"cpu_child\.py .*/bench/manifest\.json", root),
    "at a database write": lambda st, base, root: st["attempts"] > base,
    "between attempts": lambda st, base, root: st["attempts"] > base and st["in_flight"] >= 1,
}


def test_kill9_at_several_points_then_resume_loses_and_repeats_nothing(tmp_path):
    kill9_then_resume(tmp_path, None)     # SQLite; PostgreSQL: tests/cli/test_resume_postgresql.py


def kill9_then_resume(tmp_path: Path, db: str | None) -> None:
    """SIGKILL a search at each of PHASES (logged to `db`, or the run folder's SQLite), resume it
    after each, then finish it: every attempt exactly once, no gaps."""
    wl = small_copy("rmsnorm", tmp_path, "{ M = 64, N = 1024 }")
    runs = tmp_path / "runs"
    # A fresh build cache, so every candidate really compiles; KEEP_TREE, so all 12 attempts run;
    # no torch.compile baseline and no re-timed baselines: five sessions would each compile the
    # reference with inductor, and this test is about attempts, not speedups.
    cfg = tmp_path / "kscout.toml"
    cfg.write_text(f'[harness]\ncache_dir = "{tmp_path / "build"}"\nwork_dir = "{tmp_path / "work"}"\n'
                   'compiled_baseline = false\n'
                   'interleave_baselines = false\n\n' + KEEP_TREE)
    db_args = ["--db", db] if db else []
    # --time 1h: five sessions of Ray start-up and baselines on a loaded machine can spend the
    # default 5 minutes of searching time, and this test is about attempts, not the clock.
    proc = _start(["search", str(wl), "--attempts", str(ATTEMPTS), "--time", "1h", "--runs-dir", str(runs),
                   "--config", str(cfg), *db_args], tmp_path)
    run_id = _run_id(runs)
    url = db or f"sqlite:///{runs / run_id / 'kscout.db'}"
    seen = []
    for i, (phase, reached) in enumerate(PHASES.items()):
        if i:   # no --db: a run logged elsewhere is found from its folder (database.txt)
            proc = _start(["resume", run_id, "--runs-dir", str(runs)], tmp_path)
        base = run_status(run_id, url)["attempts"] if i else 0
        _wait_for(run_id, url, lambda st: st["attempts"] >= 1 and reached(st, base, tmp_path), proc)
        _kill_group(proc)
        st = run_status(run_id, url)
        assert st["status"] == "running"          # nobody got to close it
        seen.append((phase, st["attempts"], st["in_flight"]))
        if st["attempts"] >= ATTEMPTS:
            break
    done = run_cli("resume", run_id, "--runs-dir", str(runs), *db_args, "--json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr[-3000:]   # 1: finished without a verified winner
    final = run_status(run_id, url)
    assert final["status"] == "finished" and final["in_flight"] == 0, seen
    assert final["attempts"] == ATTEMPTS, (final["stop_reason"], seen)

    with Store.open(url) as store:
        attempts = store.attempts(run_id)
        packets = [store.packet(a.id) for a in attempts]
    assert [a.seq for a in attempts] == list(range(1, ATTEMPTS + 1)), seen         # no gaps
    assert len({a.id for a in attempts}) == ATTEMPTS                                # no duplicates
    tried = [(p.candidate.node_id, json.dumps(p.candidate.params, sort_keys=True)) for p in packets]
    assert len(set(tried)) == len(tried), f"an attempt was repeated; kills: {seen}"
    for a in attempts:
        assert (runs / run_id / "packets" / f"{a.id}.json").is_file()
    assert final["elapsed_s"] > 0


def _said(r: subprocess.CompletedProcess) -> str:
    return " ".join(r.stderr.split())   # rich wraps long messages to the terminal width


def test_resume_errors_are_clear_and_change_nothing(tmp_path):
    r = run_cli("resume", "no-such-run", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "no run 'no-such-run'" in _said(r)
    bad = tmp_path / "runs" / "broken"
    bad.mkdir(parents=True)
    (bad / "kscout.db").write_bytes(b"not a database" * 64)
    before = (bad / "kscout.db").read_bytes()
    r = run_cli("resume", "broken", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot open the experiment log" in _said(r) and "Nothing was changed" in _said(r)
    assert (bad / "kscout.db").read_bytes() == before
    r = run_cli("status", "broken", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "cannot open the experiment log" in _said(r)


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_resume_finishes(tmp_path):
    wl = small_copy("rmsnorm", tmp_path, "{ M = 64, N = 1024 }")
    runs = tmp_path / "runs"
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True")
    # A shell that started this test in the background may have set SIGINT to "ignore", which the
    # child would inherit (and Python then keeps); a terminal's Ctrl-C reaches a default handler.
    # A budget the run cannot spend before the signal lands (6 attempts of this small rmsnorm took
    # 14 s once timed calls stopped writing 2 x LLC each, and were all done before Ctrl-C arrived),
    # and a tree that cannot run dry first.
    keep = tmp_path / "keep.toml"
    keep.write_text(KEEP_TREE)
    proc = subprocess.Popen([*KSCOUT, "search", str(wl), "--attempts", "20", "--config", str(keep),
                             "--runs-dir", str(runs)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run_id = _run_id(runs)
    url = f"sqlite:///{runs / run_id / 'kscout.db'}"
    _wait_for(run_id, url, lambda s: s["attempts"] >= 2, proc)
    proc.send_signal(signal.SIGINT)          # what Ctrl-C delivers to the driver
    out, _ = proc.communicate(timeout=120)
    said = " ".join(out.split())
    assert f"kscout resume {run_id}" in said, said[-2000:]
    st = run_status(run_id, url)
    assert st["status"] == "interrupted" and 2 <= st["attempts"] < 20
    total = st["attempts"] + 3     # resume's --attempts: three past the interrupted ones
    done = run_cli("resume", run_id, "--attempts", str(total), "--runs-dir", str(runs), "--json", cwd=tmp_path)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    final = run_status(run_id, url)
    assert final["status"] == "finished" and final["attempts"] == total and final["in_flight"] == 0
    with Store.open(url) as store:
        assert [a.seq for a in store.attempts(run_id)] == list(range(1, total + 1))


def test_a_run_logged_elsewhere_is_found_from_its_folder_without_its_password(tmp_path):
    run = tmp_path / "runs" / "elsewhere"
    run.mkdir(parents=True)
    (run / "database.txt").write_text("postgresql+psycopg://kscout:***@db.example/kscout\n")
    r = run_cli("resume", "elsewhere", "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    assert r.returncode == 2 and "pass --db with the full URL" in _said(r)
