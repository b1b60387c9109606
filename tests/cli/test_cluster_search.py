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
