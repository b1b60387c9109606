"""Knowledge that outlives a run, through the real CLI: a second search on the same op family
starts from the first one's best kernel and proven moves, says so in its packets, and a run
exports to history.jsonl / frontier.csv / memory.json."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli.test_search_e2e import KEEP_TREE, run_cli, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("memory")
    runs = tmp / "runs"
    first_wl = small_copy("rmsnorm", tmp / "a", "{ M = 64, N = 2048 }")
    # all 12 attempts run, whatever the machine's load; no torch.compile baseline and no re-timed
    # baselines (inductor compiling the reference costs each run ~15 s, and memory is about
    # attempts and speedups over eager)
    keep = tmp / "keep-tree.toml"
    keep.write_text("[harness]\ncompiled_baseline = false\ninterleave_baselines = false\n\n" + KEEP_TREE)
    first = run_cli("search", str(first_wl), "--attempts", "12", "--config", str(keep), "--json", "--runs-dir",
                    str(runs), cwd=tmp)
    assert first.returncode == 0, first.stderr[-3000:]
    shown = run_cli("memory", "show", "--json", "--runs-dir", str(runs), cwd=tmp)
    assert shown.returncode == 0, shown.stderr[-2000:]
    second_wl = small_copy("rmsnorm", tmp / "b", "{ M = 32, N = 4096 }")   # same family, other shape
    second = run_cli("search", str(second_wl), "--attempts", "4", "--config", str(keep), "--json", "--runs-dir",
                     str(runs), cwd=tmp)
    assert second.returncode == 0, second.stderr[-3000:]
    return tmp, runs, json.loads(first.stdout), json.loads(shown.stdout), json.loads(second.stdout), second


def test_memory_show_reports_the_first_runs_best_kernel_and_facts(two_runs):
    _, _, first, k, _, _ = two_runs
    best = [b for b in k["best"] if b["run_id"] == first["run_id"]]
    assert best and best[0]["family"] == "rmsnorm" and best[0]["attempt_id"] == first["best"]["attempt_id"]
    assert best[0]["speedup_eager"] == pytest.approx(first["best"]["speedup"]["torch_eager"])
    for f in k["facts"]:
        assert f["gain"] >= 1.0 and f["evidence"], f


def test_second_search_starts_from_memory_and_its_packets_say_why(two_runs):
    _, runs, first, _, second, proc = two_runs
    assert "warm start" in " ".join(proc.stderr.split()) or "warm start" in proc.stdout
    con = sqlite3.connect(Path(second["run_dir"]) / "kscout.db")
    memory_nodes = con.execute("select id, params, knowledge from nodes where move = 'memory'").fetchall()
    assert len(memory_nodes) == 1
    node_id, params, knowledge = memory_nodes[0]
    assert first["run_id"] in json.loads(knowledge)[0]
    assert json.loads(params) == first["best"]["params"]
    # the memory node ranks right after the naive root, so its kernel runs within the 4-attempt
    # budget (attempts are numbered as they finish, so on a loaded machine it need not be seq 2)
    packets = [json.loads(r[0]) for r in con.execute("select packet from attempts order by seq")]
    mine = [p for p in packets if p["candidate"]["node_id"] == node_id]
    assert mine and all(p["candidate"]["knowledge"] for p in mine)


def test_export_writes_history_frontier_and_memory(two_runs):
    tmp, runs, first, _, _, _ = two_runs
    r = run_cli("export", first["run_id"], "--runs-dir", str(runs), "--out", str(tmp / "exp"), cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp / "exp" / "history.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 13))
    assert all(r["verdict"] in ("accepted", "rejected") and "params" in r for r in rows)
    with (tmp / "exp" / "frontier.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {"yes", "no"} >= {t["tried"] for t in table} and any(t["tried"] == "yes" for t in table)
    assert sum(int(t["attempts"]) for t in table if t["axis"] == "vector") == 12
    mem = json.loads((tmp / "exp" / "memory.json").read_text())
    assert [b["run_id"] for b in mem["best"]] == [first["run_id"]]


def test_runs_lists_both_runs_and_status_reads_one(two_runs):
    tmp, runs, first, _, second, _ = two_runs
    r = run_cli("runs", "--runs-dir", str(runs), "--json", cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    assert {x["run"] for x in json.loads(r.stdout)} == {first["run_id"], second["run_id"]}
    assert run_cli("runs", "--runs-dir", str(runs), cwd=tmp).returncode == 0
    st = run_cli("status", first["run_id"], "--runs-dir", str(runs), "--json", cwd=tmp)
    data = json.loads(st.stdout)
    assert data["status"] == "finished" and data["attempts"] == 12 and data["in_flight"] == 0
    assert data["best_attempt"] == first["best"]["attempt_id"]


def test_show_prints_an_attempt_and_its_diff_against_the_parent(two_runs):
    tmp, runs, first, _, _, _ = two_runs
    best = first["best"]["attempt_id"]
    r = run_cli("show", best, "--runs-dir", str(runs), "--json", cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["packet"]["id"] == best and out["run_id"] == first["run_id"]
    assert out["parent_id"] and out["diff"].startswith(f"--- parent {out['parent_id']}")
    assert run_cli("show", best, "--runs-dir", str(runs), cwd=tmp).returncode == 0
    missing = run_cli("show", "nope", "--runs-dir", str(runs), cwd=tmp)
    assert missing.returncode == 2 and "no attempt 'nope'" in " ".join(missing.stderr.split())
