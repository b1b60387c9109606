"""`kscout search --address` against a running multi-node Ray cluster (Ray's test cluster: a head
and raylets on this machine): the driver finds one hardware worker per bench slot the cluster
offers, places them by resource, and every packet says which node produced it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from search.workers import BENCH_SLOT
from tests.cli.test_search_e2e import run_cli, small_copy

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    yield c
    c.shutdown()


def test_a_cluster_without_bench_slots_is_refused_with_the_command_to_fix_it(cluster, tmp_path):
    wl = small_copy("rmsnorm", tmp_path, "{ M = 16, N = 1024 }")
    r = run_cli("search", str(wl), "--address", cluster.address, "--attempts", "2", "--runs-dir",
                str(tmp_path / "runs"), cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    msg = " ".join(r.stderr.split())
    assert f"offers no '{BENCH_SLOT}' resource" in msg and "ray start --address" in msg


def test_search_on_two_bench_nodes_uses_both_and_names_them(cluster, tmp_path):
    nodes = {cluster.add_node(num_cpus=1, resources={BENCH_SLOT: 1}).node_id for _ in range(2)}
    cluster.wait_for_nodes()
    wl = small_copy("rmsnorm", tmp_path, "{ M = 16, N = 1024 }")
    r = run_cli("search", str(wl), "--address", cluster.address, "--attempts", "6", "--json", "--runs-dir",
                str(tmp_path / "runs"), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout)
    assert out["counts"]["attempts"] == 6
    assert out["cluster"]["workers"] == 2 and out["cluster"]["live"] == 2 and not out["cluster"]["quarantined_nodes"]
    packets = [json.loads(p.read_text()) for p in Path(out["run_dir"], "packets").glob("*.json")]
    used = {p["placement"]["node_id"] for p in packets}
    assert used == nodes                                    # both bench nodes, never the head
    assert "2 hardware worker(s) on" in " ".join(r.stderr.split())


def test_without_address_a_search_starts_its_own_ray_even_beside_a_running_cluster(cluster, tmp_path):
    """ray.init() with no address joins the last cluster started on this machine; kscout must not."""
    wl = small_copy("rmsnorm", tmp_path, "{ M = 16, N = 1024 }")
    r = run_cli("search", str(wl), "--attempts", "2", "--json", "--runs-dir", str(tmp_path / "runs"),
                cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout)
    assert out["counts"]["attempts"] == 2 and out["cluster"] is None     # a local run, not the cluster's


def test_one_search_over_two_targets_runs_one_run_per_target_and_resumes_them_together(cluster, tmp_path):
    """`--target A --target B`: a run per target (sharing a stem), each placed only on its own
    target's node and recording it in every packet; `kscout resume RUN_A RUN_B` continues both."""
    nodes = {t: cluster.add_node(num_cpus=1, resources={BENCH_SLOT: 1, t: 1}).node_id for t in ("xeonA", "xeonB")}
    cluster.wait_for_nodes()
    wl = small_copy("rmsnorm", tmp_path, "{ M = 16, N = 1024 }")
    runs = tmp_path / "runs"
    r = run_cli("search", str(wl), "--address", cluster.address, "--target", "xeonA", "--target", "xeonB",
                "--attempts", "3", "--json", "--runs-dir", str(runs), cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout)
    assert [o["target"] for o in out] == ["xeonA", "xeonB"]
    stem = out[0]["run_id"].removesuffix("-xeonA")
    assert [o["run_id"] for o in out] == [f"{stem}-xeonA", f"{stem}-xeonB"]
    for o in out:
        assert o["counts"]["attempts"] == 3 and o["best"] is not None and o["cluster"]["workers"] == 1
        packets = [json.loads(p.read_text()) for p in Path(o["run_dir"], "packets").glob("*.json")]
        assert len(packets) == 3
        assert {(p["placement"]["target"], p["placement"]["node_id"], p["run_id"]) for p in packets} == \
            {(o["target"], nodes[o["target"]], o["run_id"])}
        assert all(b.startswith(f"kscout/rmsnorm/{o['run_id']}/") for b in o["branches"])
    err = " ".join(r.stderr.split())
    assert "[kscout] xeonA #1" in err and "[kscout] xeonB #1" in err     # each attempt line names its target

    r = run_cli("resume", out[0]["run_id"], out[1]["run_id"], "--attempts", "5", "--json", "--runs-dir", str(runs),
                "--address", cluster.address, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    again = json.loads(r.stdout)
    assert [(o["run_id"], o["target"], o["counts"]["attempts"]) for o in again] == \
        [(out[0]["run_id"], "xeonA", 5), (out[1]["run_id"], "xeonB", 5)]


def test_a_target_no_node_offers_is_refused_not_waited_on(tmp_path):
    """A local Ray offers no 'H100': the search says so at once (Ray would queue the worker forever)."""
    wl = small_copy("rmsnorm", tmp_path, "{ M = 16, N = 1024 }")
    r = run_cli("search", str(wl), "--target", "H100", "--attempts", "2", "--runs-dir", str(tmp_path / "runs"),
                cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    msg = " ".join(r.stderr.split())
    assert "offers no 'H100' resource" in msg and '"H100": 1' in msg
